"""`seqssm audio train | eval | generate` end to end on a tiny synthetic FSDD-like folder, the recurrent-equals-
parallel likelihood check, and bad input through the real command line (one line, exit status 2, no output)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from seqssm import ModelConfig, build_model
from seqssm.domains.audio import MuLawQuantizer
from seqssm.pipelines.audio.infer import generate_ids, nll_sum
from seqssm.pipelines.cli import main

SPEAKERS = ("ann", "bob", "cy")
TINY = [
    "model.d_model=8", "model.n_layer=1", "model.ssm.d_state=4", "model.multiscale.pool_factors=[2,2]", "data.crop_len=128",
    "data.batch_size=4", "data.eval_batch_size=8", "train.max_steps=4", "train.val_every=2", "train.warmup_steps=1",
    "train.progress_bar=false", "train.threads=1", "data.val_fraction=0.1",
]


def _clip(rng, n: int, rate: int = 8000, channels: int = 1) -> np.ndarray:
    t = np.arange(n) / rate
    wave = 0.4 * np.sin(2 * np.pi * rng.uniform(150, 600) * t) + 0.05 * rng.standard_normal(n)
    return np.repeat(wave[:, None], channels, axis=1).astype(np.float32) if channels > 1 else wave.astype(np.float32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """FSDD-named clips: 3 speakers x 2 digits x takes 0-6 (takes 0-4 are the test split)."""
    root = tmp_path_factory.mktemp("fsdd")
    rng = np.random.default_rng(0)
    for speaker in SPEAKERS:
        for digit in range(2):
            for take in range(7):
                sf.write(str(root / f"{digit}_{speaker}_{take}.wav"), _clip(rng, int(rng.integers(300, 700))), 8000)
    return root


@pytest.fixture(scope="module")
def run(folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    sets = [x for kv in TINY + ["data.heldout_speakers=[cy]"] for x in ("--set", kv)]
    assert main(["audio", "train", "--data", str(folder), "--out", str(out), *sets]) == 0
    return out


def test_train_writes_a_complete_run_folder(run):
    for name in ("model", "config.yaml", "metrics.json", "history.json", "curves.png", "test.tsv", "heldout.tsv"):
        assert (run / name).exists(), name
    m = json.loads((run / "metrics.json").read_text())
    assert m["steps"] == 4
    # FSDD rule: takes 0-4 of the two trained speakers are the test set; cy is never trained on
    assert m["files"]["test"] == 2 * 2 * 5 and m["files"]["heldout"] == 2 * 5
    assert m["files"]["train"] + m["files"]["val"] == 2 * 2 * 2
    assert "mulaw8-minmax-sashimi" in m["convention"] and "8000 Hz" in m["convention"] and "takes [0, 1, 2, 3, 4]" in m["convention"]
    assert 0 < m["test_bits_per_sample"] < 8.5 and 0 < m["heldout_bits_per_sample"] < 8.5
    rows = (run / "test.tsv").read_text().splitlines()
    assert rows[0] == "file\tsamples\tbits_per_sample" and rows[-1].startswith("ALL\t")
    assert len(rows) == 1 + 20 + 1
    assert sum(int(r.split("\t")[1]) for r in rows[1:-1]) == m["test_samples"]


def test_time_budget_stops_the_run_and_decays_the_schedule(folder, tmp_path):
    out = tmp_path / "budget"
    sets = [x for kv in TINY + ["train.max_steps=100000", "train.max_minutes=0.05", "train.val_every=100000"]
            for x in ("--set", kv)]
    assert main(["audio", "train", "--data", str(folder), "--out", str(out), *sets]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert 1 <= m["steps"] < 100000 and m["seconds"] < 60
    with open(out / "logs" / "metrics.csv") as f:
        lrs = [float(row["lr"]) for row in csv.DictReader(f) if row.get("lr")]
    # by steps alone the cosine would barely have moved; by time it is well on its way down
    assert lrs[-1] < 0.9 * max(lrs)


def test_eval_one_file_matches_the_run_table(run, folder, tmp_path, capsys):
    row = (run / "test.tsv").read_text().splitlines()[1].split("\t")
    table = tmp_path / "one.tsv"
    assert main(["audio", "eval", "--model", str(run), "--data", row[0], "--out", str(table)]) == 0
    got = table.read_text().splitlines()[-1].split("\t")
    assert got[1] == row[1]
    assert abs(float(got[2]) - float(row[2])) < 1e-3  # batched with other clips (padding) vs alone


def test_eval_converts_stereo_and_other_rates(run, tmp_path, capsys):
    rng = np.random.default_rng(1)
    sf.write(str(tmp_path / "stereo_16k.wav"), _clip(rng, 1600, rate=16000, channels=2), 16000)
    assert main(["audio", "eval", "--model", str(run), "--data", str(tmp_path / "stereo_16k.wav")]) == 0
    assert "over 800 samples" in capsys.readouterr().out  # 0.1 s at the model's 8 kHz


def test_generate_writes_clips_pictures_and_speed(run, tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["audio", "generate", "--model", str(run), "--out", str(out), "--seconds", "0.02", "--batch", "2",
                 "--rank", "--threads", "1", "--check-parallel"]) == 0
    report = json.loads((out / "generate.json").read_text())
    assert report["recurrent_vs_parallel_loglik_max_rel_diff"] < 1e-4
    assert report["samples"] == 160 and report["batch"] == 2 and report["real_time_factor"] > 0
    bits = [c["bits_per_sample"] for c in report["clips"]]
    assert bits == sorted(bits)  # --rank: best (lowest bits) first
    for i in range(2):
        wave, rate = sf.read(str(out / f"sample_{i:02d}.wav"))
        assert rate == 8000 and wave.shape == (160,)
        assert (out / f"sample_{i:02d}.png").stat().st_size > 1000


def test_generate_same_seed_same_audio_and_prompt_continuation(run, folder, tmp_path):
    def gen(name, *extra):
        out = tmp_path / name
        assert main(["audio", "generate", "--model", str(run), "--out", str(out), "--seconds", "0.01",
                     "--seed", "7", "--top-p", "0.9", *extra]) == 0
        return sf.read(str(out / "sample_00.wav"))[0]

    a, b = gen("a"), gen("b")
    assert np.array_equal(a, b)
    prompted = gen("p", "--prompt", str(next(folder.glob("*.wav"))))
    assert prompted.shape == (80,) and not np.array_equal(prompted, a)  # the prompt changes the continuation


@pytest.mark.parametrize("pools", [[], [4, 4]], ids=["flat", "multiscale"])
def test_recurrent_loglik_equals_parallel(pools):
    """The likelihood the sampler accumulates step by step equals a parallel pass over the same clip (float32)."""
    torch.manual_seed(0)
    cfg = ModelConfig.from_flat(d_model=16, n_layer=1, vocab_size=256, d_state=8, pool_factors=pools,
                      stage_layers=["s4d", "mamba", "mamba"] if pools else [], scan_backend="chunked")
    model = build_model(cfg).eval()
    q = MuLawQuantizer()
    ids, loglik, _ = generate_ids(model, 300, 2, None, 1.0, 1.0, seed=3, start_id=q.zero_id, progress=False)
    full = torch.cat([torch.full((2, 1), q.zero_id), ids], dim=1)
    with torch.no_grad():
        nll, count = nll_sum(model, full, torch.ones_like(full, dtype=torch.float32))
    assert torch.equal(count, torch.full((2,), 300.0))
    rel = (loglik + nll.double()).abs() / nll.double()
    assert rel.max() < 1e-4, rel


def _bad_files(tmp_path) -> dict[str, Path]:
    good = tmp_path / "good.wav"
    sf.write(str(good), _clip(np.random.default_rng(2), 800), 8000)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:300])
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "text.wav"
    text.write_text("this is not audio\n" * 20)
    nan = tmp_path / "nan.wav"
    data = _clip(np.random.default_rng(3), 800)
    data[100] = np.nan
    sf.write(str(nan), data, 8000, subtype="FLOAT")
    noaudio = tmp_path / "noaudio"
    noaudio.mkdir()
    (noaudio / "readme.txt").write_text("nothing here")
    return {"truncated": truncated, "empty": empty, "text": text, "nan": nan, "noaudio": noaudio}


@pytest.mark.parametrize("case", ["truncated", "empty", "text", "nan", "noaudio"])
def test_bad_audio_is_one_line_exit_2_without_output(run, tmp_path, capsys, case):
    bad = _bad_files(tmp_path)[case]
    table = tmp_path / "table.tsv"
    status = main(["audio", "eval", "--model", str(run), "--data", str(bad), "--out", str(table)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("seqssm: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert bad.name in err
    assert not table.exists()


def test_train_on_a_folder_without_audio_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    status = main(["audio", "train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "r"), "--set",
                   "train.progress_bar=false"])
    err = capsys.readouterr().err
    assert status == 2 and "no audio files" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--set", "data.split=speakers"], "data.split"),
        (["--set", "model.vocab_size=128"], "model.vocab_size"),
        (["--set", "data.heldout_speakers=[zed]"], "zed"),
    ],
    ids=["bad-split", "vocab-not-2^bits", "unknown-speaker"],
)
def test_bad_train_options(folder, tmp_path, capsys, args, needle):
    status = main(["audio", "train", "--data", str(folder), "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert status == 2 and needle in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_generate_bad_options(run, tmp_path, capsys):
    assert main(["audio", "generate", "--model", str(run), "--out", str(tmp_path / "g"), "--seconds", "0"]) == 2
    assert "--seconds" in capsys.readouterr().err
    assert main(["audio", "generate", "--model", str(tmp_path), "--out", str(tmp_path / "g")]) == 2
    assert "not a run folder" in capsys.readouterr().err


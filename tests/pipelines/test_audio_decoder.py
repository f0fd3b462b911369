"""The spectral unit decoder end to end on a tiny FSDD-like folder: `audio train` with units.stage decoder (units of a
saved coder -> log-magnitudes), its scores against the coder's own table, `audio generate` from a planner's units
and from real files' units, and the one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf
import torch

from seqssm.domains.audio.units import UnitCoder, UnitSpec
from seqssm.pipelines.cli import main

from pipeline_helpers import as_sets, write_fsdd_like

SHARED = ["model.d_model=8", "model.n_layer=1", "model.ssm.d_state=4", "model.vocab_size=5", "data.batch_size=4",
          "data.eval_batch_size=8", "train.max_steps=3", "train.val_every=3", "train.warmup_steps=1",
          "train.progress_bar=false", "train.threads=1", "train.max_minutes=0", "data.val_fraction=0.1",
          "units.k=4", "units.hop=40", "units.n_fft=128", "units.n_mels=8", "units.speeds=[1.0]"]
TINY_DEC = SHARED + ["model.num_classes=65"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_fsdd_like(tmp_path_factory.mktemp("fsdd"))


@pytest.fixture(scope="module")
def coder_dir(folder, tmp_path_factory) -> Path:
    waves = [torch.from_numpy(sf.read(str(f), dtype="float32")[0]) for f in sorted(folder.glob("*.wav"))]
    out = tmp_path_factory.mktemp("coder")
    UnitCoder.fit(waves, 4, UnitSpec(hop=40, n_fft=128, n_mels=8), 5).save(out / "units.safetensors")
    return out


@pytest.fixture(scope="module")
def decoder(folder, coder_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dec") / "run"
    assert main(["audio", "train", "--config", "audio_fsdd_decoder", "--data", str(folder), "--out", str(out),
                 *as_sets(TINY_DEC + [f"units.coder={coder_dir}"])]) == 0
    return out


@pytest.fixture(scope="module")
def planner(folder, coder_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plan") / "run"
    assert main(["audio", "train", "--config", "audio_fsdd_plan", "--data", str(folder), "--out", str(out),
                 *as_sets(SHARED + [f"units.coder={coder_dir}"])]) == 0
    return out


def test_run_folder_scores_the_decoder_against_the_coders_table(decoder, coder_dir):
    m = json.loads((decoder / "metrics.json").read_text())
    assert m["units"]["stage"] == "decoder" and m["condition"]["speakers"] == ["ann", "bob", "cy"]
    t = m["test"]
    assert t["files"] == 30 and t["frames"] > 0
    assert all(v > 0 for v in (t["l1"], t["lsd_db"], t["table_l1"], t["table_lsd_db"]))
    assert UnitCoder.load(decoder / "model" / "units.safetensors").same_as(UnitCoder.load(coder_dir /
                                                                                         "units.safetensors"))
    for name in ("condition.safetensors", "quantizer.json", "model.safetensors"):
        assert (decoder / "model" / name).is_file()
    assert (decoder / "curves.png").stat().st_size > 0
    last = (decoder / "test.tsv").read_text().splitlines()[-1].split("\t")
    assert last[0] == "ALL" and int(last[1]) == t["frames"] and float(last[2]) == pytest.approx(t["l1"], abs=1e-4)


def test_test_table_is_the_loaded_decoders_error(decoder, folder):
    """A row of test.tsv recomputed from the saved run: load_run gives back the decoder that was scored."""
    from seqssm.domains.audio.spectral import log_magnitude
    from seqssm.pipelines.audio.infer import load_run

    run = load_run(decoder)
    row = next(r.split("\t") for r in (decoder / "test.tsv").read_text().splitlines() if "1_bob_2.wav" in r)
    wave = run.quantizer.decode(run.quantizer.encode(torch.from_numpy(sf.read(str(folder / "1_bob_2.wav"),
                                                                               dtype="float32")[0]))).float()
    units = run.coder.encode(wave)
    with torch.no_grad():
        pred = run.model(units[None], torch.tensor([run.model.speaker_id("bob")]))[0]
    l1 = (pred - log_magnitude(wave, run.coder.spec, len(units))).abs().mean()
    assert int(row[1]) == len(units) and float(row[2]) == pytest.approx(float(l1), abs=1e-3)


def test_generate_decodes_the_planners_units(decoder, planner, tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert main(["audio", "generate", "--model", str(decoder), "--plan", str(planner), "--out", str(out),
                     "--digit", "0,1", "--speaker", "cy", "--seconds", "0.2", "--batch", "2", "--seed", "3"]) == 0
    report = json.loads((outs[0] / "generate.json").read_text())
    assert [c["file"] for c in report["clips"]] == ["0_cy_00.wav", "0_cy_01.wav", "1_cy_00.wav", "1_cy_01.wav"]
    assert report["plan"] == {"run": str(planner), "temperature": 1.0} and report["decoder"]["griffin_lim_iters"] == 64
    for clip in report["clips"]:
        units = clip["units"]
        assert 1 <= len(units) <= 40 and all(0 <= u < 4 for u in units)
        wave = sf.read(str(outs[0] / clip["file"]), dtype="float32")[0]
        assert len(wave) == 40 * len(units) and (outs[0] / clip["file"].replace(".wav", ".png")).is_file()
        again = sf.read(str(outs[1] / clip["file"]), dtype="float32")[0]
        assert (wave == again).all()  # the same seed: the same plans, and the decoder is deterministic


def test_resynth_decodes_the_files_own_units(decoder, folder, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("0_ann_1.wav", "1_cy_3.wav"):
        shutil.copy(folder / name, src / name)
    out = tmp_path / "resynth"
    assert main(["audio", "generate", "--model", str(decoder), "--resynth", str(src), "--out", str(out),
                 "--no-png"]) == 0
    report = json.loads((out / "generate.json").read_text())
    coder = UnitCoder.load(decoder / "model" / "units.safetensors")
    assert [c["file"] for c in report["clips"]] == ["0_ann_00.wav", "1_cy_00.wav"]
    assert not list(out.glob("*.png"))
    for clip, name in zip(report["clips"], ("0_ann_1.wav", "1_cy_3.wav")):
        assert len(clip["units"]) == coder.frames(sf.info(str(src / name)).frames)
        assert sf.info(str(out / clip["file"])).frames == 40 * len(clip["units"])


def _refused(argv, capsys, needle, out: Path):
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2 and needle in err and err.count("\n") == 1, err
    assert not out.exists()


@pytest.mark.parametrize("rank_by", ["condition", "likelihood"])
def test_generate_ranks_plans_by_the_planners_evidence(rank_by, decoder, planner, tmp_path):
    """--rank orders each condition's plans best first by the planner's score; --keep 1 keeps that first one."""
    common = ["audio", "generate", "--model", str(decoder), "--plan", str(planner), "--digit", "0,1", "--speaker",
              "bob", "--seconds", "0.2", "--batch", "3", "--no-png", "--rank-by", rank_by, "--plan-temperature", "1.5"]
    assert main(common + ["--out", str(tmp_path / "ranked"), "--rank"]) == 0
    assert main(common + ["--out", str(tmp_path / "kept"), "--keep", "1"]) == 0
    ranked = json.loads((tmp_path / "ranked" / "generate.json").read_text())
    kept = json.loads((tmp_path / "kept" / "generate.json").read_text())
    key = f"plan_{rank_by}_score"
    assert ranked["rank_by"] == rank_by and [c["file"] for c in kept["clips"]] == ["0_bob_00.wav", "1_bob_00.wav"]
    for digit in (0, 1):
        rows = [c for c in ranked["clips"] if c["digit"] == digit]
        scores = [c[key] for c in rows]
        assert len(rows) == 3 and scores == sorted(scores, reverse=True)
        best = next(c for c in kept["clips"] if c["digit"] == digit)
        assert best["units"] == rows[0]["units"] and best[key] == scores[0]


def test_plan_evidence_is_the_planners_likelihood(planner):
    """plan_evidence batched (padded) equals each plan scored alone, and the ratio is the difference of the two
    conditions' log-likelihoods."""
    from seqssm.pipelines.audio.infer import load_run, nll_sum, plan_evidence

    run = load_run(planner)
    torch.manual_seed(1)
    plans = [torch.randint(0, 4, (n,)) for n in (3, 9, 1)]
    prefix = torch.stack([run.model.prefix(d, s) for d, s in ((0, "ann"), (1, "cy"), (1, "bob"))])
    own, ratio = plan_evidence(run.model, plans, prefix, 4)
    for i, plan in enumerate(plans):
        ids = torch.cat([torch.tensor([4]), plan, torch.tensor([4])])[None]
        mask = torch.ones(ids.shape)
        with torch.no_grad():
            c, n = nll_sum(run.model, ids, mask, prefix[i:i + 1])
            a, _ = nll_sum(run.model, ids, mask, run.model.prefix(None, None)[None])
        assert float(own[i]) == pytest.approx(-float(c / n), abs=1e-5)
        assert float(ratio[i]) == pytest.approx(float(a - c), abs=1e-4)


def test_check_parallel_checks_the_planners_sampling(decoder, planner, tmp_path):
    out = tmp_path / "checked"
    assert main(["audio", "generate", "--model", str(decoder), "--plan", str(planner), "--out", str(out), "--digit",
                 "all", "--speaker", "ann", "--seconds", "0.2", "--no-png", "--check-parallel"]) == 0
    report = json.loads((out / "generate.json").read_text())
    assert 0 <= report["planner_recurrent_vs_parallel_loglik_max_rel_diff"] < 1e-4


@pytest.mark.parametrize("case", ["temperature", "check-parallel-resynth", "guidance", "keep-resynth", "no-plan",
                                  "any-speaker", "resynth-with-plan", "another-coder"])
def test_generate_bad_decoder_options(case, decoder, planner, folder, tmp_path, capsys):
    out = tmp_path / "gen"
    other = tmp_path / "other"
    if case == "another-coder":
        shutil.copytree(planner, other)
        coder = UnitCoder.load(other / "model" / "units.safetensors")
        UnitCoder(coder.spec, coder.centroids + 1, coder.mean, coder.std).save(other / "model" / "units.safetensors")
    plan = ["--plan", str(planner), "--digit", "1", "--speaker", "ann"]
    argv, needle = {
        "temperature": (plan + ["--temperature", "0.5"], "--temperature: not for a spectral decoder"),
        "check-parallel-resynth": (["--resynth", str(folder / "1_bob_3.wav"), "--check-parallel"],
                                   "--check-parallel: not with --resynth"),
        "guidance": (plan + ["--guidance", "2"], "--guidance: not for a spectral decoder"),
        "keep-resynth": (["--resynth", str(folder / "1_bob_3.wav"), "--batch", "2", "--keep", "1"],
                         "--rank/--keep: not with --resynth"),
        "no-plan": (["--digit", "1"], "a unit decoder; name the planner of its units with --plan RUN"),
        "any-speaker": (["--plan", str(planner), "--digit", "1"], "--speaker: the decoder at"),
        "resynth-with-plan": (["--resynth", str(folder / "1_bob_3.wav"), "--plan", str(planner)],
                              "--plan: not with --resynth"),
        "another-coder": (["--plan", str(other), "--digit", "1", "--speaker", "ann"],
                          "learnt the units of another coder than the decoder"),
    }[case]
    _refused(["audio", "generate", "--model", str(decoder), "--out", str(out), *argv], capsys, needle, out)


@pytest.mark.parametrize("case", ["digit-only", "heldout", "no-coder", "vocab", "bins", "head", "other-fft"])
def test_train_bad_decoder_jobs(case, coder_dir, folder, tmp_path, capsys):
    out = tmp_path / "run"
    with_coder = TINY_DEC + [f"units.coder={coder_dir}"]
    sets, needle = {
        "digit-only": (with_coder + ["condition.by=[digit]"], "units.stage decoder is conditioned on the speaker"),
        "heldout": (with_coder + ["data.heldout_speakers=[cy]"], "data.heldout_speakers: not supported by"),
        "no-coder": (TINY_DEC, "units.coder: stage decoder: name the run"),
        "vocab": (with_coder + ["model.vocab_size=9"], "model.vocab_size 9: the decoder of"),
        "bins": (with_coder + ["model.num_classes=64"], "model.num_classes"),
        "head": (with_coder + ["model.head=lm"], "needs 'token'"),
        "other-fft": (with_coder + ["units.n_fft=256", "model.num_classes=129"], "with n_fft 128"),
    }[case]
    _refused(["audio", "train", "--config", "audio_fsdd_decoder", "--data", str(folder), "--out", str(out),
              *as_sets(sets)], capsys, needle, out)


@pytest.mark.parametrize("mode", ["units", "true-magnitude"])
def test_units_griffin_lim_script_voices_files(mode, decoder, folder, tmp_path):
    """scripts/units_griffin_lim.py on two files: one clip each, named by digit and speaker from their units, or
    the file's own name from its true magnitude, f * hop samples long."""
    import subprocess
    import sys

    src = tmp_path / "src"
    src.mkdir()
    for name in ("0_ann_1.wav", "1_cy_3.wav"):
        shutil.copy(folder / name, src / name)
    out = tmp_path / "out"
    script = Path(__file__).resolve().parents[2] / "scripts" / "units_griffin_lim.py"
    extra = ["--true-magnitude"] if mode == "true-magnitude" else []
    done = subprocess.run([sys.executable, str(script), "--coder", str(decoder), "--out", str(out), "--files",
                           str(src), *extra], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    want = ["0_ann_1.wav", "1_cy_3.wav"] if extra else ["0_ann_00.wav", "1_cy_00.wav"]
    assert sorted(p.name for p in out.glob("*.wav")) == want
    for got, name in zip(want, ("0_ann_1.wav", "1_cy_3.wav")):
        frames = -(-sf.info(str(src / name)).frames // 40)
        assert sf.info(str(out / got)).frames == 40 * frames

"""The byte LM job: data windows, schedule, the fixed-seed loss-curve guard, run folder, sampling."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import seqssm
from seqssm.domains import DomainInputError
from seqssm.domains.bytes import ByteFile, TrainWindows, ValWindows
from seqssm.pipelines.cli import main
from seqssm.pipelines.lm.config import LMJobConfig, load_job
from seqssm.pipelines.lm.sample import sample_lm
from seqssm.pipelines.lm import train as lm_train
from seqssm.pipelines.lm.train import ARTIFACTS, train_lm
from seqssm.pipelines.training import lr_schedule

from pipeline_helpers import TINY, make_text


def _job(data, out, *extra):
    return load_job(None, TINY + list(extra), data=str(data), out=str(out))


# ---------------------------------------------------------------------------------------------------- data


def test_byte_windows_split_and_content(tmp_path):
    raw = make_text(5_000, seed=3)
    p = tmp_path / "f.bin"
    p.write_bytes(raw)
    data = ByteFile(p, seq_len=50, val_fraction=0.1)
    assert data.split == 5_000 - 500

    val = ValWindows(data)
    assert len(val) == (500 - 1) // 50
    for i in range(len(val)):
        w = val[i]
        assert w.dtype == torch.int64 and w.shape == (51,)
        start = data.split + i * 50
        assert bytes(w.tolist()) == raw[start : start + 51]  # contiguous, stride seq_len: each target once
    assert len(ValWindows(data, max_windows=3)) == 3
    with pytest.raises(IndexError):
        val[len(val)]

    train = TrainWindows(data, num_windows=200, seed=7)
    starts = []
    for i in range(200):
        w = bytes(train[i].tolist())
        start = raw.find(w)
        assert start >= 0 and start + 51 <= data.split, "a training window reaches into the held-out tail"
        starts.append(start)
    assert len(set(starts)) > 150, "training windows are not spread over the file"
    again = TrainWindows(data, num_windows=200, seed=7)
    other = TrainWindows(data, num_windows=200, seed=8)
    assert all(torch.equal(train[i], again[i]) for i in range(20))
    assert not all(torch.equal(train[i], other[i]) for i in range(20))


def test_too_small_file_is_one_line_error_naming_it(tmp_path):
    p = tmp_path / "tiny.bin"
    p.write_bytes(b"abc" * 30)
    with pytest.raises(DomainInputError) as err:
        ByteFile(p, seq_len=32, val_fraction=0.05)
    assert str(p) in str(err.value) and "\n" not in str(err.value)
    need = int(str(err.value).split("need at least ")[1].split()[0])
    p.write_bytes(make_text(need))
    ByteFile(p, seq_len=32, val_fraction=0.05)  # the size the message asks for is enough


def test_lr_schedule_warmup_then_cosine():
    f = lr_schedule(warmup_steps=10, total_steps=110, min_lr_ratio=0.1)
    assert f(0) == pytest.approx(0.1) and f(4) == pytest.approx(0.5) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.1 + 0.9 * 0.5)
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    vals = [f(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))


# ---------------------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same tiny job trained twice with the same seed, into two run folders."""
    root = tmp_path_factory.mktemp("lm")
    data = root / "corpus.txt"
    data.write_bytes(make_text(20_000))
    runs = []
    for name in ("a", "b"):
        metrics = train_lm(_job(data, root / name))
        runs.append((root / name, metrics))
    return data, runs


def test_fixed_seed_loss_curves_are_identical_and_loss_decreases(two_runs):
    _, [(a, ma), (b, mb)] = two_runs
    ha = json.loads((a / "history.json").read_text())
    hb = json.loads((b / "history.json").read_text())
    assert [s for s, _ in ha["train"]] == list(range(1, 31))
    assert ha["train"] == hb["train"], "same seed, different training loss curve"
    assert ha["val"] == hb["val"]
    assert [s for s, _ in ha["val"]] == [15, 30]
    losses = [v for _, v in ha["train"]]
    assert losses[0] == pytest.approx(math.log(256), abs=0.3)  # starts near uniform over bytes
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0, f"loss did not decrease: {losses}"
    assert ha["val"][-1][1] < ha["val"][0][1]
    assert ma["val_bits_per_byte"] == mb["val_bits_per_byte"]


def test_different_seed_gives_a_different_curve(two_runs, tmp_path):
    data, [(a, _), _] = two_runs
    train_lm(_job(data, tmp_path / "c", "train.seed=1", "train.max_steps=3", "train.val_every=3"))
    hc = json.loads((tmp_path / "c" / "history.json").read_text())["train"]
    ha = json.loads((a / "history.json").read_text())["train"][:3]
    assert [v for _, v in hc] != [v for _, v in ha]


def test_run_folder_contents(two_runs):
    data, [(run, metrics), _] = two_runs
    assert sorted(p.name for p in run.iterdir()) == sorted(ARTIFACTS), "missing artifacts or staging leftovers"
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk == pytest.approx(metrics)
    for key in ("final_train_loss", "val_bits_per_byte", "steps", "seconds", "tokens_per_second"):
        assert key in on_disk
    assert on_disk["steps"] == 30
    assert on_disk["val_bits_per_byte"] == pytest.approx(on_disk["val_loss"] / math.log(2))
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "train_loss" in (run / "logs" / "metrics.csv").read_text().splitlines()[0]

    job = seqssm.load_config(LMJobConfig, str(run / "config.yaml"))  # the resolved config reloads
    assert job.data.path == str(data.resolve()) and job.model.d_model == 16 and job.train.max_steps == 30

    model = seqssm.MambaLM.from_pretrained(run / "model")
    assert model.config.d_model == 16
    x = torch.tensor([list(b"acgt no")])
    again = seqssm.MambaLM.from_pretrained(run / "model")
    assert torch.equal(model(x), again(x))


def test_failed_run_leaves_nothing(two_runs, tmp_path, monkeypatch):
    data, _ = two_runs

    def boom(*a, **k):
        raise RuntimeError("disk full while plotting")

    monkeypatch.setattr(lm_train, "plot_curves", boom)
    with pytest.raises(RuntimeError):
        train_lm(_job(data, tmp_path / "new", "train.max_steps=2", "train.val_every=2"))
    assert not (tmp_path / "new").exists()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("x")
    with pytest.raises(RuntimeError):
        train_lm(_job(data, mine, "train.max_steps=2", "train.val_every=2"), overwrite=True)
    assert [p.name for p in mine.iterdir()] == ["keep.txt"]


# ---------------------------------------------------------------------------------------------- sampling


def test_sample_command_prints_a_seeded_continuation(two_runs, capsys):
    _, [(run, _), _] = two_runs
    args = ["lm", "sample", "--model", str(run / "model"), "--prompt", "acg", "--max-new-tokens", "40",
            "--seed", "3", "--top-k", "8", "--top-p", "0.9", "--temperature", "0.9"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first
    assert main(args[:-8] + ["--seed", "4", "--top-k", "8", "--top-p", "0.9", "--temperature", "0.9"]) == 0
    assert capsys.readouterr().out != first

    gen = seqssm.GenerateConfig(max_new_tokens=40, temperature=0.9, top_k=8, top_p=0.9, seed=3)
    cont = sample_lm(run / "model", b"acg", gen)
    assert len(cont) == 40
    assert first == cont.decode("utf-8", errors="replace") + "\n"

    assert main(["lm", "sample", "--model", str(run), "--prompt", "acg", "--max-new-tokens", "5",
                 "--temperature", "0"]) == 0  # a run folder works too; temperature 0 is greedy
    assert len(capsys.readouterr().out) == 6


def test_moe_job_adds_the_balancing_loss_and_logs_dropped_tokens(tmp_path):
    """With MoE blocks the job trains on loss + aux loss and logs both the aux loss and the dropped-token count."""
    import csv

    data = tmp_path / "corpus.txt"
    data.write_bytes(make_text(20_000))
    train_lm(_job(data, tmp_path / "moe", "model.moe.layer_idx=[0]", "model.moe.n_experts=2",
                     "model.moe.capacity_factor=0.5", "train.max_steps=4", "train.val_every=4", "train.log_every=1"))
    rows = list(csv.DictReader(open(next((tmp_path / "moe" / "logs").rglob("metrics.csv")))))
    aux = [float(r["moe_aux_loss"]) for r in rows if r.get("moe_aux_loss")]
    dropped = [float(r["moe_dropped_tokens"]) for r in rows if r.get("moe_dropped_tokens")]
    assert aux and all(a > 0 for a in aux)
    assert dropped and max(dropped) > 0  # capacity 0.5 of an even share cannot take every token

"""`seqssm pretrain` on a tiny genome: the length schedule, truncated BPTT, the held-out score, and crash-safe
resume (a run killed with SIGKILL and resumed ends with the same weights as one that never stopped)."""

from __future__ import annotations

import csv
import math
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seqssm.domains.dna.tokenizer import VOCAB
from seqssm.domains.dna import GenomeCorpus
from seqssm.pipelines.pretrain import checkpoints
from seqssm.pipelines.pretrain import heldout as pt
from seqssm.pipelines.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ["model.d_model=16", "model.n_layer=2", "model.ssm.d_state=4", "schedule.tokens_per_batch=512",
        "train.progress_bar=false", "train.warmup_steps=2", "train.threads=1", "data.eval_segment=700",
        "data.eval_context=64", "data.eval_max_tokens=500"]


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> Path:
    """Two records of real E. coli sequence (the bundled demo file), 70 bases per line."""
    seq = (ROOT / "data" / "demo" / "ecoli_k12_mg1655_first300k.txt").read_text()
    path = tmp_path_factory.mktemp("genome") / "small.fa"
    with open(path, "w") as f:
        for name, part in (("chrA", seq[:12000]), ("chrB", seq[100000:108000])):
            f.write(f">{name}\n" + "\n".join(part[i:i + 70] for i in range(0, len(part), 70)) + "\n")
    return path


def _args(genome, out, steps, extra=()):
    sets = TINY + [f"schedule.stages=[{{seq_len: 32, steps: {steps // 2}}}, {{seq_len: 128, steps: {steps - steps // 2}}}]",
                   *extra]
    return ["pretrain", "--data", str(genome), "--out", str(out), *[x for kv in sets for x in ("--set", kv)]]


def test_n_id_matches_the_tokenizer():
    assert pt.N_ID == VOCAB["N"]


def test_run_folder_schedule_and_heldout_score(genome, tmp_path):
    out = tmp_path / "run"
    assert main(_args(genome, out, 8, ["train.val_every=4", "train.checkpoint_every=3", "train.log_every=1"])) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 8 and m["heldout_tokens"] == 1200 + 800  # the last 10% of both records
    assert 1.0 < m["heldout_bits_per_token"] < 4.0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000006.ckpt", "step-00000008.ckpt"]
    with open(out / "logs" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("seq_len")]
    # the length warm-up at a constant token budget: 16 windows of 32, then 4 of 128
    assert [(float(r["seq_len"]), float(r["batch_size"])) for r in rows] == [(32, 16)] * 4 + [(128, 4)] * 4
    for name in ("model", "config.yaml", "history.json", "curves.png"):
        assert (out / name).exists()
    assert list((out / "logs" / "tensorboard").glob("events.out.tfevents.*"))


def test_segments_give_the_same_first_loss(genome, tmp_path):
    """Before any update the loss of a window fed in segments (state carried) equals the loss of one piece, for
    both gradient modes (seqssm.tbptt's tests compare the gradients themselves, in float64)."""
    losses = []
    for seg, ckpt, mode in ((0, "false", "exact"), (48, "true", "exact"), (48, "false", "truncated")):
        out = tmp_path / f"seg{seg}-{ckpt}-{mode}"  # ...also with activation checkpointing
        assert main(_args(genome, out, 2, [f"schedule.segment_len={seg}", "train.val_every=100",
                                           f"train.activation_checkpointing={ckpt}",
                                           f"schedule.segment_backprop={mode}"])) == 0
        losses.append(json.loads((out / "history.json").read_text())["train"][0][1])
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert losses[2] == pytest.approx(losses[0], rel=1e-5)


def test_exact_segments_train_like_one_piece(genome, tmp_path):
    """Exact segmented backprop gives the full pass's gradients, so a short run's weights match (float32)."""
    runs = {}
    for seg in (0, 40):
        out = tmp_path / f"seg{seg}"
        assert main(_args(genome, out, 4, [f"schedule.segment_len={seg}", "train.val_every=100"])) == 0
        runs[seg] = _weights(out)
    for k, w in runs[0].items():
        assert torch.allclose(runs[40][k], w, rtol=1e-4, atol=1e-6), k


def test_heldout_score_does_not_depend_on_the_segment_length(genome):
    import seqssm

    corpus = GenomeCorpus(str(genome), 0.1)
    model = seqssm.build_model(seqssm.ModelConfig.from_flat(d_model=16, n_layer=2, d_state=4, vocab_size=10)).double()
    a = pt.heldout_bits(model, corpus, context=64, segment=1000)
    b = pt.heldout_bits(model, corpus, context=64, segment=37)
    assert a["tokens"] == b["tokens"] == 2000
    assert a["bits_per_token"] == pytest.approx(b["bits_per_token"], rel=1e-12)


def _weights(out: Path) -> dict:
    return load_file(str(out / "model" / "model.safetensors"))


def test_killed_and_resumed_run_ends_with_the_same_weights(genome, tmp_path):
    steps, extra = 160, ["train.val_every=1000", "train.checkpoint_every=10"]
    whole = tmp_path / "whole"
    assert main(_args(genome, whole, steps, extra)) == 0

    cut = tmp_path / "cut"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "seqssm.pipelines.cli", *_args(genome, cut, steps, extra)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list((cut / "checkpoints").glob("step-*.ckpt")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (cut / "metrics.json").exists(), "the run finished before it could be killed"
    assert main(_args(genome, cut, steps, extra) + ["--resume"]) == 0
    m = json.loads((cut / "metrics.json").read_text())
    assert m["resumed_from"] and m["steps"] == steps
    a, b = _weights(whole), _weights(cut)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _kill_group_after_first_checkpoint(cmd: list[str], folder: Path) -> None:
    """Start `cmd` in its own process group, SIGKILL the whole group once a checkpoint is in `folder`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while not list(folder.glob("step-*.ckpt")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # every process of the run: rank 0 and the rank it launched
    proc.wait()


def test_killed_two_process_run_resumes_to_the_same_weights(genome, tmp_path):
    """DDP with 2 CPU processes (gloo), SIGKILLed mid-epoch after its first checkpoint, resumed with 2 processes:
    the final weights equal those of an uninterrupted 2-process run."""
    steps, extra = 24, ["train.val_every=1000", "train.checkpoint_every=8", "train.devices=2"]
    cli = [sys.executable, "-m", "seqssm.pipelines.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole"
    res = subprocess.run(cli + _args(genome, whole, steps, extra), env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    cut = tmp_path / "cut"
    _kill_group_after_first_checkpoint(cli + _args(genome, cut, steps, extra), cut / "checkpoints")
    assert not (cut / "metrics.json").exists(), "the run finished before it could be killed"
    res = subprocess.run(cli + _args(genome, cut, steps, extra) + ["--resume"], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    m = json.loads((cut / "metrics.json").read_text())
    assert m["resumed_from"] and m["steps"] == steps and m["processes"] == 2
    a, b = _weights(whole), _weights(cut)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_with_another_model_config_is_refused(genome, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(genome, out, 2, ["train.val_every=100"])) == 0
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    capsys.readouterr()
    assert main(_args(genome, out, 4, ["train.val_every=100", "model.d_model=32"]) + ["--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another model config" in err[0] and "model.d_model is 16 there, 32 here" in err[0]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before


def test_corrupt_newest_checkpoint_falls_back_to_an_older_one(genome, tmp_path):
    out = tmp_path / "run"
    assert main(_args(genome, out, 6, ["train.val_every=100", "train.checkpoint_every=2", "train.keep_checkpoints=3"])) == 0
    newest = out / "checkpoints" / "step-00000006.ckpt"
    newest.write_bytes(newest.read_bytes()[:1000])  # a torn write
    with pytest.warns(UserWarning, match="step-00000006.ckpt: unreadable checkpoint"):
        assert checkpoints.latest_checkpoint(out / "checkpoints").name == "step-00000004.ckpt"


def test_existing_checkpoints_need_resume(genome, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(genome, out, 2, ["train.val_every=100"])) == 0
    assert main(_args(genome, out, 2, ["train.val_every=100"])) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("kv, key", [("train.max_steps=5", "train.max_steps"), ("data.source=wav", "data.source"),
                                     ("model.vocab_size=256", "model.vocab_size")],
                         ids=["max-steps", "source", "vocab"])
def test_bad_config(genome, tmp_path, capsys, kv, key):
    assert main(_args(genome, tmp_path / "r", 2, [kv])) == 2
    assert key in capsys.readouterr().err


@pytest.mark.parametrize("content, match", [("", "no FASTA records (empty file)"), (">empty\n", "has no sequence"),
                                            (">short\nACGTACGTAC\n", "not enough for a window of schedule seq_len")],
                         ids=["empty-file", "empty-record", "shorter-than-a-window"])
def test_bad_genome_is_one_line_before_any_compute(tmp_path, capsys, content, match):
    fa = tmp_path / "bad.fa"
    fa.write_text(content)
    out = tmp_path / "r"
    assert main(_args(fa, out, 2, [])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.fa" in err[0] and match in err[0], err
    assert not out.exists()


def test_no_such_fasta(tmp_path, capsys):
    assert main(["pretrain", "--data", str(tmp_path / "none.fa"), "--out", str(tmp_path / "r")]) == 2
    assert "none.fa" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()




def test_classifier_fine_tunes_from_a_pretrained_run(genome, tmp_path, capsys):
    """train.init_from copies the pretrained backbone into the classifier; a different width is one line."""
    import seqssm
    from seqssm.checkpoint import load_backbone_weights
    from classify_helpers import make_rows, write_csv

    run = tmp_path / "pre"
    assert main(_args(genome, run, 2, ["train.val_every=100"])) == 0
    cfg = seqssm.ModelConfig.from_flat(d_model=16, n_layer=2, d_state=4, vocab_size=10, head="classify")
    clf = seqssm.build_model(cfg)
    assert load_backbone_weights(clf, run) == len(clf.backbone.state_dict())
    pre = _weights(run)
    for k, v in clf.backbone.state_dict().items():
        assert torch.equal(v, pre["backbone." + k]), k

    tr, dv = write_csv(tmp_path / "train.csv", make_rows(32, seed=1)), write_csv(tmp_path / "dev.csv", make_rows(16, 2))
    base = ["classify", "train", "--train", tr, "--val", dv, "--set", "model.d_model=16", "--set", "model.n_layer=2",
            "--set", "model.ssm.d_state=4", "--set", "train.max_steps=2", "--set", "train.progress_bar=false",
            "--set", f"train.init_from={run}"]
    assert main(base + ["--out", str(tmp_path / "ft")]) == 0
    assert json.loads((tmp_path / "ft" / "metrics.json").read_text())["init_from"] == str(run)
    wide = base + ["--out", str(tmp_path / "bad"), "--set", "model.d_model=32"]
    capsys.readouterr()
    assert main(wide) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("seqssm: error: ") and "model.safetensors" in err and "has shape" in err
    assert not (tmp_path / "bad").exists()


def test_two_process_ddp_on_cpu(genome, tmp_path):
    """Lightning's DDP (gloo) with 2 CPU processes: each trains on its own windows; the logged tokens per step
    count both; process 0 alone writes the checkpoints and the run folder."""
    out = tmp_path / "ddp"
    args = _args(genome, out, 4, ["train.val_every=100", "train.checkpoint_every=2", "train.devices=2",
                                  "train.log_every=1", "schedule.segment_len=48"])  # several backwards a step
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "seqssm.pipelines.cli", *args], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Traceback" not in res.stderr, res.stderr[-2000:]  # process 1 ends quietly too
    m = json.loads((out / "metrics.json").read_text())
    assert m["processes"] == 2 and m["steps"] == 4
    with open(out / "logs" / "metrics.csv") as f:
        tokens = [float(r["tokens_per_step"]) for r in csv.DictReader(f) if r.get("tokens_per_step")]
    assert tokens[0] == 2 * 16 * 32
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002.ckpt", "step-00000004.ckpt"]


def test_bert_masking_proportions():
    ids = torch.full((200, 500), 5)
    corrupted, chosen = pt.mask_tokens(ids, 0.15, torch.Generator().manual_seed(0))
    n = int(chosen.sum())
    assert abs(n / ids.numel() - 0.15) < 0.005
    masked = (corrupted == pt.MASK_ID) & chosen
    changed = (corrupted != ids) & ~masked
    assert abs(int(masked.sum()) / n - 0.8) < 0.01
    assert abs(int(changed.sum()) / n - 0.1 * 0.75) < 0.01  # a random base differs from A 3 times in 4
    assert torch.equal(corrupted[~chosen], ids[~chosen])
    assert set(pt.BASE_IDS) == {VOCAB[b] for b in "ACGT"} and pt.MASK_ID == VOCAB["[MASK]"]


def test_masked_objective_with_a_bidirectional_model(genome, tmp_path):
    out = tmp_path / "mlm"
    assert main(_args(genome, out, 4, ["objective.kind=masked", "model.layer=bimamba", "train.val_every=2"])) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["objective"] == "masked" and 0.5 < m["heldout_bits_per_token"] < 4.0
    assert m["heldout_tokens"] > 0.1 * 1536  # about 15% of the held-out windows of 128 tokens


@pytest.mark.parametrize("extra, key", [(["objective.kind=masked"], "model.layer"),
                                        (["model.layer=bimamba"], "model.layer"),
                                        (["objective.kind=masked", "model.layer=bimamba", "schedule.segment_len=64"],
                                         "schedule.segment_len")],
                         ids=["masked-causal-model", "causal-bimamba", "masked-tbptt"])
def test_objective_and_model_must_agree(genome, tmp_path, capsys, extra, key):
    assert main(_args(genome, tmp_path / "r", 2, extra)) == 2
    assert key in capsys.readouterr().err


def test_bf16_mixed_precision_trains(genome, tmp_path):
    """bf16 autocast around the model: matmuls in bf16, the scan and its state in float32, parameters float32."""
    out = tmp_path / "bf16"
    assert main(_args(genome, out, 4, ["train.precision=bf16-mixed", "train.val_every=100"])) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert math.isfinite(m["heldout_bits_per_token"]) and m["heldout_bits_per_token"] < 4.0
    w = _weights(out)
    assert all(t.dtype == torch.float32 for t in w.values())


def test_audio_crops_as_a_pretraining_source(tmp_path):
    """data.source audio: a folder of WAVs resampled, mu-law quantised; the last 10% of every file held out."""
    import numpy as np
    import soundfile as sf

    folder = tmp_path / "wavs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, rate in enumerate((8000, 8000, 16000)):  # the 16 kHz file is resampled to 8 kHz: 4000 samples
        t = np.arange(4000 * rate // 8000) / rate
        wave = 0.5 * np.sin(2 * np.pi * (220 + 110 * i) * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(folder / f"clip{i}.wav", wave.astype(np.float32), rate)
    out = tmp_path / "run"
    args = _args(folder, out, 4, ["data.source=audio", "data.sample_rate=8000", "model.vocab_size=256",
                                  "train.val_every=100"])
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["source"] == "audio" and m["heldout_tokens"] == 3 * 400
    assert 0.5 < m["heldout_bits_per_token"] < 8.5
    q = json.loads((out / "model" / "quantizer.json").read_text())
    assert q["bits"] == 8 and q["sample_rate"] == 8000 and q["kind"] == "mulaw"


@pytest.mark.parametrize("kv, key", [("model.vocab_size=10", "model.vocab_size"),
                                     ("data.bits=0", "data.bits"), ("data.bits=-1", "data.bits")],
                         ids=["vocab-not-2^bits", "bits-zero", "bits-negative"])
def test_bad_audio_config(tmp_path, capsys, kv, key):
    args = _args(tmp_path, tmp_path / "r", 2, ["data.source=audio", "model.vocab_size=256", kv])
    assert main(args) == 2
    assert key in capsys.readouterr().err



def test_budget_covers_the_whole_job_final_scoring_included(genome, tmp_path):
    """train.max_minutes is the job's wall clock: a run with far more steps than the budget allows stops by the
    clock's rule (time used + the measured reserve for the final held-out scoring reach the budget), scores every
    held-out token, and the whole job ends within the budget plus a minute."""
    minutes, out = 0.35, tmp_path / "run"
    t0 = time.perf_counter()
    assert main(_args(genome, out, 100000, [f"train.max_minutes={minutes}", "train.val_every=5",
                                            "train.checkpoint_every=100000"])) == 0
    wall = time.perf_counter() - t0
    m = json.loads((out / "metrics.json").read_text())
    assert 2 <= m["steps"] < 100000
    assert m["heldout_tokens"] == 1200 + 800  # the final score still reads all of it
    t = m["timing"]
    assert t["heldout_tokens_read"] == 1200 + 64 + 800 + 64  # held-out parts plus each record's warm-up
    assert t["reserved_after_training"] >= 15.0  # the files' fixed share, plus the scoring's predicted seconds
    assert wall < 60 * (minutes + 1) and t["job"] < 60 * (minutes + 1)
    assert t["job"] + t["reserved_after_training"] >= 60 * minutes - 1.0  # stopped by the rule, not before


def test_init_from_a_training_checkpoint(genome, tmp_path, capsys):
    """train.init_from also takes a pretraining checkpoint (a run not finished, or an earlier step of one): the
    classifier's backbone is that step's; a file that is not a checkpoint is one line."""
    import seqssm
    from seqssm.pipelines.training import init_model

    run = tmp_path / "pre"
    assert main(_args(genome, run, 4, ["train.val_every=100", "train.checkpoint_every=2"])) == 0
    ckpt = run / "checkpoints" / "step-00000002.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    cfg = seqssm.ModelConfig.from_flat(d_model=16, n_layer=2, d_state=4, vocab_size=10, head="classify")
    clf = seqssm.build_model(cfg)
    init_model(clf, str(ckpt))
    for k, v in clf.backbone.state_dict().items():
        assert torch.equal(v, state["model.backbone." + k]), k
    final = _weights(run)  # step 4: not what was loaded
    assert any(not torch.equal(v, final["backbone." + k]) for k, v in clf.backbone.state_dict().items())

    bad = tmp_path / "notes.ckpt"
    bad.write_text("not a checkpoint")
    from classify_helpers import make_rows, write_csv
    tr, dv = write_csv(tmp_path / "train.csv", make_rows(32, seed=1)), write_csv(tmp_path / "dev.csv", make_rows(16, 2))
    capsys.readouterr()
    assert main(["classify", "train", "--train", tr, "--val", dv, "--out", str(tmp_path / "ft"),
                 "--set", "model.d_model=16", "--set", "model.n_layer=2", "--set", "train.progress_bar=false",
                 "--set", f"train.init_from={bad}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a readable training checkpoint" in err[0] and str(bad) in err[0]
    assert not (tmp_path / "ft").exists()


def test_two_process_ddp_stops_together_on_the_budget(genome, tmp_path):
    """Under DDP the budget's stop is decided by process 0 (which alone measures the final scoring) and broadcast:
    both processes stop at the same step (a disagreement would leave one waiting in a collective) and the job ends
    within the budget plus a minute."""
    out, minutes = tmp_path / "ddp", 0.75  # start-up of the second process and the 15 s reserve come out of it
    args = _args(genome, out, 100000, ["train.val_every=5", "train.checkpoint_every=100000", "train.devices=2",
                                       f"train.max_minutes={minutes}"])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "seqssm.pipelines.cli", *args], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["processes"] == 2 and 2 <= m["steps"] < 100000
    assert time.perf_counter() - t0 < 60 * (minutes + 1) + 30  # + the two interpreters' start-up

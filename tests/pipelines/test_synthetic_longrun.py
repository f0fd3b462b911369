"""Long runs of `seqssm eval` (pipelines/synthetic/longrun.py): an interrupted and resumed run ends with the same
weights bit for bit, the zero-loss stop, scoring a checkpoint (--score), and one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import seqssm
from pipeline_helpers import one_line_error
from seqssm.pipelines.cli import main
from seqssm.pipelines.synthetic import longrun
from seqssm.pipelines.synthetic import train as E
from seqssm.pipelines.synthetic.config import CopyJob, InductionHeadsJob
from seqssm.pipelines.synthetic.penalty import DecayPenalty

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# a tiny induction-heads long run: a checkpoint after every step (checkpoint_seconds far below a step's time), no
# wall-clock rule (budget 0), so every decision is a function of the seed
TINY_IH = [
    "model.d_model=16", "model.ssm.d_state=4", "train.steps=24", "train.budget_seconds=0",
    "train.checkpoint_seconds=0.000000001", "train.progress_bar=false", "train.window=4",
    "train.advance_accuracy=0", "eval.lengths=[8,32]", "eval.samples=16", "eval.batch_size=8", "eval.segment=8",
]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _job(tmp_path: Path, name: str, extra=()) -> InductionHeadsJob:
    sets = TINY_IH + list(extra) + [f"out_dir={tmp_path / name}"]
    return seqssm.load_config(InductionHeadsJob, str(CONFIGS / "eval_induction_heads_long.yaml"), sets)


class Killed(Exception):
    """Stands for the process being killed in the middle of a step (after its last checkpoint)."""


def _assert_same_state(a: dict, b: dict) -> None:
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys() and len(sa) > 0
    for i in sa:
        for k in sa[i]:
            assert torch.equal(sa[i][k], sb[i][k]), (i, k)
    assert a["scheduler"] == b["scheduler"]
    assert torch.equal(a["rng"]["generator"], b["rng"]["generator"])
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    la, lb = dict(a["loop"]), dict(b["loop"])
    la.pop("seconds"), lb.pop("seconds")
    assert la == lb


@pytest.mark.parametrize("curriculum, schedule, kill_at", [
    ("[8,16]", "constant", 5),  # killed in the first curriculum stage
    ("[8,16]", "cosine", 17),  # in the second, with the lr schedule moving
    ("[16]", "constant", 11),  # the paper's one-length protocol
], ids=["curriculum-stage1", "curriculum-stage2-cosine", "one-length"])
def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path, monkeypatch, curriculum, schedule,
                                                                  kill_at):
    extra = [f"train.curriculum={curriculum}", f"train.lr_schedule={schedule}"]
    whole = _job(tmp_path, "whole", extra)
    longrun.run_job(whole, log=lambda *a: None)
    reference = longrun.load_checkpoint(Path(whole.out_dir), "test")
    assert reference["loop"]["step"] == 24 and reference["loop"]["stopped_by"] == "steps"

    cut = _job(tmp_path, "cut", extra)
    real_sampler = E.task_sampler
    calls = {"n": 0}

    def dying_sampler(job):
        sample = real_sampler(job)

        def wrapped(b, l, g):
            if calls["n"] == kill_at:
                raise Killed
            calls["n"] += 1
            return sample(b, l, g)

        return wrapped

    monkeypatch.setattr(E, "task_sampler", dying_sampler)
    with pytest.raises(Killed):
        longrun.run_job(cut, log=lambda *a: None)
    monkeypatch.setattr(E, "task_sampler", real_sampler)
    partial = longrun.load_checkpoint(Path(cut.out_dir), "test")
    assert partial["loop"]["step"] == kill_at and not partial["loop"]["stopped_by"]
    # the interrupted run differs from the finished one (else the comparison below would prove nothing)
    assert any(not torch.equal(partial["model"][k], reference["model"][k]) for k in reference["model"])

    lines = []
    longrun.resume_run("induction-heads", cut.out_dir, log=lines.append)
    assert any(f"resuming at step {kill_at}" in line for line in lines), lines
    _assert_same_state(longrun.load_checkpoint(Path(cut.out_dir), "test"), reference)
    a = json.loads((Path(whole.out_dir) / "metrics.json").read_text())["results"][0]["eval"]
    b = json.loads((Path(cut.out_dir) / "metrics.json").read_text())["results"][0]["eval"]
    assert {k: v["accuracy"] for k, v in a.items()} == {k: v["accuracy"] for k, v in b.items()}


def test_resuming_a_finished_run_only_scores(tmp_path):
    job = _job(tmp_path, "run", ["train.steps=3"])
    longrun.run_job(job, log=lambda *a: None)
    before = longrun.load_checkpoint(Path(job.out_dir), "test")
    lines = []
    longrun.resume_run("induction-heads", job.out_dir, log=lines.append)
    assert any("scoring only" in line for line in lines)
    _assert_same_state(longrun.load_checkpoint(Path(job.out_dir), "test"), before)


def test_a_stopped_run_resumed_with_a_new_cap_trains_on_as_if_never_stopped(tmp_path, capsys):
    # one length and a constant lr: nothing the steps taken depend on changes with train.steps (the curriculum's
    # step shares and the cosine schedule would)
    same = ["train.curriculum=[16]", "train.lr_schedule=constant"]
    whole = _job(tmp_path, "whole", same + ["train.steps=12"])
    longrun.run_job(whole, log=lambda *a: None)
    short = _job(tmp_path, "short", same + ["train.steps=5"])
    longrun.run_job(short, log=lambda *a: None)
    assert longrun.load_checkpoint(Path(short.out_dir), "test")["loop"]["stopped_by"] == "steps"
    assert main(["eval", "induction-heads", "--resume", short.out_dir, "--set", "train.steps=12"]) == 0
    done = longrun.load_checkpoint(Path(short.out_dir), "test")
    ref = longrun.load_checkpoint(Path(whole.out_dir), "test")
    assert done["loop"].pop("continued") == [{"at_step": 5, "after": "steps", "settings": ["train.steps=12"]}]
    ref["loop"].pop("continued")
    _assert_same_state(done, ref)
    assert seqssm.load_config(InductionHeadsJob, str(Path(short.out_dir) / "config.yaml")).train.steps == 12
    metrics = json.loads((Path(short.out_dir) / "metrics.json").read_text())
    assert metrics["results"][0]["continued"][0]["at_step"] == 5


def test_zero_loss_stop_ends_training_and_says_so():
    # strings of 2 tokens from 4, copied: the causal conv alone solves it, so the loss does reach ~0
    sets = ["model.d_model=16", "model.ssm.d_state=4", "model.vocab_size=5", "task.vocab=4", "train.curriculum=[2]",
            "train.steps=3000", "train.budget_seconds=0", "train.lr=0.01", "train.batch_size=16",
            "train.progress_bar=false", "train.stop_window=10", "train.stop_loss=0.05", "train.window=10"]
    job = seqssm.load_config(CopyJob, str(CONFIGS / "eval_copy.yaml"), sets)
    _, rec = E.train_model(job, job.model)
    assert rec["stopped_by"] == "zero loss" and rec["steps"] < 3000, rec
    # the running statistics cover the same 10 batches as the rule (train.window 10)
    assert rec["final_train_accuracy"] == 1.0 and rec["final_train_loss"] < 0.05
    assert "last 10 batches" in rec["stop_rule"]
    job.train.stop_window = 0  # the same run without the rule goes to the step cap
    job.train.steps = rec["steps"] + 5
    _, rec2 = E.train_model(job, job.model)
    assert rec2["stopped_by"] == "steps" and rec2["steps"] == rec["steps"] + 5


@pytest.mark.parametrize("lengths", [[8], [8, 40, 64]], ids=["one-length", "three-lengths"])
def test_score_writes_each_length_with_standard_errors_and_wrong_answers(tmp_path, lengths, capsys):
    job = _job(tmp_path, "run", ["train.steps=3"])
    longrun.run_job(job, log=lambda *a: None)
    out = tmp_path / "scored"
    argv = ["eval", "induction-heads", "--score", job.out_dir, "--out", str(out),
            "--set", f"eval.lengths=[{','.join(map(str, lengths))}]", "--set", "eval.samples=12"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["lengths"] == lengths and metrics["checkpoint_step"] == 3
    res = metrics["results"][0]["eval"]
    for x in lengths:
        r = res[str(x)]
        assert (out / "lengths" / f"L{x}.json").is_file()
        assert r["samples"] == 12 and r["scored_tokens"] == 12 and r["input_length"] == x
        p = r["accuracy"]
        assert r["stderr"] == pytest.approx(math.sqrt(p * (1 - p) / 12), abs=1e-4)
        wrong = r["wrong_trigger_distances"]
        assert len(wrong) == round((1 - p) * 12) and all(1 <= d <= x - 1 for d in wrong)
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    table = (out / "table.md").read_text()
    assert "accuracy ± s.e." in table and f"| {lengths[-1]:,} |" in table


def test_first_trigger_distance_counts_back_from_the_end():
    job = seqssm.load_config(InductionHeadsJob, str(CONFIGS / "eval_induction_heads.yaml"))
    batch = E.task_sampler(job)(64, 50, torch.Generator().manual_seed(3))
    dist = E.first_trigger_distance(job, batch.inputs)
    rows = torch.arange(64)
    first = 49 - dist
    assert (batch.inputs[rows, first] == job.task.vocab).all()
    assert (batch.inputs[rows, first + 1] == batch.targets[:, 0]).all()  # the answer follows the first trigger
    before = torch.arange(50)[None, :] < first[:, None]
    assert not ((batch.inputs == job.task.vocab) & before).any()



def test_long_run_errors_are_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(main, ["eval", "induction-heads", "--resume", str(empty)], capsys, "config.yaml")
    job = _job(tmp_path, "run", ["train.steps=2"])
    longrun.run_job(job, log=lambda *a: None)
    one_line_error(main, ["eval", "induction-heads", "--resume", job.out_dir, "--set", "train.lr=1"], capsys,
                    "--set train.lr=1", "train.steps")
    one_line_error(main, ["eval", "induction-heads", "--resume", job.out_dir, "--layer", "s4d"], capsys,
                    "--layer", "cannot be combined")
    one_line_error(main, ["eval", "induction-heads", "--score", job.out_dir, "--set", "train.lr=1"], capsys, "eval.*")
    one_line_error(main, ["eval", "copy", "--score", job.out_dir], capsys, "induction-heads")
    (Path(job.out_dir) / "checkpoint.pt").write_bytes(b"not a checkpoint")
    one_line_error(main, ["eval", "induction-heads", "--score", job.out_dir], capsys, "checkpoint")
    one_line_error(main, ["eval", "induction-heads", "--config", "eval_induction_heads_long", "--compare",
                     "mamba,s4d", "--out", str(tmp_path / "x")], capsys, "compare.layers")
    assert not (tmp_path / "x").exists()


def test_long_config_is_the_papers_setting():
    job = seqssm.load_config(InductionHeadsJob, str(CONFIGS / "eval_induction_heads_long.yaml"))
    assert (job.model.n_layer, job.model.d_model, job.task.vocab, job.train.batch_size) == (2, 64, 16, 8)
    assert job.train.weight_decay == 0 and max(job.train.curriculum) <= 256 and job.train.stop_window > 0
    assert job.eval.lengths == [2**k for k in range(6, 21)] and job.eval.samples >= 64
    assert job.model.scan_backend == "auto"


def test_training_on_cpu_runs_the_fused_cpu_scan(monkeypatch):
    from seqssm.kernels.scan import cpu as cpu_scan

    calls = []
    forward = cpu_scan._CpuScan.forward
    monkeypatch.setattr(cpu_scan._CpuScan, "forward", staticmethod(lambda *a: calls.append(1) or forward(*a)))
    job = seqssm.load_config(InductionHeadsJob, str(CONFIGS / "eval_induction_heads_long.yaml"),
                             ["model.d_model=16", "train.steps=1", "train.progress_bar=false"])
    E.train_model(job, job.model)
    assert len(calls) == job.model.n_layer  # "auto" on CPU: the fused C scan in every layer


def test_combine_puts_the_models_of_several_runs_in_one_table_and_plot(tmp_path, capsys):
    job = _job(tmp_path, "long", ["train.steps=2"])
    longrun.run_job(job, log=lambda *a: None)
    cmp = tmp_path / "cmp"
    argv = ["eval", "induction-heads", "--compare", "s4d,attention", "--out", str(cmp), "--budget", "0"]
    for s in ["model.d_model=16", "train.steps=2", "train.progress_bar=false", "eval.lengths=[8,16]",
              "eval.samples=8"]:
        argv += ["--set", s]
    assert main(argv) == 0
    out = tmp_path / "both"
    assert main(["eval", "induction-heads", "--combine", f"{job.out_dir},{cmp}", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["layer"] for r in metrics["results"]] == ["mamba", "s4d", "attention"]
    assert metrics["lengths"] == [8, 16, 32]
    table = (out / "table.md").read_text()
    assert table.count("\n| ") == 4  # header and three models
    assert "| · |" in table  # the compare run did not score 32
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    one_line_error(main, ["eval", "induction-heads", "--combine", str(tmp_path / "nothing"), "--out", str(out)], capsys,
                    "metrics.json")
    one_line_error(main, ["eval", "copy", "--combine", str(cmp), "--out", str(out)], capsys, "not copy")


@pytest.mark.parametrize("layer", ["mamba", "mamba2"])
def test_decay_penalty_is_the_mean_log_decay_above_the_floor_and_leaves_no_hooks(layer):
    torch.manual_seed(0)
    sets = [f"model.layer={layer}"] + (["model.mamba2.headdim=8"] if layer == "mamba2" else [])
    job = _job(Path("unused"), "x", sets)
    model = seqssm.build_model(job.model)
    layers = [m for m in model.modules() if type(m).__name__ in ("Mamba", "Mamba2")]
    assert len(layers) == job.model.n_layer
    with torch.no_grad():  # spread Δ over both branches of the stable log-softplus (pre < -15 and above)
        bias = layers[0].dt_proj.bias if layer == "mamba" else layers[0].dt_bias
        bias.uniform_(-25.0, 2.0)
    floor = 1e-6
    pen = DecayPenalty(model, floor)
    x = torch.randint(0, 17, (3, 20))
    model.backbone(x)
    got = pen.take()
    assert pen.terms == []  # taken: the next step starts empty
    pen.remove()  # and no more terms collected from here on
    # by hand, in float64, from the same layers' projections: Δ = softplus(pre), decay rate Δ min|A|
    outs = {}
    proj = (lambda m: m.x_proj) if layer == "mamba" else (lambda m: m.in_proj)
    hooks = [proj(m).register_forward_hook(lambda mod, i, o, m=m: outs.__setitem__(m, o.double())) for m in layers]
    model.backbone(x)
    for h in hooks:
        h.remove()
    want = []
    for m in layers:
        if layer == "mamba":
            pre = outs[m][..., :m.dt_rank] @ m.dt_proj.weight.double().T + m.dt_proj.bias.double()
            a_min = m.A_log.double().exp().min(dim=-1).values  # (e,)
        else:
            pre = outs[m][..., -m.nheads:] + m.dt_bias.double()
            a_min = m.A_log.double().exp()  # (h,)
        rate = torch.nn.functional.softplus(pre) * a_min
        want.append(torch.clamp(torch.log(rate) - math.log(floor), min=0).mean())
    want = torch.stack(want).mean()
    assert abs(got.item() - want.item()) <= 1e-5 * want.item(), (got, want)
    got.backward()  # finite gradients, also where Δ underflows
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert pen.terms == []  # the hand computation's forward pass, after remove(), added nothing


def test_training_with_the_decay_penalty_lowers_delta_and_refuses_models_without_mamba():
    base = ["train.steps=30", "train.curriculum=[32]", "train.lr=0.01"]
    pulled = {}
    for weight in (0.0, 1.0):
        job = _job(Path("unused"), "x", base + [f"train.dt_penalty={weight}"])
        job.train.checkpoint_seconds = 0.0
        model, rec = E.train_model(job, job.model)
        layers = [m for m in model.modules() if type(m).__name__ == "Mamba"]
        pulled[weight] = float(sum(m.dt_proj.bias.detach().mean() for m in layers))
    assert pulled[1.0] < pulled[0.0] - 0.1, pulled  # the penalty pulls Δ's bias down
    assert rec["dt_penalty"] == 1.0 and E.layer_name(rec | {"layer": "mamba"}) == "mamba + Δ penalty 1"
    assert E.layer_name({"layer": "mamba", "dt_penalty": 0.0}) == "mamba"  # tables and plots name the recipe
    job = _job(Path("unused"), "x", base + ["train.dt_penalty=1", "model.layer=s4d"])
    with pytest.raises(seqssm.pipelines.jobconfig.UsageError, match="dt_penalty"):
        E.train_model(job, job.model)

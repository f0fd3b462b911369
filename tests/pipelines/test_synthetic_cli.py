"""`seqssm eval`: configs, a tiny training run that beats chance, the run folder, and one-line user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import seqssm
from seqssm.pipelines.synthetic import cli as synthetic_cli
from seqssm.pipelines.synthetic import train as evaluate
from pipeline_helpers import one_line_error
from seqssm.pipelines.cli import main
from seqssm.pipelines.schemas import SCHEMAS, schema_for_file
from seqssm.pipelines.synthetic.config import EVAL_JOBS, CopyJob, InductionHeadsJob

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# a trivially small setting: strings of 2 tokens from 4, copied; the causal conv (width 4) alone can do it
TINY_COPY = [
    "model.d_model=16", "model.ssm.d_state=4", "model.vocab_size=5", "task.vocab=4",
    "train.curriculum=[2]", "train.steps=150", "train.budget_seconds=0", "train.lr=0.01", "train.batch_size=16",
    "train.progress_bar=false", "eval.lengths=[2,3]", "eval.samples=64", "eval.batch_size=32",
]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("task", list(EVAL_JOBS))
def test_each_task_ships_a_config_read_by_its_schema(task, capsys):
    name = synthetic_cli.default_config_name(task)
    assert (CONFIGS / name).is_file()
    assert schema_for_file(name) is EVAL_JOBS[task] and SCHEMAS[name[:-5]] is EVAL_JOBS[task]
    job = seqssm.load_config(EVAL_JOBS[task], str(CONFIGS / name))
    assert job.model.d_model == 64 and job.model.n_layer == 2 and job.train.lr == 1e-3 and job.train.batch_size == 8
    assert main(["eval", task, "--layer", "mamba2", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["layer"] == "mamba2" and printed["model"]["vocab_size"] == job.task.n_tokens


def test_tiny_copy_run_beats_chance_and_writes_its_run_folder(tmp_path):
    job = seqssm.load_config(CopyJob, str(CONFIGS / "eval_copy.yaml"), TINY_COPY + [f"out_dir={tmp_path / 'run'}"])
    metrics = evaluate.run_eval(job, log=lambda *a: None)
    (r,) = metrics["results"]
    assert r["layer"] == "mamba" and r["steps"] == 150 and r["stopped_by"] == "steps"
    assert metrics["chance"] == 0.25
    assert r["eval"]["2"]["accuracy"] > 0.6, r  # chance is 0.25
    assert set(r["eval"]) == {"2", "3"} and r["parameters"] > 0
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == sorted(evaluate.ARTIFACTS)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["results"][0]["eval"] == r["eval"]
    assert (tmp_path / "run" / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert seqssm.load_config(CopyJob, str(tmp_path / "run" / "config.yaml")).task.vocab == 4


def test_a_short_run_saves_its_models_and_score_rescores_a_skipped_length(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["eval", "copy", "--compare", "mamba,s4d", "--out", str(out), "--budget", "0"]
    for s in TINY_COPY + ["train.steps=40", "eval.lengths=[2,60]", "eval.max_seconds=0.000001"]:
        argv += ["--set", s]
    assert main(argv) == 0
    first = json.loads((out / "metrics.json").read_text())
    assert sorted(p.name for p in (out / "models").iterdir()) == ["mamba.pt", "s4d.pt"]
    assert all("skipped" in r["eval"]["60"] for r in first["results"])  # the time rule skipped 60
    capsys.readouterr()
    assert main(["eval", "copy", "--score", str(out), "--set", "eval.lengths=[2,60]",
                 "--set", "eval.max_seconds=3600"]) == 0
    again = json.loads((out / "score" / "metrics.json").read_text())
    for before, after in zip(first["results"], again["results"]):
        assert after["layer"] == before["layer"] and after["steps"] == before["steps"] == 40
        assert after["eval"]["2"]["accuracy"] == before["eval"]["2"]["accuracy"]  # the same model, the same seed
        assert "accuracy" in after["eval"]["60"]  # scored now
    assert sorted(p.name for p in (out / "score").iterdir()) == sorted(evaluate.REPORTS)
    (out / "models" / "s4d.pt").write_bytes(b"not a model")
    one_line_error(main, ["eval", "copy", "--score", str(out)], capsys, "s4d.pt", "not a readable model file")
    (out / "other").mkdir()
    (out / "other" / "mine.txt").write_text("mine")
    one_line_error(main, ["eval", "copy", "--score", str(out), "--out", str(out / "other")], capsys, "not empty")
    assert (out / "other" / "mine.txt").read_text() == "mine"


@pytest.mark.parametrize("position", ["rope", "alibi", "none"])
def test_compare_matches_parameter_counts_and_tabulates(tmp_path, capsys, position):
    out = tmp_path / "cmp"
    argv = ["eval", "copy", "--compare", "mamba,attention", "--out", str(out), "--budget", "0"]
    sets = ["train.steps=5", "eval.lengths=[2]", "eval.samples=8", f"model.attention.position={position}"]
    for s in TINY_COPY + sets:
        argv += ["--set", s]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    mamba, attn = metrics["results"]
    assert (mamba["layer"], attn["layer"], attn["position"]) == ("mamba", "attention", position)
    assert "position" not in mamba
    assert mamba["d_model"] == 16 and attn["d_model"] != 16  # attention has fewer parameters at equal width
    assert abs(attn["parameters"] - mamba["parameters"]) < 0.3 * mamba["parameters"]
    table = (out / "table.md").read_text()
    assert "| mamba | 16 |" in table and f"| attention ({position}) |" in table and f"{attn['parameters']:,}" in table
    assert "run folder" in capsys.readouterr().out


def test_curriculum_advances_when_the_running_accuracy_is_reached():
    sets = TINY_COPY + ["train.curriculum=[2,3,5]", "train.steps=90", "train.window=5", "train.advance_accuracy=0.01"]
    job = seqssm.load_config(CopyJob, str(CONFIGS / "eval_copy.yaml"), sets)
    _, rec = evaluate.train_model(job, job.model)
    assert [c["length"] for c in rec["curriculum"]] == [2, 3, 5]
    assert rec["curriculum"][0]["to_step"] == 5  # the first full window already passes 0.01
    sets[-1] = "train.advance_accuracy=0"  # by steps only: equal shares of 30 steps
    job = seqssm.load_config(CopyJob, str(CONFIGS / "eval_copy.yaml"), sets)
    _, rec = evaluate.train_model(job, job.model)
    assert [c["to_step"] for c in rec["curriculum"]] == [30, 60, 90] and rec["final_length"] == 5


def test_curriculum_advances_after_a_share_of_the_time_budget():
    # no step share and no accuracy rule: only half of the 0.3 s budget can move it on, before the budget ends
    sets = TINY_COPY + ["train.curriculum=[2,3]", "train.steps=1000000", "train.budget_seconds=0.3",
                        "train.advance_accuracy=0"]
    job = seqssm.load_config(CopyJob, str(CONFIGS / "eval_copy.yaml"), sets)
    _, rec = evaluate.train_model(job, job.model)
    assert rec["stopped_by"] == "budget" and [c["length"] for c in rec["curriculum"]] == [2, 3]


def test_lengths_over_the_time_cap_are_skipped_with_the_reason():
    sets = ["model.d_model=16", "train.progress_bar=false", "eval.lengths=[8,4000]", "eval.samples=8",
            "eval.max_seconds=0.000001"]
    job = seqssm.load_config(InductionHeadsJob, str(CONFIGS / "eval_induction_heads.yaml"), sets)
    model = seqssm.build_model(job.model)
    res = evaluate.evaluate_model(job, model)
    assert "accuracy" in res["8"] and "eval.max_seconds" in res["4000"]["skipped"]



@pytest.mark.parametrize("argv, needles", [
    (["eval", "nosuchtask"], ["invalid choice"]),
    (["eval", "copy", "--layer", "nosuch"], ["nosuch"]),
    (["eval", "copy", "--compare", "mamba,bimamba"], ["bimamba", "not causal"]),
    (["eval", "copy", "--compare", "mamba,,s4d"], ["--compare"]),
    (["eval", "copy", "--compare", "mamba,nosuch"], ["nosuch"]),
    (["eval", "copy", "--budget", "-1"], ["--budget"]),
    (["eval", "copy", "--set", "train.curriculum=[]"], ["train.curriculum"]),
    (["eval", "selective-copying", "--set", "eval.lengths=[8,64]"], ["eval.lengths", ">= 16"]),
    (["eval", "copy", "--set", "model.vocab_size=5"], ["model.vocab_size", "must be 17"]),
    (["eval", "copy", "--set", "task.vocab=1"], ["task.vocab"]),
    (["eval", "induction-heads", "--set", "task.trigger_within=-3"], ["task.trigger_within", ">= 0"]),
    (["eval", "induction-heads", "--compare", "mamba,s4d", "--set", "train.dt_penalty=0.001"],
     ["--compare s4d", "train.dt_penalty"]),
    (["eval", "copy", "--set", "train.lrr=1"], ["train.lrr"]),
    (["eval", "copy", "--config", "/no/such.yaml"], ["/no/such.yaml"]),
])
def test_bad_options_are_one_line_with_status_2(argv, needles, capsys, tmp_path):
    one_line_error(main, argv + ["--out", str(tmp_path / "x")], capsys, *needles)
    assert not (tmp_path / "x").exists()


def test_non_empty_run_folder_is_refused(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    one_line_error(main, ["eval", "copy", "--out", str(tmp_path)], capsys, "--overwrite")
    assert (tmp_path / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("timed, exponent, want", [
    ([(4096, 107.0)], 2, 428.0),                   # one length scored: the nominal growth
    ([(2048, 0.2), (4096, 0.9)], 1, 1.8),          # times under a second are noise: nominal
    ([(4096, 107.0), (8192, 863.0)], 2, 6961.0),   # attention measured here: 8x per doubling, so 8x again
    ([(4096, 100.0), (8192, 150.0)], 1, 300.0),    # flatter than nominal: never predict below it
], ids=["one-length", "short-times", "steeper-measured", "flatter-measured"])
def test_scoring_time_prediction_uses_the_measured_growth_when_steeper(timed, exponent, want):
    assert evaluate.predicted_seconds(timed, 2 * timed[-1][0], exponent) == pytest.approx(want, rel=1e-3)

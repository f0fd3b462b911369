"""train.max_minutes is wall clock for the whole `classify train` job (final scoring included), and the model size
chosen to fit train.target_epochs into it."""

from __future__ import annotations

import json
import time

import pytest

from classify_helpers import TINY_CLS, make_rows, write_csv
from seqssm import ModelConfig
from seqssm.pipelines.classify.config import ClassifyJobConfig, ClassifyTrainConfig
from seqssm.pipelines.classify.train import EvalReserve, choose_width
from seqssm.pipelines.cli import main


def test_budget_covers_the_whole_job(tmp_path):
    """A run that would take many minutes without a budget ends within its budget plus a minute, and stops
    on the clock (fewer steps than its epochs allow), not at its step or epoch limit, nor by early stopping
    (patience 1 applies to runs without a budget only)."""
    d = tmp_path / "data"
    d.mkdir()
    tr = write_csv(d / "train.csv", make_rows(256, seed=1, length=(150, 200)))
    dv = write_csv(d / "dev.csv", make_rows(64, seed=2, length=(150, 200)))
    te = write_csv(d / "test.csv", make_rows(64, seed=3, length=(150, 200)))
    minutes = 0.4
    sets = [kv for kv in TINY_CLS if not kv.startswith(("train.max_steps", "train.val_every"))]
    sets += [f"train.max_minutes={minutes}", "train.max_epochs=100000", "train.val_every=0", "train.patience=1",
             "train.target_epochs=0"]
    t0 = time.perf_counter()
    assert main(["classify", "train", "--train", tr, "--val", dv, "--test", te, "--out", str(tmp_path / "run"),
                 *[x for kv in sets for x in ("--set", kv)]]) == 0
    wall = time.perf_counter() - t0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 < m["steps"] < 100000 * 32  # stopped by the clock
    assert wall < 60 * (minutes + 1) and m["timing"]["job"] < 60 * (minutes + 1)
    assert m["steps"] >= 2  # it trained (how much of the budget it used depends on the machine's load)
    # ... and it stopped by the clock's rule (time used + the reserve for the last validation and the final scoring
    # reached the budget), not before: this holds however loaded the machine is, since the reserve is measured.
    assert m["timing"]["job"] + m["timing"]["reserved_after_training"] >= 60 * minutes - 1.0
    assert m["test"]["rc_conjoin"]["n"] == 64


def _job(d_model=128, n_layer=4, target=8.0):
    return ClassifyJobConfig(model=ModelConfig(vocab_size=10, head="classify", d_model=d_model, n_layer=n_layer),
                             train=ClassifyTrainConfig(target_epochs=target, max_minutes=10))


@pytest.mark.parametrize("seconds_left,want", [
    (1e6, (128, 4)),  # time for everything: the configured model
    (100 * 8 * 1.0 * 0.5, (64, 4)),  # half the configured step's cost: half the width
    (100 * 8 * 1.0 * 0.25 * 0.5, (32, 2)),  # a quarter of the width and then half the depth
    (1.0, (32, 2)),  # never below 32 wide and 2 deep
], ids=["room", "narrower", "narrower_and_shallower", "floor"])
def test_choose_width(seconds_left, want):
    d, n, info = choose_width(_job(), t_max=1.0, steps_per_epoch=100, seconds_left=lambda step: seconds_left,
                              log=lambda s: None)
    assert (d, n) == want and info["steps_needed"] == 800


def test_choose_width_counts_the_cheaper_scoring_of_a_smaller_model():
    """The time left depends on the candidate: a model half as costly also scores in half the time."""
    def left(step_seconds):  # 150 s of budget, the scoring costs 100 training steps' worth
        return 150 - 100 * step_seconds

    d, n, _ = choose_width(_job(target=4.0), t_max=1.0, steps_per_epoch=25, seconds_left=left, log=lambda s: None)
    # 100 steps needed. 128 wide: 100 > 150 - 100; 112: 87.5 > 62.5; 96: 75 <= 75. With the configured model's
    # scoring cost for every candidate (50 s left) it would have gone down to 48
    assert (d, n) == (96, 4)


def test_eval_reserve_counts_both_strands_and_the_last_validation():
    r = EvalReserve(n_dev=100, n_test=50, strands=True, safety=1.0, fixed=0.0)
    r.val_seq_seconds = 0.01
    assert r.seconds() == pytest.approx(0.01 * (100 + 2 * 150))
    r.val_seq_seconds = None
    r.train_seq_seconds = 0.03  # before any validation: a third of training's per-row time
    assert r.seconds() == pytest.approx(0.01 * (100 + 2 * 150))

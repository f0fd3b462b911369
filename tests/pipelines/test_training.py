"""The shared learning-rate schedule and its wall-clock budget (train.max_minutes), on a fake clock."""

from __future__ import annotations

import pytest

from seqssm.pipelines import training
from seqssm.pipelines.jobconfig import TrainConfig


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(training.time, "perf_counter", c)
    return c


def test_without_budget_the_schedule_follows_steps(clock):
    t = TrainConfig(warmup_steps=10, min_lr_ratio=0.1)
    f = training.lr_schedule(t.warmup_steps, 1000, t.min_lr_ratio, training.TimeBudget(0))
    g = training.lr_schedule(10, 1000, 0.1)  # by step alone
    for step in (0, 5, 10, 500, 999, 1000):
        clock.now += 1e6  # time passing changes nothing
        assert f(step) == g(step)
    assert training.TimeBudget(0).trainer_kwargs() == {}


@pytest.mark.parametrize("spent", [0.25, 0.5, 0.9, 1.0], ids=lambda s: f"spent-{s}")
def test_budget_moves_the_cosine_with_the_clock(clock, spent):
    t = TrainConfig(warmup_steps=10, min_lr_ratio=0.1, max_minutes=2.0)
    budget = training.TimeBudget(t.max_minutes)
    f, g = training.lr_schedule(t.warmup_steps, 1000, t.min_lr_ratio, budget), training.lr_schedule(10, 1000, 0.1)
    assert f(0) == g(0)  # the first reading starts the clock; warm-up is by step
    clock.now += spent * 120.0
    assert f(5) == g(5)
    assert f(50) == pytest.approx(g(10 + spent * 990))  # the clock is ahead of the steps
    assert f(999) == pytest.approx(g(max(999, 10 + spent * 990)))  # ...or the steps ahead of the clock
    assert budget.trainer_kwargs() == {"max_time": {"seconds": 120.0}}

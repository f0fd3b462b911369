"""`seqssm bench short` and `seqssm bench contention` run end to end at small sizes (their numbers go to
docs/cpu-speed.md, not into assertions on speed)."""

from __future__ import annotations

import json

import psutil
import pytest

from seqssm.kernels.scan.cpu import usable
from seqssm.pipelines.cli import main

pytestmark = pytest.mark.skipif(not usable()[0], reason=f"the cpu scan cannot be built here: {usable()[1]}")


def test_short_bench_times_both_paths(tmp_path, capsys):
    out = tmp_path / "short.json"
    argv = ["bench", "short", "--short-batch", "2", "--short-length", "16", "--rounds", "2", "--round-steps", "1",
            "--out", str(out)]
    assert main(argv) == 0
    res = json.loads(out.read_text())["short"]
    assert set(res["median_wall"]) == {"chunked", "cpu"} and len(res["steps_per_s_cpu"]["cpu"]) == 2
    assert res["speedup_wall"] > 0
    assert "speed-up" in capsys.readouterr().out


def test_contention_bench_starts_and_ends_its_busy_process(tmp_path, capsys):
    out = tmp_path / "contention.json"
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    argv = ["bench", "contention", "--contention-length", "300", "--repeats", "1", "--out", str(out)]
    assert main(argv) == 0
    res = json.loads(out.read_text())["contention"]
    assert res["busy_process"] and {r["impl"] for r in res["rows"]} == {"seqssm", "mambapy"}
    assert all("error" not in r for r in res["rows"]) and res["mambapy_over_seqssm"] > 0
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before  # the competitor is gone
    assert "mambapy's speed" in capsys.readouterr().out


def test_short_bench_refuses_a_length_below_three(capsys):
    assert main(["bench", "short", "--short-length", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--short-length" in err

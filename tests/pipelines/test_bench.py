"""`seqssm bench` runs end to end at small sizes (numbers are for the README, not for assertions on speed)."""

from __future__ import annotations

import json

import pytest

from seqssm.pipelines.benchmarks import bench
from seqssm.pipelines.cli import main


def test_accuracy_case_meets_the_float32_bound():
    res = bench.case_accuracy(quick=True)
    assert res["cases"] == 5 * 2 * 3 * 2
    assert set(res["max_rel_err"]) >= {"out", "last_state", "du", "ddelta", "dA", "dB", "dC", "dD", "dz"}
    assert max(res["max_rel_err"].values()) < 1e-5


def test_train_long_and_decode_cases_report_measurements():
    train = bench.case_train("seqssm", length=512, threads=1)
    assert train["seconds"] > 0 and train["peak_rss_gb"] > 0.05
    long = bench.case_long(length=3000, segment=1024, d_model=32, threads=1)
    assert long["finite"] and long["tokens_per_s"] > 0
    dec = bench.case_decode([10, 2000], d_model=32, threads=1, steps=5)
    assert set(dec["median_step_ms"]) == {"10", "2000"}


def test_cli_bench_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    status = main(["bench", "train", "--no-peer", "--train-length", "300", "--threads", "1", "--out", str(out)])
    assert status == 0
    data = json.loads(out.read_text())
    assert data["train"]["rows"][0]["impl"] == "seqssm" and data["train"]["rows"][0]["length"] == 300
    assert "forward+backward" in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["--threads", "--train-length", "--segment"])
def test_cli_bench_rejects_nonpositive_sizes(flag, capsys):
    assert main(["bench", "train", flag, "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and flag in err

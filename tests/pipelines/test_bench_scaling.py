"""`seqssm bench scaling`: cases report what they measure, the caps skip with a reason, the summary is right, and
the command writes its JSON, table and plot (no timings are asserted)."""

from __future__ import annotations

import json

import pytest
import torch

from seqssm.pipelines.benchmarks import measure
from seqssm.pipelines.benchmarks import scaling as bench_scaling
from seqssm.pipelines.cli import main


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("layer", ["mamba", "attention"])
def test_case_forward_and_train_report_measurements(layer):
    fwd = bench_scaling.case_scaling(layer, "forward", 64, d_model=16, threads=1, decode_steps=3, min_seconds=0)
    assert fwd["seconds"] > 0 and fwd["decode_ms"] > 0 and fwd["decode_steps"] == 3 and fwd["reps"] == 1
    assert fwd["us_per_token"] == pytest.approx(1e6 * fwd["seconds"] / 64)
    train = bench_scaling.case_scaling(layer, "train", 64, d_model=16, threads=1, decode_steps=3, min_seconds=0)
    assert "decode_ms" not in train and train["peak_rss_gb"] > 0.05 and train["layer"] == layer


def test_ssd_op_case_times_the_op_at_the_layer_shapes():
    fwd = bench_scaling.case_scaling("mamba2-ssd", "forward", 96, d_model=64, threads=1, decode_steps=2,
                                     min_seconds=0, min_reps=3)
    assert (fwd["heads"], fwd["headdim"], fwd["d_state"], fwd["ngroups"]) == (2, 64, 16, 1)  # d_inner 128
    assert fwd["reps"] == 3 and len(fwd["times"]) == 3 and fwd["decode_ms"] > 0 and fwd["parameters"] == 0
    assert fwd["us_per_token_min"] == pytest.approx(1e6 * min(fwd["times"]) / 96)
    assert fwd["us_per_token_min"] <= fwd["us_per_token"] and len(fwd["cpu_times"]) == 3
    assert fwd["us_per_token_cpu_min"] == pytest.approx(1e6 * min(fwd["cpu_times"]) / 96)
    train = bench_scaling.case_scaling("mamba2-ssd", "train", 96, d_model=64, threads=1, decode_steps=2,
                                       min_seconds=0)
    assert train["reps"] == 1 and train["seconds"] > 0 and "decode_ms" not in train


def test_summary_states_each_layers_256k_over_4k():
    rows = [_row("mamba2-ssd", "train", 4096, 5.0), _row("mamba2-ssd", "train", 262144, 6.0)]
    for r, lo in zip(rows, (4.0, 5.0)):
        r["us_per_token_min"] = lo
    s = bench_scaling.summarize(rows, ["mamba2-ssd"])
    assert s["mamba2-ssd_train_256k_over_4k"] == 1.2 and s["mamba2-ssd_train_256k_over_4k_min"] == 1.25
    md = bench_scaling.markdown({"rows": rows, "layers": ["mamba2-ssd"], "lengths": [4096, 262144], "d_model": 64,
                                 "threads": 1, "cap_seconds": 120, "cap_gb": 8, "summary": s})
    assert "mamba2-ssd forward + backward: time per token at 256K / at 4K = 1.200 (medians), 1.250 (minima)" in md


def _row(layer, mode, length, us, gb=0.5, decode=None):
    r = {"layer": layer, "mode": mode, "length": length, "seconds": us * length / 1e6, "us_per_token": us,
         "peak_rss_gb": gb}
    if decode is not None:
        r["decode_ms"] = decode
    return r


def test_skip_reason_extrapolates_time_and_memory():
    done = [_row("attention", "train", 1024, 1000.0)]  # 1.024 s at 1K
    assert bench_scaling._skip_reason("attention", 2048, done, cap_seconds=10, cap_gb=8) is None  # 4.1 s
    assert "cap 10 s" in bench_scaling._skip_reason("attention", 4096, done, cap_seconds=10, cap_gb=8)  # 16 s
    assert bench_scaling._skip_reason("mamba", 8192, done, cap_seconds=10, cap_gb=8) is None  # linear: 8.2 s
    mem = [_row("mamba", "train", 1024, 1.0, gb=0.4), _row("mamba", "train", 2048, 1.0, gb=1.4)]
    assert "peak RSS" in bench_scaling._skip_reason("mamba", 16384, mem, cap_seconds=100, cap_gb=8)  # 14.4 GB
    assert "failed" in bench_scaling._skip_reason("mamba", 4096, mem + [{"error": "x"}], 100, 8)


def test_summary_ratio_and_crossover():
    rows = []
    for L, m_us, a_us in ((1024, 10.0, 2.0), (4096, 11.0, 9.0), (16384, 11.0, 30.0), (65536, 12.0, 100.0)):
        rows += [_row("mamba", "forward", L, m_us, decode=0.4), _row("attention", "forward", L, a_us, decode=0.5)]
        rows += [_row("mamba", "train", L, m_us), _row("attention", "train", L, a_us)]
    rows[-1] = {"layer": "attention", "mode": "train", "length": 65536, "skipped": "predicted 900 s > cap 120 s"}
    s = bench_scaling.summarize(rows, ["mamba", "attention"])
    assert s["mamba_forward_64k_over_1k"] == 1.2 and s["mamba_decode_64k_over_1k"] == 1.0
    assert s["mamba_faster_than_attention_forward_from"] == 16384
    assert s["compared_train_lengths"] == [1024, 4096, 16384]  # attention's skipped length is not compared
    assert s["mamba_faster_than_attention_decode_from"] == 1024
    md = bench_scaling.markdown({"rows": rows, "layers": ["mamba", "attention"], "lengths": [1024, 4096, 16384, 65536],
                                 "d_model": 64, "threads": 1, "cap_seconds": 120, "cap_gb": 8, "summary": s})
    assert "| 64K | 12.00 µs (0.50 GB) | skipped |" in md and "predicted 900 s > cap 120 s" in md
    assert "from L = 16K on" in md


def test_a_case_past_its_timeout_is_recorded_not_raised():
    res = measure.run_case("scaling", timeout=0.01, layer="mamba", mode="forward", length=64, d_model=16, threads=1,
                          decode_steps=1)
    assert res == {"error": "timed out after 0.01 s"}


def test_cli_writes_json_table_and_plot(tmp_path, capsys):
    out = tmp_path / "sc" / "scaling.json"
    argv = ["bench", "scaling", "--layers", "mamba,attention", "--lengths", "64", "--d-model", "16", "--threads", "1",
            "--decode-steps", "2", "--out", str(out)]
    assert main(argv) == 0
    data = json.loads(out.read_text())["scaling"]
    assert {(r["layer"], r["mode"]) for r in data["rows"]} == {(l, m) for l in ("mamba", "attention")
                                                                 for m in ("forward", "train")}
    assert all("us_per_token" in r for r in data["rows"])
    table = out.with_suffix(".md").read_text()
    assert "**Decoding: milliseconds per token" in table and "| 64 |" in table
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["--lengths", "1k,2k"], "--lengths"),
    (["--lengths", "0"], "--lengths"),
    (["--layers", "mamba,nosuch"], "nosuch"),
    (["--cap-seconds", "0"], "--cap-seconds"),
    (["--cap-gb", "-1"], "--cap-gb"),
])
def test_bad_options_are_one_line_with_status_2(argv, needle, capsys, tmp_path):
    assert main(["bench", "scaling", "--out", str(tmp_path / "s.json")] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and needle in err, err
    assert not (tmp_path / "s.json").exists()

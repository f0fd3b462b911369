"""`seqssm bench gpu --dry-run`: every case of the GPU script (its GPU tests, copy bandwidth, scan, attention,
layer, the 24-layer model) runs at tiny sizes on CPU under the Triton interpreter and writes the same JSON and
markdown, no case in error. Rehearses the prepared GPU command before a GPU is lent; timings are not asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from seqssm.pipelines.cli import main

pytest.importorskip("triton")


@pytest.mark.slow
def test_dry_run_runs_every_case_without_error(tmp_path):
    out = tmp_path / "gpu.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # the command sets it itself
    proc = subprocess.run([sys.executable, "-m", "seqssm.pipelines.cli", "bench", "gpu", "--dry-run", "--out",
                           str(out)], capture_output=True, text=True, env=env, timeout=1200, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    data = json.loads(out.read_text())["gpu"]
    assert data["dry_run"] is True and '"error"' not in json.dumps(data)
    assert "passed" in data["tests"]["summary"] and "failed" not in data["tests"]["summary"]
    assert data["copy_gbs"] > 0
    (l,) = data["scan"]
    assert set(data["scan"][l]) == {"triton-sequential", "triton-parallel", "chunked"}  # both Triton designs
    assert set(data["layer"][l]) == {"triton", "chunked"}
    assert data["attention"][l]["fwd_bwd_s"] > 0
    assert data["big_model"]["layers"] == 24 and data["big_model"]["fwd_bwd_s"] > 0
    md = (tmp_path / "gpu.md").read_text()
    for heading in ("## Selective scan", "## Mamba layer vs causal SDPA attention", "## Whole model", "DRY RUN"):
        assert heading in md
    assert "error" not in md
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu.json", "gpu.md"]  # nothing else left behind


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a CUDA device is here")
def test_without_a_gpu_and_without_dry_run_the_command_says_so_in_one_line(capsys):
    assert main(["bench", "gpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA device here" in err[0] and "--dry-run" in err[0]

"""The triton backends (scan and conv): their interpreter tests (in a fresh process, TRITON_INTERPRET=1) and their
refusal to run on CPU tensors without the interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqssm.kernels import KernelInputError, causal_conv1d, selective_scan

HERE = Path(__file__).parent
triton = pytest.importorskip("triton")


def test_interpreter_cases_pass():
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(HERE / "interpreter"),
         str(HERE / "interpreter" / "triton_scan_cases.py"), str(HERE / "interpreter" / "triton_conv_cases.py")],
        capture_output=True, text=True, env=env, timeout=900,
    )
    tail = "\n".join(proc.stdout.strip().splitlines()[-25:])
    assert proc.returncode == 0, f"interpreter tests failed:\n{tail}\n{proc.stderr[-2000:]}"
    assert " passed" in tail and "failed" not in tail


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="the interpreter is on in this process")
def test_cpu_tensors_without_interpreter_are_refused():
    u = torch.randn(1, 2, 5)
    with pytest.raises(KernelInputError, match="backend: 'triton' cannot run here: tensors are on cpu"):
        selective_scan(u, u.abs(), -torch.rand(2, 4), torch.randn(1, 4, 5), torch.randn(1, 4, 5), backend="triton")


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="the interpreter is on in this process")
def test_conv_cpu_tensors_without_interpreter_are_refused():
    with pytest.raises(KernelInputError, match="backend: 'triton' cannot run here: tensors are on cpu"):
        causal_conv1d(torch.randn(1, 2, 5), torch.randn(2, 4), backend="triton")

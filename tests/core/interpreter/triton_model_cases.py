"""A tiny model of every block kind built with scan_backend "triton" under the Triton interpreter equals the same
model built with "chunked" (float32): outputs within 1e-5, every parameter gradient within 1e-4 (relative error
per tensor), streaming two segments and decoding token by token equal to the parallel pass.

Not collected by the main run: tests/core/test_backends.py runs it in a fresh process with TRITON_INTERPRET=1
(which must be set before triton is first imported).
"""

from __future__ import annotations

import os

import pytest
import torch

assert os.environ.get("TRITON_INTERPRET") == "1", "run through tests/core/test_backends.py"

import seqssm.kernels.scan.triton_scan as triton_scan  # noqa: E402
from model_backends import CAUSAL, MODELS, build, inputs, outputs  # noqa: E402
from seqssm.kernels import KernelInputError  # noqa: E402


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.double(), want.double()
    if not torch.isfinite(got).all():
        return float("inf")
    return ((got - want).norm() / want.norm().clamp_min(1e-300)).item()


@pytest.fixture(autouse=True)
def _small_chunks_and_poison(monkeypatch):
    monkeypatch.setattr(triton_scan, "CHUNK", 8)  # L = 21 crosses two checkpoint boundaries
    monkeypatch.setattr(triton_scan, "POISON_OUTPUTS", True)


@pytest.mark.parametrize("model", list(MODELS))
def test_triton_model_equals_chunked(model):
    want = outputs(model, "chunked", torch.float32)
    got = outputs(model, "triton", torch.float32)
    assert got.keys() == want.keys()
    assert rel_err(got["output"], want["output"]) < 1e-5
    grads = [k for k in want if k.startswith("grad:")]
    assert any("A_log" in k for k in grads)
    for key in grads:
        assert rel_err(got[key], want[key]) < 1e-4, key
    if model in CAUSAL:
        for key in ("streamed", "decoded"):
            assert rel_err(got[key], got["output"]) < 1e-5, key
            assert rel_err(got[key], want[key]) < 1e-5, key


def test_float64_to_triton_is_named_in_one_line():
    net = build("mamba", "triton", torch.float64)
    with pytest.raises(KernelInputError, match=r"^x: dtype float64 is not supported by the triton backend"):
        net(**inputs("mamba"))

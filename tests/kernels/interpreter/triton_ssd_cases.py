"""ssd_scan's triton backend under the Triton interpreter against the float64 reference: outputs, final state and
every gradient (initial state's included) within 1e-5 relative for float32 inputs, NaN-poisoned output buffers.
Run by tests/kernels/test_triton_ssd.py in a process with TRITON_INTERPRET=1.

Dimension names: b batch · l length · h heads · p head dim · n state size · g groups of B/C.
Chunks and p, n blocks of 16 (tl.dot's smallest tile): lengths 1, 16 (one chunk), 17 (one past) and 40 (a partial
third chunk); p = 5 and n = 7 fill a block partly; the several-blocks case splits p, n and the state into blocks.
"""

from __future__ import annotations

import os

import pytest
import torch

assert os.environ.get("TRITON_INTERPRET") == "1", "run through tests/kernels/test_triton_ssd.py"

import seqssm.kernels.ssd.triton_ssd as triton_ssd  # noqa: E402
from kernel_testing import rel_err  # noqa: E402
from seqssm.kernels import KernelInputError, ssd_scan, ssd_state_update  # noqa: E402


@pytest.fixture(autouse=True)
def _poison_and_small_chunks(monkeypatch):
    monkeypatch.setattr(triton_ssd, "POISON_OUTPUTS", True)
    monkeypatch.setattr(triton_ssd, "CHUNK", 16)
    assert triton_ssd.BLOCKS["fp32"] == (16, 16)  # float32's own blocks: tl.dot's smallest tile


def make(b=2, l=40, h=4, p=5, g=2, n=7, D=True, init=True, dt_scale=1.0):
    gen = torch.Generator().manual_seed(l * 7 + g * 3 + p)
    f64 = dict(dtype=torch.float64, generator=gen)
    t = dict(x=torch.randn(b, l, h, p, **f64), dt=(torch.rand(b, l, h, **f64) * 0.5 + 0.05) * dt_scale,
             A=-torch.rand(h, **f64) * 2 - 0.1, B=torch.randn(b, l, g, n, **f64), C=torch.randn(b, l, g, n, **f64))
    if D:
        t["D"] = torch.randn(h, **f64)
    if init:
        t["initial_state"] = torch.randn(b, h, p, n, **f64)
    return t


def outputs_and_grads(inputs, backend, dtype):
    cast = {k: v.to(dtype).requires_grad_(True) for k, v in inputs.items()}
    y, s = ssd_scan(**cast, return_final_state=True, backend=backend)
    gen = torch.Generator().manual_seed(1)
    loss = ((y.double() * torch.randn(y.shape, generator=gen, dtype=torch.float64)).sum()
            + (s.double() * torch.randn(s.shape, generator=gen, dtype=torch.float64)).sum())
    grads = torch.autograd.grad(loss, list(cast.values()))
    return {"y": y, "state": s, **{f"d{k}": g for k, g in zip(cast, grads)}}


def assert_matches_reference(inputs, tol=1e-5):
    want = outputs_and_grads(inputs, "reference", torch.float64)
    got = outputs_and_grads(inputs, "triton", torch.float32)
    assert got["y"].dtype == torch.float32 and got["state"].dtype == torch.float32
    errs = {k: rel_err(got[k], want[k]) for k in want}
    bad = {k: f"{v:.2e}" for k, v in errs.items() if not v <= tol}
    assert not bad, f"relative error above {tol:g}: {bad}"


@pytest.mark.parametrize("flags", [(True, True), (False, False)], ids=["D+init", "plain"])
@pytest.mark.parametrize("g", [1, 2], ids=["g1", "g2"])
@pytest.mark.parametrize("l", [1, 16, 17, 40], ids=lambda l: f"L{l}")
def test_triton_ssd_matches_reference(l, g, flags):
    assert_matches_reference(make(l=l, g=g, D=flags[0], init=flags[1]))


@pytest.mark.parametrize("flags", [(True, False), (False, True)], ids=["D-only", "init-only"])
def test_triton_ssd_optional_arguments(flags):
    assert_matches_reference(make(l=40, g=4, D=flags[0], init=flags[1]))


def test_triton_ssd_several_blocks(monkeypatch):
    """p = n = 20 in blocks of 16: the p-block partial sums, the loops over n and several state-passing blocks."""
    monkeypatch.setattr(triton_ssd, "BLOCK_E", 64)
    assert_matches_reference(make(b=1, l=33, h=2, p=20, g=1, n=20))


def test_triton_ssd_strong_decay():
    """Per-chunk Σ Δ·A in the hundreds: every decay is a segment sum, none a difference of running sums."""
    assert_matches_reference(make(l=40, g=1, D=False, dt_scale=40.0))


def test_triton_ssd_state_update_steps_equal_reference():
    inputs = {k: v.float() for k, v in make(l=5, g=2).items()}
    s_ref = inputs["initial_state"].clone()
    s_tri = s_ref.clone()
    for t in range(5):
        step = [inputs[k][:, t] for k in ("x", "dt")] + [inputs["A"]] + [inputs[k][:, t] for k in ("B", "C")]
        y_ref = ssd_state_update(s_ref, *step, inputs["D"], backend="reference")
        y_tri = ssd_state_update(s_tri, *step, inputs["D"], backend="triton")
        assert rel_err(y_tri, y_ref) < 1e-6 and rel_err(s_tri, s_ref) < 1e-6


def test_triton_ssd_refuses_float64():
    with pytest.raises(KernelInputError, match="^x: dtype float64"):
        ssd_scan(**make(l=4), backend="triton")

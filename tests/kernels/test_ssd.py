"""Mamba-2's SSD scan: the chunked backend against the sequential reference on outputs, final states and every
gradient (chunked in float32 vs reference in float64, relative error per tensor <= 1e-5), plus the decoding step.

Dimension names: b batch · l length · h heads · p head dim · n state size · g groups of B/C.
Lengths cover one step, odd lengths, exact chunk multiples and one past a boundary (chunk sizes 4 and 64), each
in one cache block (a plain autograd graph) and cut into several blocks (the recomputing backward of _BlockedSSD).
"""

from __future__ import annotations

import pytest
import torch

from seqssm.kernels import KernelInputError, ssd_scan, ssd_state_update
from seqssm.kernels.ssd.chunked import segment_sum, ssd_chunked
from seqssm.kernels.ssd.reference import ssd_reference

from kernel_testing import rel_err


def make(b=2, l=13, h=4, p=3, g=2, n=5, D=True, init=True):
    torch.manual_seed(l * 7 + g)
    t = dict(
        x=torch.randn(b, l, h, p, dtype=torch.float64),
        dt=torch.rand(b, l, h, dtype=torch.float64) * 0.5 + 0.05,
        A=-torch.rand(h, dtype=torch.float64) * 2 - 0.1,
        B=torch.randn(b, l, g, n, dtype=torch.float64),
        C=torch.randn(b, l, g, n, dtype=torch.float64),
    )
    if D:
        t["D"] = torch.randn(h, dtype=torch.float64)
    if init:
        t["initial_state"] = torch.randn(b, h, p, n, dtype=torch.float64)
    return t


def outputs_and_grads(fn, inputs, dtype):
    """y, final state and the gradient of a fixed random projection of both w.r.t. every input."""
    cast = {k: v.detach().to(dtype).requires_grad_(True) for k, v in inputs.items()}
    y, s = fn(**cast, return_final_state=True)
    gen = torch.Generator().manual_seed(1)
    wy = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(dtype)
    ws = torch.randn(s.shape, generator=gen, dtype=torch.float64).to(s.dtype)
    ((y * wy).sum() + (s * ws).sum()).backward()
    return {"y": y, "state": s, **{f"d{k}": v.grad for k, v in cast.items()}}


def assert_all_close(got, want, tol):
    errs = {k: rel_err(got[k], want[k]) for k in want}
    assert all(e <= tol for e in errs.values()), errs


@pytest.mark.parametrize("chunk, block", [(4, 8), (4, 2048), (64, 64), (64, 2048)],
                         ids=["s4-blk8", "s4-one-block", "s64-blk64", "s64-one-block"])
@pytest.mark.parametrize("l", [1, 3, 4, 5, 13, 64, 65])
@pytest.mark.parametrize("g", [1, 2, 4])
def test_chunked_matches_reference(l, g, chunk, block):
    inputs = make(l=l, g=g)
    want = outputs_and_grads(ssd_reference, inputs, torch.float64)
    got = outputs_and_grads(lambda **kw: ssd_chunked(**kw, chunk_size=chunk, block_size=block), inputs,
                            torch.float32)
    assert got["y"].dtype == torch.float32 and got["state"].dtype == torch.float32
    assert_all_close(got, want, 1e-5)


@pytest.mark.parametrize("block", [16, 2048], ids=["blocks", "one-block"])
@pytest.mark.parametrize("D, init", [(False, False), (True, False), (False, True)])
def test_optional_arguments_float64(D, init, block):
    inputs = make(l=19, D=D, init=init)
    want = outputs_and_grads(ssd_reference, inputs, torch.float64)
    got = outputs_and_grads(lambda **kw: ssd_chunked(**kw, chunk_size=8, block_size=block), inputs, torch.float64)
    assert_all_close(got, want, 1e-12)


@pytest.mark.parametrize("loss", ["y-only", "state-only"])
@pytest.mark.parametrize("block", [8, 2048], ids=["blocks", "one-block"])
def test_gradients_of_one_output_alone(loss, block):
    """The hand-written backward with a zero gradient arriving at y, or at the final state (not returned at all):
    every input's gradient, the initial state's included, across block boundaries (l = 21, blocks of 8, chunks
    of 4: the last block is a part of a chunk)."""
    inputs = make(l=21)

    def run(fn, dtype):
        cast = {k: v.detach().to(dtype).requires_grad_(True) for k, v in inputs.items()}
        if loss == "y-only":
            y = fn(**cast)
            (y * torch.linspace(-1, 1, y.numel(), dtype=dtype).view(y.shape)).sum().backward()
        else:
            _, s = fn(**cast, return_final_state=True)
            (s * torch.linspace(-1, 1, s.numel(), dtype=s.dtype).view(s.shape)).sum().backward()
        # D does not reach the final state: its gradient is None (reference) or zeros (chunked), both zero
        return {f"d{k}": torch.zeros_like(v) if v.grad is None else v.grad for k, v in cast.items()}

    want = run(ssd_reference, torch.float64)
    got = run(lambda **kw: ssd_chunked(**kw, chunk_size=4, block_size=block), torch.float32)
    assert_all_close(got, want, 1e-5)


@pytest.mark.parametrize("block", [8, 2048], ids=["blocks", "one-block"])
def test_final_state_can_be_updated_in_place(block):
    """Decoding continues from the returned state in place (ssd_state_update): it must not be a view of the
    block's intermediates (autograd refuses in-place writes to such views)."""
    inputs = {k: v.float().requires_grad_() for k, v in make(l=21).items()}
    y, state = ssd_chunked(**inputs, return_final_state=True, chunk_size=4, block_size=block)
    before = state.detach().clone()
    state.mul_(2.0)
    assert torch.equal(state.detach(), 2 * before) and state.is_contiguous()


def test_gradient_of_some_inputs_only():
    """Only x and the initial state require a gradient (A, B, C, D, dt are constants): same as the reference."""
    inputs = make(l=40)
    wants, gots = [], []
    for fn, dtype, out in ((ssd_reference, torch.float64, wants),
                           (lambda **kw: ssd_chunked(**kw, chunk_size=8, block_size=16), torch.float32, gots)):
        cast = {k: v.detach().to(dtype) for k, v in inputs.items()}
        cast["x"].requires_grad_(True), cast["initial_state"].requires_grad_(True)
        y = fn(**cast)
        y.square().sum().backward()
        out += [cast["x"].grad, cast["initial_state"].grad]
        assert all(cast[k].grad is None for k in ("dt", "A", "B", "C", "D"))
    assert all(rel_err(g, w) < 1e-5 for g, w in zip(gots, wants))


def test_block_keeps_input_dtype_and_bfloat16_gradients():
    """bfloat16 in, bfloat16 out; the blocks compute in float32, so the gradients equal those of float32 inputs
    rounded to bfloat16 (checked against the float32 run of the same bf16-rounded values)."""
    inputs = {k: v.to(torch.bfloat16).double() for k, v in make(l=37).items()}
    fn = lambda **kw: ssd_chunked(**kw, chunk_size=4, block_size=12)  # noqa: E731
    lo = outputs_and_grads(fn, inputs, torch.bfloat16)
    hi = outputs_and_grads(fn, inputs, torch.float32)
    assert lo["y"].dtype == torch.bfloat16 and lo["dx"].dtype == torch.bfloat16
    for k in hi:
        assert rel_err(lo[k], hi[k]) < 2e-2, k


@pytest.mark.parametrize("block", [5, 12, 20], ids=["block-rounds-down-to-4", "blk12", "blk20"])
def test_blocks_without_grad_equal_one_block(block):
    """The no-grad path (inference) runs the blocks without autograd; same numbers as one block."""
    inputs = {k: v.float() for k, v in make(l=45).items()}
    want, s_want = ssd_chunked(**inputs, return_final_state=True, chunk_size=4, block_size=4096)
    with torch.no_grad():
        got, s_got = ssd_chunked(**inputs, return_final_state=True, chunk_size=4, block_size=block)
    assert rel_err(got, want) < 1e-6 and rel_err(s_got, s_want) < 1e-6


def test_public_entry_backends_and_segments():
    inputs = make(l=30)
    full, s_full = ssd_scan(**inputs, return_final_state=True, backend="chunked")
    ref = ssd_scan(**inputs, backend="reference")
    assert rel_err(full, ref) < 1e-12
    cut = {k: v for k, v in inputs.items() if k not in ("x", "dt", "B", "C")}
    y1, s1 = ssd_scan(inputs["x"][:, :11], inputs["dt"][:, :11], cut["A"], inputs["B"][:, :11],
                      inputs["C"][:, :11], cut["D"], cut["initial_state"], return_final_state=True)
    y2, s2 = ssd_scan(inputs["x"][:, 11:], inputs["dt"][:, 11:], cut["A"], inputs["B"][:, 11:],
                      inputs["C"][:, 11:], cut["D"], s1, return_final_state=True)
    assert rel_err(torch.cat([y1, y2], 1), full) < 1e-12 and rel_err(s2, s_full) < 1e-12


def test_state_update_steps_equal_scan():
    inputs = make(l=9)
    want, s_want = ssd_reference(**inputs, return_final_state=True)
    state = inputs["initial_state"].clone()
    ys = [ssd_state_update(state, inputs["x"][:, t], inputs["dt"][:, t], inputs["A"], inputs["B"][:, t],
                           inputs["C"][:, t], inputs["D"]) for t in range(9)]
    assert rel_err(torch.stack(ys, 1), want) < 1e-12 and rel_err(state, s_want) < 1e-12


def test_strong_decay_is_finite():
    """Large Δ·A over long chunks: a cumsum-difference segment sum would cancel; ours stays finite and exact."""
    inputs = make(l=64, D=False, init=False)
    inputs["dt"] = inputs["dt"] * 40  # per-chunk Σ a around -2000: exp of a cumsum alone underflows
    want = outputs_and_grads(ssd_reference, inputs, torch.float64)
    got = outputs_and_grads(lambda **kw: ssd_chunked(**kw, chunk_size=64), inputs, torch.float32)
    assert_all_close(got, want, 1e-5)
    got = outputs_and_grads(lambda **kw: ssd_chunked(**kw, chunk_size=16, block_size=32), inputs, torch.float32)
    assert_all_close(got, want, 1e-5)


def test_segment_sum():
    a = torch.tensor([1.0, 2.0, 3.0])
    inf = float("-inf")
    assert torch.equal(segment_sum(a), torch.tensor([[0.0, inf, inf], [2.0, 0.0, inf], [5.0, 3.0, 0.0]]))


@pytest.mark.parametrize(
    "change, name",
    [(dict(dt=torch.rand(2, 7, 3)), "dt"), (dict(A=torch.rand(4, 1)), "A"), (dict(B=torch.randn(2, 7, 3, 5)), "B"),
     (dict(C=torch.randn(2, 7, 2, 4)), "C"), (dict(initial_state=torch.randn(2, 4, 3, 4)), "initial_state"),
     (dict(backend="triton"), "backend"), (dict(x=torch.randn(2, 7, 4)), "x")],
)
def test_bad_inputs_name_the_argument(change, name):
    args = {k: v.float() for k, v in make(l=7, init=False).items()}
    args.update(change)
    with pytest.raises(KernelInputError, match=f"^{name}:"):
        ssd_scan(**args)

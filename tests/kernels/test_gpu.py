"""GPU checks of the triton backends (skipped without CUDA; run on a lent GPU by `seqssm bench gpu`).

`seqssm bench gpu --dry-run` runs this same file with SEQSSM_GPU_DRY_RUN=1 and TRITON_INTERPRET=1: every test on
CPU tensors under the Triton interpreter at tiny sizes (the same code paths, none of the scale), so the first run on
a GPU finds nothing but speed left to discover.

Dimension names: b batch · d channels · l length · n state size.
"""

from __future__ import annotations

import os

import pytest
import torch

from kernel_testing import FLAGS, assert_close, make_inputs, rel_err, run
from seqssm.kernels import causal_conv1d, causal_conv1d_update, selective_scan, selective_state_update

DRY = os.environ.get("SEQSSM_GPU_DRY_RUN") == "1"
DEVICE = "cpu" if DRY else "cuda"
pytestmark = pytest.mark.skipif(not DRY and not torch.cuda.is_available(), reason="needs a CUDA device")
if DRY:
    assert os.environ.get("TRITON_INTERPRET") == "1", "the dry run needs TRITON_INTERPRET=1 (seqssm bench gpu --dry-run)"

# sizes: (lengths, channels, state) of the parity grid; the long run; the offsets past 2^31
LENGTHS = [40] if DRY else [1, 63, 64, 65, 1000, 4096]
D, N = (4, 4) if DRY else (64, 16)
LONG = 1 << 7 if DRY else 1 << 20
BIG = (1, 8, 1 << 7, 4) if DRY else (1, 2304, 1 << 20, 4)  # b, d, l, n: b·d·l > 2^31 on a GPU


@pytest.fixture(autouse=True)
def _small_chunks_in_dry_run(monkeypatch):
    if DRY:  # tiny lengths still cross several checkpoint chunks
        import seqssm.kernels.scan.triton_scan as triton_scan

        monkeypatch.setattr(triton_scan, "CHUNK", 16)


def _to_device(inputs):
    return {k: v.detach().to(DEVICE).requires_grad_(True) for k, v in inputs.items()}


def _gen():
    return torch.Generator(device=DEVICE).manual_seed(0)


@pytest.mark.parametrize("l", LENGTHS, ids=lambda l: f"L{l}")
@pytest.mark.parametrize("layout", ["var", "grouped", "ti", "mixed"])
@pytest.mark.parametrize("flagset", ["all", "none"])
@pytest.mark.parametrize("design", ["sequential", "parallel"])
def test_triton_on_gpu_matches_reference(l, layout, flagset, design):
    flags = FLAGS if flagset == "all" else ()
    inputs = make_inputs(2, D, l, N, layout, flags)
    want = run(inputs, flags, "reference", torch.float64)
    got = run(_to_device(inputs), flags, "triton", torch.float32, triton_design=design)
    got = ([o.cpu() for o in got[0]], {k: v.cpu() for k, v in got[1].items()})
    assert_close(got, want, 1e-5)


def test_chunked_on_gpu_matches_reference():
    inputs = make_inputs(2, D, LENGTHS[-1], N, "var", FLAGS)
    want = run(inputs, FLAGS, "reference", torch.float64)
    got = run(_to_device(inputs), FLAGS, "chunked", torch.float32)
    got = ([o.cpu() for o in got[0]], {k: v.cpu() for k, v in got[1].items()})
    assert_close(got, want, 1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_conv_and_steps_on_gpu_match_reference(dtype):
    """causal_conv1d forward/backward and both decoding steps, triton against reference (bf16: one rounding)."""
    b, d, l, k, n = 2, 24, LENGTHS[-1], 4, N
    g = torch.Generator().manual_seed(3)
    x, w, bias = torch.randn(b, d, l, generator=g), torch.randn(d, k, generator=g), torch.randn(d, generator=g)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    res = {}
    for backend in ("reference", "triton"):
        xs = [t.to(DEVICE, dtype).requires_grad_(True) for t in (x, w, bias)]
        out = causal_conv1d(*xs, activation="silu", backend=backend)
        grads = torch.autograd.grad((out.float() * out.float()).sum(), xs)
        res[backend] = [out, *grads]
    for got, want in zip(res["triton"], res["reference"]):
        assert rel_err(got.cpu().float(), want.cpu().float()) < tol
    state = {be: torch.randn(b, d, k - 1, generator=torch.Generator().manual_seed(4)).to(DEVICE, dtype)
             for be in ("reference", "triton")}
    ssm = {be: torch.randn(b, d, n, generator=torch.Generator().manual_seed(5)).to(DEVICE)
           for be in ("reference", "triton")}
    A = -torch.rand(d, n, generator=g).to(DEVICE)
    for t in range(3):
        step = {}
        for be in ("reference", "triton"):
            xt = causal_conv1d_update(x[..., t].to(DEVICE, dtype), state[be], w.to(DEVICE, dtype),
                                      bias.to(DEVICE, dtype), activation="silu", backend=be)
            B, C = (torch.randn(b, n, generator=torch.Generator().manual_seed(10 + t)).to(DEVICE, dtype)
                    for _ in range(2))
            step[be] = selective_state_update(ssm[be], xt, xt.abs(), A, B, C, dt_softplus=True, backend=be)
        assert rel_err(step["triton"].cpu().float(), step["reference"].cpu().float()) < tol
        assert rel_err(ssm["triton"].cpu(), ssm["reference"].cpu()) < tol


@pytest.mark.parametrize("design", ["sequential", "parallel"])
def test_million_steps_triton_equals_chunked_segments(design):
    """L = 2^20 in one triton call equals the chunked backend run in 16 segments with carried state."""
    b, d, l, n = 1, D * 16, LONG, N
    g = _gen()
    u = torch.randn(b, d, l, device=DEVICE, generator=g)
    delta = torch.rand(b, d, l, device=DEVICE, generator=g)
    A = -torch.rand(d, n, device=DEVICE, generator=g) * 0.05
    B = torch.randn(b, n, l, device=DEVICE, generator=g)
    C = torch.randn(b, n, l, device=DEVICE, generator=g)
    y, h = selective_scan(u, delta, A, B, C, return_last_state=True, backend="triton", triton_design=design)
    state, seg = None, l // 16
    for s in range(0, l, seg):
        sl = slice(s, s + seg)
        want, state = selective_scan(u[..., sl], delta[..., sl], A, B[..., sl], C[..., sl], initial_state=state,
                                     return_last_state=True, backend="chunked")
        assert rel_err(y[..., sl], want) < 1e-5
    assert rel_err(h, state) < 1e-5


@pytest.mark.parametrize("design", ["sequential", "parallel"])
def test_offsets_past_two_to_the_31(design):
    """b·d·l > 2^31 elements: the last channel's last step must be right (32-bit offsets would wrap)."""
    b, d, l, n = BIG
    if not DRY:
        free, _ = torch.cuda.mem_get_info()
        if free < 40 * 2**30:
            pytest.skip("needs about 40 GB of free GPU memory")
    g = _gen()
    bf = dict(device=DEVICE, dtype=torch.bfloat16, generator=g)
    u, delta = torch.randn(b, d, l, **bf), torch.rand(b, d, l, **bf)
    A = -torch.rand(d, n, device=DEVICE, generator=g)
    B, C = torch.randn(b, n, l, **bf), torch.randn(b, n, l, **bf)
    y = selective_scan(u, delta, A, B, C, backend="triton", triton_design=design)
    tail_len = min(300, l // 2)
    tail = slice(l - tail_len, l)
    ch = slice(d - 2, d)
    # the last channels over the last steps, recomputed from a state carried by the chunked scan over a short tail
    head = slice(0, l - tail_len)
    _, h = selective_scan(u[:, ch, head], delta[:, ch, head], A[ch], B[..., head], C[..., head],
                          return_last_state=True, backend="chunked")
    want = selective_scan(u[:, ch, tail], delta[:, ch, tail], A[ch], B[..., tail], C[..., tail], initial_state=h,
                          backend="reference")
    assert rel_err(y[:, ch, tail].float(), want.float()) < 2e-2

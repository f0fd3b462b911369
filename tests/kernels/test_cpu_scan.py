"""The fused C backend ("cpu", kernels/scan/cpu_scan.c) against the float64 reference: outputs, last state, every
gradient, relative error per tensor, NaN-poisoned output buffers (conftest.py).

Dimension names: b batch · d channels · l length · n state size · g groups of B/C.
"tiny-chunks" saves a state every 3 steps and gives each work item 3 channels (of 4: a partial last block, and blocks
that cross B/C groups), so every chunk boundary is crossed; "2-threads" runs two threads that share the work items.
"""

from __future__ import annotations

import pytest
import torch

import seqssm.kernels.scan.cpu as cpu
from seqssm.kernels import KernelInputError, selective_scan

from kernel_testing import FLAGS, assert_close, make_inputs, rel_err, run

usable, why = cpu.usable()
pytestmark = pytest.mark.skipif(not usable, reason=f"the cpu backend cannot be built here: {why}")


@pytest.fixture(params=["default", "tiny-chunks", "2-threads"])
def setting(request, monkeypatch):
    if request.param == "tiny-chunks":
        monkeypatch.setattr(cpu, "CHUNK_STEPS", 3)
        monkeypatch.setattr(cpu, "BLOCK_CHANNELS", 3)
    if request.param == "2-threads":
        monkeypatch.setattr(cpu, "scan_threads", lambda *shape: 2)
        monkeypatch.setattr(cpu, "BLOCK_CHANNELS", 2)
    return request.param


SEQLENS = [1, 2, 7, 64, 127, 256, 1000]
FLAG_SETS = {"all-flags": FLAGS, "no-flags": ()}


@pytest.mark.parametrize("flagset", list(FLAG_SETS))
@pytest.mark.parametrize("layout", ["var", "grouped", "ti", "mixed"])
@pytest.mark.parametrize("n", [8, 16, 5], ids=lambda n: f"N{n}")
@pytest.mark.parametrize("l", SEQLENS, ids=lambda l: f"L{l}")
def test_cpu_matches_reference_grid(l, n, layout, flagset, setting):
    """N 8 and 16 take the kernel's specialised loops, N 5 the generic one."""
    flags = FLAG_SETS[flagset]
    inputs = make_inputs(2, 4, l, n, layout, flags)
    want = run(inputs, flags, "reference", torch.float64)
    assert_close(run(inputs, flags, "cpu", torch.float32), want, 1e-5)


@pytest.mark.parametrize("flag", FLAGS)
@pytest.mark.parametrize("on", [True, False], ids=["on", "off"])
def test_each_flag_alone(flag, on, setting):
    """Each option toggled alone (the others at their opposite). Without softplus, delta + bias can be negative and
    the state grows: |A| <= 0.1 keeps it within float32 over 301 steps (the reference runs in float64)."""
    flags = {flag} if on else set(FLAGS) - {flag}
    inputs = make_inputs(2, 4, 301, 16, "var", flags, a_max=0.1)
    assert_close(run(inputs, flags, "cpu", torch.float32), run(inputs, flags, "reference", torch.float64), 1e-5)


def test_transposed_inputs_are_read_in_place(setting):
    """delta and z as the Mamba block passes them, (b, l, d) in memory viewed as (b, d, l); u contiguous."""
    inputs = make_inputs(2, 6, 90, 16, "var", FLAGS)
    for k in ("delta", "z"):
        inputs[k] = inputs[k].detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_(True)
    assert not inputs["delta"].is_contiguous()
    assert_close(run(inputs, FLAGS, "cpu", torch.float32), run(inputs, FLAGS, "reference", torch.float64), 1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_half_inputs_run_in_float32(dtype):
    inputs = make_inputs(2, 4, 200, 8, "var", FLAGS)
    rounded = {k: v.detach().to(dtype).double().requires_grad_(True) for k, v in inputs.items()}
    got_out, _ = run(rounded, FLAGS, "cpu", dtype)
    want_out, _ = run(rounded, FLAGS, "reference", torch.float64)
    assert got_out[0].dtype == dtype
    assert rel_err(got_out[0], want_out[0]) < 1e-2  # one rounding to the half type, at the output
    assert rel_err(got_out[1], want_out[1]) < 1e-5  # the state stays float32


@pytest.mark.parametrize("dt_max", [1.0, 10.0], ids=["dt1", "dt10"])
@pytest.mark.parametrize("a_max", [1.0, 60.0], ids=["A1", "A60"])
def test_strong_decays_stay_finite_and_exact(dt_max, a_max, setting):
    flags = ("D", "z", "initial_state", "return_last_state")
    inputs = make_inputs(2, 4, 700, 16, "var", flags, dt_scale=dt_max, a_max=a_max)
    assert_close(run(inputs, flags, "cpu", torch.float32), run(inputs, flags, "reference", torch.float64), 1e-5)


@pytest.mark.parametrize("split", [1, 100, 999])
def test_two_segments_equal_one_pass(split, setting):
    """Scanning x[:a] then x[a:] from the last state equals one scan: values and every gradient (float32 here, so
    the bound is float32 rounding, not exact equality: the two passes sum in different orders)."""
    inputs = {k: v.detach().float().requires_grad_(True) for k, v in make_inputs(1, 4, 1000, 8, "var", FLAGS).items()}
    kw = dict(D=inputs["D"], delta_bias=inputs["delta_bias"], delta_softplus=True, return_last_state=True,
              backend="cpu")
    u, delta, A, B, C, z = (inputs[k] for k in ("u", "delta", "A", "B", "C", "z"))
    y1, h1 = selective_scan(u[..., :split], delta[..., :split], A, B[..., :split], C[..., :split],
                            z=z[..., :split], initial_state=inputs["initial_state"], **kw)
    y2, h2 = selective_scan(u[..., split:], delta[..., split:], A, B[..., split:], C[..., split:],
                            z=z[..., split:], initial_state=h1, **kw)
    y, h = selective_scan(u, delta, A, B, C, z=z, initial_state=inputs["initial_state"], **kw)
    assert rel_err(torch.cat([y1, y2], -1), y) < 1e-6 and rel_err(h2, h) < 1e-6
    g_parts = torch.autograd.grad(torch.cat([y1, y2], -1).sum() + h2.sum(), list(inputs.values()))
    g_whole = torch.autograd.grad(y.sum() + h.sum(), list(inputs.values()))
    for k, a, b in zip(inputs, g_parts, g_whole):
        assert rel_err(a, b) < 1e-5, k


def _packed_seq_idx(b: int, l: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    rows = [torch.repeat_interleave(torch.arange(l), torch.randint(1, 15, (l,), generator=gen))[:l] for _ in range(b)]
    return torch.stack(rows)


@pytest.mark.parametrize("l", [1, 37, 300], ids=lambda l: f"L{l}")
@pytest.mark.parametrize("layout", ["var", "grouped", "ti"])
def test_packed_sequences_match_reference(l, layout, setting):
    inputs = make_inputs(2, 4, l, 8, layout, FLAGS)
    seq_idx = _packed_seq_idx(2, l, seed=l)
    results = {}
    for backend, dtype in (("reference", torch.float64), ("cpu", torch.float32)):
        x = {k: v.detach().to(dtype).requires_grad_(True) for k, v in inputs.items()}
        y, h = selective_scan(**x, delta_softplus=True, return_last_state=True, seq_idx=seq_idx, backend=backend)
        gen = torch.Generator().manual_seed(1)
        loss = (y.double() * torch.randn(y.shape, generator=gen, dtype=torch.float64)).sum() + h.double().sum()
        results[backend] = [y, h, *torch.autograd.grad(loss, list(x.values()))]
    for got, want in zip(results["cpu"], results["reference"]):
        assert rel_err(got, want) < 1e-5


def test_only_the_last_state_carries_gradient():
    """A loss on the last state alone (no gradient reaches the output) still gives every gradient."""
    inputs = make_inputs(2, 4, 70, 8, "var", FLAGS)
    grads = {}
    for backend, dtype in (("reference", torch.float64), ("cpu", torch.float32)):
        x = {k: v.detach().to(dtype).requires_grad_(True) for k, v in inputs.items()}
        _, h = selective_scan(**x, delta_softplus=True, return_last_state=True, backend=backend)
        grads[backend] = torch.autograd.grad(h.double().pow(2).sum(), list(x.values()), allow_unused=True)
    for k, got, want in zip(inputs, grads["cpu"], grads["reference"]):
        if want is None or want.abs().max() == 0:  # z and D do not reach the state
            assert got is None or got.abs().max() == 0, k
        else:
            assert rel_err(got, want) < 1e-5, k


def test_auto_picks_cpu_for_float32_and_chunked_for_float64(monkeypatch):
    calls = []
    real = cpu.selective_scan_cpu
    monkeypatch.setattr(cpu, "selective_scan_cpu", lambda *a, **k: calls.append(1) or real(*a, **k))
    x32 = {k: v.detach().float() for k, v in make_inputs(1, 4, 20, 8, "var", ()).items()}
    selective_scan(**x32)
    assert calls == [1]
    x64 = {k: v.detach() for k, v in make_inputs(1, 4, 20, 8, "var", ()).items()}
    selective_scan(**x64)
    assert calls == [1]


def test_float64_is_refused_with_one_line():
    x = {k: v.detach() for k, v in make_inputs(1, 4, 20, 8, "var", ()).items()}
    with pytest.raises(KernelInputError, match="backend: 'cpu' takes CPU tensors up to float32, got torch.float64"):
        selective_scan(**x, backend="cpu")


def test_thread_choice_is_bounded_by_work_and_setting(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert cpu.scan_threads(1, 128, 16384, 16) == 2  # the issue-15 shape: enough work for both
    assert cpu.scan_threads(1, 16, 8, 16) == 1  # tiny: not worth a thread start
    assert cpu.scan_threads(1, 16, 1 << 20, 16) == 1  # one work item only
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert cpu.scan_threads(8, 128, 256, 16) == 1
    assert "threads" in cpu.threading_summary()

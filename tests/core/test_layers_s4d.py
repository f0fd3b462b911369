"""The LTI S4D mixer: parallel scan equals the recurrence, streaming equals one pass, and it plugs into models."""

from __future__ import annotations

import pytest
import torch

from seqssm import LAYERS, build_model
from seqssm.kernels import selective_scan
from seqssm.layers.s4d import S4D, s4d_fft


@pytest.mark.parametrize("backend", ["reference", "chunked"])
def test_parallel_forward_equals_step_by_step(make_cfg, backend):
    layer = S4D(make_cfg(scan_backend=backend)).double()
    u = torch.randn(2, 9, 16, dtype=torch.float64)
    y, _ = layer(u)
    state = layer.allocate_state(2)
    steps = torch.stack([layer.step(u[:, t], state) for t in range(u.shape[1])], dim=1)
    torch.testing.assert_close(steps, y, atol=1e-10, rtol=0)


@pytest.mark.parametrize("split", [1, 4, 8], ids=lambda s: f"split{s}")
def test_two_segments_equal_one_pass(make_cfg, split):
    layer = S4D(make_cfg()).double()
    u = torch.randn(2, 9, 16, dtype=torch.float64)
    whole, last = layer(u, return_state=True)
    a, state = layer(u[:, :split], return_state=True)
    b, state = layer(u[:, split:], state=state)
    torch.testing.assert_close(torch.cat([a, b], dim=1), whole, atol=1e-10, rtol=0)
    torch.testing.assert_close(state.ssm_state, last.ssm_state, atol=1e-10, rtol=0)


def test_registered_and_usable_as_model_layer(make_cfg):
    assert LAYERS.get("s4d") is S4D
    model = build_model(make_cfg(layer="s4d")).double()
    ids = torch.randint(13, (2, 7))
    logits = model(ids)
    state = model.allocate_state(batch_size=2)
    steps = torch.stack([model.step(ids[:, t], state) for t in range(7)], dim=1)
    torch.testing.assert_close(steps, logits, atol=1e-10, rtol=0)


def test_unknown_a_init_is_refused(make_cfg):
    with pytest.raises(ValueError, match="a_init"):
        S4D(make_cfg(), a_init="lin")


def _rel(got, want):
    return float((got - want).norm() / want.norm().clamp_min(1e-300))


@pytest.mark.parametrize("l, block", [(1, 8192), (37, 8192), (37, 5), (130, 64)], ids=["l1", "l37", "l37-blocks", "l130"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
def test_fft_equals_scan_reference_with_gradients(l, block, with_state):
    """The FFT convolution against the sequential reference scan in float64: output, last state, every gradient."""
    torch.manual_seed(l + block)
    b, e, n = 2, 6, 4
    f64 = dict(dtype=torch.float64, requires_grad=True)
    x = torch.randn(b, e, l, **f64)
    dt = (torch.rand(e, dtype=torch.float64) * 0.5 + 0.01).requires_grad_()
    A = (-torch.rand(e, n, dtype=torch.float64) * 3 - 0.1).requires_grad_()
    B, C, D = torch.randn(e, n, **f64), torch.randn(e, n, **f64), torch.randn(e, **f64)
    h0 = torch.randn(b, e, n, **f64) if with_state else None
    inputs = [t for t in (x, dt, A, B, C, D, h0) if t is not None]

    def run(fn):
        y, last = fn()
        gy, gl = torch.ones_like(y).normal_(generator=torch.Generator().manual_seed(1)), torch.ones_like(last)
        grads = torch.autograd.grad((y * gy).sum() + (last * gl).sum(), inputs)
        return [y, last, *grads]

    got = run(lambda: s4d_fft(x, dt, A, B, C, D, h0, True, block=block))
    want = run(lambda: selective_scan(x, dt[None, :, None].expand(b, e, l), A, B, C, D, initial_state=h0,
                                      return_last_state=True, backend="reference"))
    names = ["y", "last_state", "dx", "ddt", "dA", "dB", "dC", "dD"] + (["dh0"] if with_state else [])
    errors = {name: _rel(g, w) for name, g, w in zip(names, got, want)}
    assert max(errors.values()) < 1e-10, errors


@pytest.mark.parametrize("kernel", ["fft", "scan"])
def test_both_kernels_equal_steps(make_cfg, kernel):
    layer = S4D(make_cfg(s4d_kernel=kernel)).double()
    u = torch.randn(2, 11, 16, dtype=torch.float64)
    y, last = layer(u, return_state=True)
    state = layer.allocate_state(2)
    steps = torch.stack([layer.step(u[:, t], state) for t in range(u.shape[1])], dim=1)
    torch.testing.assert_close(steps, y, atol=1e-10, rtol=0)
    torch.testing.assert_close(state.ssm_state, last.ssm_state, atol=1e-10, rtol=0)

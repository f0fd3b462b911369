"""causal_conv1d: the F.conv1d backend ("chunked") against the tap-loop reference, segments with carried state,
and decoding.

Dimension names: b batch · d channels · l length · k kernel width.
"""

from __future__ import annotations

import pytest
import torch

from kernel_testing import rel_err
from seqssm.kernels import KernelInputError, causal_conv1d, causal_conv1d_update


def inputs(b=2, d=6, l=37, k=4, bias=True, state=True, dtype=torch.float64):
    x = dict(x=torch.randn(b, d, l, dtype=dtype), weight=torch.randn(d, k, dtype=dtype))
    if bias:
        x["bias"] = torch.randn(d, dtype=dtype)
    if state:
        x["initial_state"] = torch.randn(b, d, k - 1, dtype=dtype)
    return {n: t.requires_grad_(True) for n, t in x.items()}


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("activation", [None, "silu"], ids=["linear", "silu"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("state", [True, False], ids=["state", "nostate"])
@pytest.mark.parametrize("l", [1, 3, 64])
def test_chunked_backend_matches_reference(k, activation, bias, state, l):
    x = inputs(l=l, k=k, bias=bias, state=state)
    results = {}
    for backend in ("reference", "chunked"):
        out, final = causal_conv1d(**x, activation=activation, return_final_state=True, backend=backend)
        gen = torch.Generator().manual_seed(3)
        loss = (out * torch.randn(out.shape, generator=gen, dtype=out.dtype)).sum() + final.sum()
        results[backend] = [out, final, *torch.autograd.grad(loss, list(x.values()), materialize_grads=True)]
    for got, want in zip(results["chunked"], results["reference"]):
        assert rel_err(got, want) < 1e-12


@pytest.mark.parametrize("split", [1, 2, 20])
def test_segments_with_carried_state_equal_one_pass(split):
    x = inputs(state=False)
    whole = causal_conv1d(x["x"], x["weight"], x["bias"], "silu")
    a, s = causal_conv1d(x["x"][..., :split], x["weight"], x["bias"], "silu", return_final_state=True)
    b = causal_conv1d(x["x"][..., split:], x["weight"], x["bias"], "silu", initial_state=s)
    assert rel_err(torch.cat([a, b], -1), whole) < 1e-14


def test_update_steps_equal_one_pass():
    x = inputs(state=False)
    whole = causal_conv1d(x["x"], x["weight"], x["bias"], "silu").detach()
    state = torch.zeros(2, 6, 3, dtype=torch.float64)
    steps = [causal_conv1d_update(x["x"][..., t].detach(), state, x["weight"].detach(), x["bias"].detach(), "silu")
             for t in range(x["x"].shape[-1])]
    assert rel_err(torch.stack(steps, -1), whole) < 1e-14


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(weight=torch.randn(5, 4)), "weight: expected shape (6, *)"),
        (dict(bias=torch.randn(2)), "bias: expected shape (6,)"),
        (dict(initial_state=torch.randn(2, 6, 2)), "initial_state: expected shape (2, 6, 3)"),
        (dict(activation="relu"), "activation: must be None, 'silu' or 'swish'"),
        (dict(backend="cuda"), "backend: unknown name 'cuda'"),
    ],
    ids=["weight", "bias", "state", "activation", "backend"],
)
def test_bad_input_names_the_argument(kwargs, message):
    args = dict(x=torch.randn(2, 6, 10), weight=torch.randn(6, 4)) | kwargs
    with pytest.raises(KernelInputError) as e:
        causal_conv1d(**args)
    assert message in str(e.value)


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("state", [True, False], ids=["state", "nostate"])
def test_packed_sequences_equal_separate_convolutions(k, state):
    """Three sequences packed in one row give exactly what three separate calls give; the carried state seeds only
    the first, and the final state holds only the last sequence's inputs."""
    lens = [5, 1, 9]
    x = inputs(b=1, l=sum(lens), k=k, state=state)
    seq_idx = torch.repeat_interleave(torch.arange(3), torch.tensor(lens))[None]
    packed, final = causal_conv1d(**x, activation="silu", seq_idx=seq_idx, return_final_state=True)
    pieces, start, last = [], 0, None
    for i, n in enumerate(lens):
        part = x["x"][..., start : start + n]
        init = x.get("initial_state") if i == 0 else None
        y, last = causal_conv1d(part, x["weight"], x["bias"], "silu", initial_state=init, return_final_state=True)
        pieces.append(y)
        start += n
    assert rel_err(packed, torch.cat(pieces, -1)) < 1e-14
    assert rel_err(final, last) < 1e-14 if last.numel() else final.numel() == 0

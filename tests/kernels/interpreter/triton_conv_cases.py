"""causal_conv1d's triton backend under the Triton interpreter, against the reference (float64 inputs cast to
float32 for triton). Run by tests/kernels/test_triton_backend.py in a process with TRITON_INTERPRET=1."""

from __future__ import annotations

import os

import pytest
import torch

assert os.environ.get("TRITON_INTERPRET") == "1", "run through tests/kernels/test_triton_backend.py"

import seqssm.kernels.conv.triton_conv as triton_conv  # noqa: E402
from kernel_testing import rel_err  # noqa: E402
from seqssm.kernels import causal_conv1d  # noqa: E402


@pytest.fixture(autouse=True)
def _poison(monkeypatch):
    monkeypatch.setattr(triton_conv, "POISON_OUTPUTS", True)
    torch.manual_seed(0)


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("activation", [None, "silu"], ids=["linear", "silu"])
@pytest.mark.parametrize("extras", ["bias+state", "plain"])
@pytest.mark.parametrize("l", [1, 70], ids=lambda l: f"L{l}")
def test_triton_conv_matches_reference(k, activation, extras, l):
    b, d = 2, 20  # d and l not multiples of the blocks (16, 64): masked edges are exercised
    x = {"x": torch.randn(b, d, l, dtype=torch.float64), "weight": torch.randn(d, k, dtype=torch.float64)}
    if extras == "bias+state":
        x["bias"] = torch.randn(d, dtype=torch.float64)
        x["initial_state"] = torch.randn(b, d, k - 1, dtype=torch.float64)
    res = {}
    for backend, dtype in (("reference", torch.float64), ("triton", torch.float32)):
        xs = {n: t.to(dtype).requires_grad_(True) for n, t in x.items()}
        out, final = causal_conv1d(**xs, activation=activation, return_final_state=True, backend=backend)
        gen = torch.Generator().manual_seed(1)
        loss = (out.double() * torch.randn(out.shape, generator=gen, dtype=torch.float64)).sum() + final.sum()
        res[backend] = [out, final, *torch.autograd.grad(loss, list(xs.values()), materialize_grads=True)]
    for i, (got, want) in enumerate(zip(res["triton"], res["reference"])):
        assert rel_err(got, want) < 1e-5 if want.numel() else got.numel() == 0, i


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("state", [True, False], ids=["state", "nostate"])
def test_triton_conv_packed_sequences(k, state):
    b, d, l = 2, 20, 70
    x = {"x": torch.randn(b, d, l, dtype=torch.float64), "weight": torch.randn(d, k, dtype=torch.float64),
         "bias": torch.randn(d, dtype=torch.float64)}
    if state:
        x["initial_state"] = torch.randn(b, d, k - 1, dtype=torch.float64)
    seq_idx = torch.stack([torch.arange(l) // 7, (torch.arange(l) >= 64).long()])  # starts on block edge 64 too
    res = {}
    for backend, dtype in (("reference", torch.float64), ("triton", torch.float32)):
        xs = {n: t.to(dtype).requires_grad_(True) for n, t in x.items()}
        out, final = causal_conv1d(**xs, activation="silu", return_final_state=True, seq_idx=seq_idx,
                                   backend=backend)
        gen = torch.Generator().manual_seed(1)
        loss = (out.double() * torch.randn(out.shape, generator=gen, dtype=torch.float64)).sum() + final.sum()
        res[backend] = [out, final, *torch.autograd.grad(loss, list(xs.values()))]
    for i, (got, want) in enumerate(zip(res["triton"], res["reference"])):
        assert rel_err(got, want) < 1e-5, i


@pytest.mark.parametrize("k", [1, 2, 4])
def test_triton_conv_update_matches_reference(k):
    from seqssm.kernels import causal_conv1d_update

    b, d = 3, 20
    g = torch.Generator().manual_seed(k)
    w, bias = torch.randn(d, k, generator=g), torch.randn(d, generator=g)
    s_ref = torch.randn(b, d, k - 1, generator=g)
    s_tri = s_ref.clone()
    for _ in range(k + 2):  # more steps than the window: every slot is shifted out once
        x = torch.randn(b, d, generator=g)
        y_ref = causal_conv1d_update(x, s_ref, w, bias, "silu", backend="reference")
        y_tri = causal_conv1d_update(x, s_tri, w, bias, "silu", backend="triton")
        assert rel_err(y_tri, y_ref) < 1e-6 and (s_tri.numel() == 0 or rel_err(s_tri, s_ref) < 1e-7)

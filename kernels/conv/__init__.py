"""Causal depthwise conv1d: public entry with validation, dispatching by a name of seqssm.kernels.BACKENDS:
    "reference"  the tap loop of reference.py (the executable spec)
    "chunked"    F.conv1d (the fast PyTorch path; the name is the vocabulary's, there are no chunks here)
    "triton"     triton_conv.py: fused taps + bias + SiLU, CUDA tensors or TRITON_INTERPRET=1, float32/16/bf16
    "auto"       "triton" for CUDA tensors when Triton is importable, else "chunked"

With seq_idx (packed sequences) the PyTorch backends run the masked tap loop of reference.py, k multiply-adds over the
input (F.conv1d cannot stop a tap at a sequence boundary); for Mamba's k = 4 it costs about what F.conv1d does.

Dimension names: b batch · d channels · l length · k kernel width.
Semantics match the causal-conv1d package's `causal_conv1d_fn` (with `initial_states` / `return_final_states`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqssm.kernels._checks import BACKENDS, KernelInputError, check_backend, check_tensor, path_for
from seqssm.kernels._triton import auto_picks_triton, require_triton
from seqssm.kernels.conv.reference import causal_conv1d_reference, causal_conv1d_update_reference

ACTIVATIONS = (None, "silu", "swish")


def _conv_torch(x, weight, bias, activation, initial_state, return_final_state):
    """F.conv1d with groups=d; the carried inputs only touch the first k-1 outputs, so they are added there
    instead of concatenating a copy of the whole input in front of it."""
    b, d, l = x.shape
    k = weight.shape[1]
    w = weight.to(x.dtype)
    out = F.conv1d(x, w.unsqueeze(1), None if bias is None else bias.to(x.dtype), padding=k - 1, groups=d)[..., :l]
    if initial_state is not None:
        state = initial_state.to(x.dtype)
        for t in range(min(k - 1, l)):  # out[t] also reads state[t:] through taps 0 .. k-2-t
            out[..., t] += (w[:, : k - 1 - t] * state[..., t:]).sum(-1)
    if activation is not None:
        out = F.silu(out)
    if return_final_state:
        if initial_state is None:
            initial_state = x.new_zeros(b, d, k - 1)
        tail = x[..., max(0, l - (k - 1)) :]
        # a copy, so that a carried state does not keep the whole input alive
        final = torch.cat([initial_state.to(x.dtype)[..., l:], tail], -1) if l < k - 1 else tail.clone()
        return out, final
    return out


def causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
    initial_state: torch.Tensor | None = None,
    return_final_state: bool = False,
    backend: str = "auto",
    seq_idx: torch.Tensor | None = None,
):
    """Depthwise causal convolution of x (b, d, l) with weight (d, k).

    Args:
        bias: (d,) or None. activation: None, "silu" or "swish".
        initial_state: (b, d, k-1), the inputs before t = 0 (zeros when None).
        return_final_state: also return the last k-1 inputs (b, d, k-1), to continue with the next segment.
        seq_idx: (b, l) int32/int64 for packed sequences: a tap never reads across a change of seq_idx.
        backend: "auto", "reference", "chunked" or "triton" (seqssm.kernels.BACKENDS).

    Example:
        >>> x, w = torch.randn(2, 8, 100), torch.randn(8, 4)
        >>> y, s = causal_conv1d(x, w, activation="silu", return_final_state=True)
        >>> y.shape, s.shape
        (torch.Size([2, 8, 100]), torch.Size([2, 8, 3]))
    """
    check_backend(backend)
    if activation not in ACTIVATIONS:
        raise KernelInputError(f"activation: must be None, 'silu' or 'swish', got {activation!r}")
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise KernelInputError(f"x: expected shape (batch, dim, L), got {getattr(x, 'shape', type(x).__name__)}")
    b, d, l = x.shape
    check_tensor("x", x, (b, d, l), device=x.device)
    check_tensor("weight", weight, (d, None), device=x.device)
    k = weight.shape[1]
    if k < 1:
        raise KernelInputError("weight: kernel width must be at least 1")
    if bias is not None:
        check_tensor("bias", bias, (d,), device=x.device)
    if initial_state is not None:
        check_tensor("initial_state", initial_state, (b, d, k - 1), device=x.device)
    if seq_idx is not None:
        check_tensor("seq_idx", seq_idx, (b, l), device=x.device, dtypes=(torch.int32, torch.int64))
    backend = path_for("causal_conv1d", backend, x.device)
    if backend == "auto":
        backend = "triton" if x.dtype != torch.float64 and auto_picks_triton(x.device) else "chunked"
    if backend == "reference" or (seq_idx is not None and backend == "chunked"):
        return causal_conv1d_reference(x, weight, bias, activation, initial_state, return_final_state, seq_idx)
    if backend == "triton":
        require_triton(x.device, x=x.dtype)
        from seqssm.kernels.conv.triton_conv import causal_conv1d_triton

        return causal_conv1d_triton(x, weight, bias, activation, initial_state, return_final_state, seq_idx)
    return _conv_torch(x, weight, bias, activation, initial_state, return_final_state)


def causal_conv1d_update(
    x: torch.Tensor,
    conv_state: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """One decoding step: x (b, d), conv_state (b, d, k-1) updated in place; returns (b, d).
    backend: "reference"/"chunked" (the same PyTorch ops), "triton" (one kernel) or "auto" (triton for CUDA
    tensors)."""
    check_backend(backend)
    if activation not in ACTIVATIONS:
        raise KernelInputError(f"activation: must be None, 'silu' or 'swish', got {activation!r}")
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise KernelInputError(f"x: expected shape (batch, dim), got {getattr(x, 'shape', type(x).__name__)}")
    b, d = x.shape
    check_tensor("weight", weight, (d, None), device=x.device)
    check_tensor("conv_state", conv_state, (b, d, weight.shape[1] - 1), device=x.device)
    backend = path_for("causal_conv1d_update", backend, x.device)
    if backend == "auto":
        backend = "triton" if x.dtype != torch.float64 and auto_picks_triton(x.device) else "reference"
    if backend == "triton":
        require_triton(x.device, x=x.dtype, conv_state=conv_state.dtype)
        from seqssm.kernels.conv.triton_conv import causal_conv1d_update_triton

        return causal_conv1d_update_triton(x, conv_state, weight, bias, activation)
    return causal_conv1d_update_reference(x, conv_state, weight, bias, activation)


__all__ = ["causal_conv1d", "causal_conv1d_update", "causal_conv1d_reference", "BACKENDS"]

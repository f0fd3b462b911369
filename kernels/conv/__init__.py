"""Causal depthwise conv1d: public entry with validation; backends "reference" (tap loop) and "torch" (F.conv1d).

Dimension names: b batch · d channels · l length · k kernel width.
Semantics match the causal-conv1d package's `causal_conv1d_fn` (with `initial_states` / `return_final_states`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqssm.kernels._checks import KernelInputError, check_backend, check_tensor
from seqssm.kernels.conv.reference import causal_conv1d_reference, causal_conv1d_update_reference

BACKENDS = ("auto", "reference", "torch")
ACTIVATIONS = (None, "silu", "swish")


def _conv_torch(x, weight, bias, activation, initial_state, return_final_state):
    """F.conv1d with groups=d on the input prefixed by the carried state: one fused, differentiable call."""
    b, d, l = x.shape
    k = weight.shape[1]
    head = x.new_zeros(b, d, k - 1) if initial_state is None else initial_state.to(x.dtype)
    xp = torch.cat([head, x], dim=-1)
    out = F.conv1d(xp, weight.to(x.dtype).unsqueeze(1), None if bias is None else bias.to(x.dtype), groups=d)
    if activation is not None:
        out = F.silu(out)
    if return_final_state:
        return out, xp[:, :, xp.shape[-1] - (k - 1) :]
    return out


def causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
    initial_state: torch.Tensor | None = None,
    return_final_state: bool = False,
    backend: str = "auto",
):
    """Depthwise causal convolution of x (b, d, l) with weight (d, k).

    Args:
        bias: (d,) or None. activation: None, "silu" or "swish".
        initial_state: (b, d, k-1), the inputs before t = 0 (zeros when None).
        return_final_state: also return the last k-1 inputs (b, d, k-1), to continue with the next segment.

    Example:
        >>> x, w = torch.randn(2, 8, 100), torch.randn(8, 4)
        >>> y, s = causal_conv1d(x, w, activation="silu", return_final_state=True)
        >>> y.shape, s.shape
        (torch.Size([2, 8, 100]), torch.Size([2, 8, 3]))
    """
    check_backend(backend, BACKENDS)
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
    if backend == "reference":
        return causal_conv1d_reference(x, weight, bias, activation, initial_state, return_final_state)
    return _conv_torch(x, weight, bias, activation, initial_state, return_final_state)


def causal_conv1d_update(
    x: torch.Tensor,
    conv_state: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
) -> torch.Tensor:
    """One decoding step: x (b, d), conv_state (b, d, k-1) updated in place; returns (b, d)."""
    if activation not in ACTIVATIONS:
        raise KernelInputError(f"activation: must be None, 'silu' or 'swish', got {activation!r}")
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise KernelInputError(f"x: expected shape (batch, dim), got {getattr(x, 'shape', type(x).__name__)}")
    b, d = x.shape
    check_tensor("weight", weight, (d, None), device=x.device)
    check_tensor("conv_state", conv_state, (b, d, weight.shape[1] - 1), device=x.device)
    return causal_conv1d_update_reference(x, conv_state, weight, bias, activation)


__all__ = ["causal_conv1d", "causal_conv1d_update", "causal_conv1d_reference", "BACKENDS"]

"""Mamba-2's SSD scan (Dao & Gu 2024): one public, validated entry dispatching by a `backend` name.

Dimension names: b batch · l length · h heads · p head dim · n state size · g groups of B/C.

Backends (the one vocabulary of seqssm.kernels.BACKENDS):
    "reference"  reference.py: the sequential recurrence, the executable spec, slow.
    "chunked"    chunked.py: the state-space-dual block decomposition (section 6) in pure PyTorch, autograd.
    "triton"     triton_ssd.py: the same decomposition as Triton kernels (tl.dot chunk products, 64-bit offsets);
                 CUDA tensors, or CPU tensors under TRITON_INTERPRET=1. Its decoding step is one fused kernel.
    "auto"       "chunked".
The decoding step (ssd_state_update): one fused Triton kernel for "triton", PyTorch ops for every other name.
"""

from __future__ import annotations

import torch

from seqssm.kernels._checks import BACKENDS, KernelInputError, check_backend, check_tensor, path_for
from seqssm.kernels._triton import require_triton
from seqssm.kernels.ssd.chunked import ssd_chunked
from seqssm.kernels.ssd.reference import ssd_reference, ssd_state_update_reference

WIDE = (torch.float32, torch.float64)


def _check_groups(name: str, X, b: int, l: int, h: int, dev) -> int:
    check_tensor(name, X, (b, l, None, None), device=dev)
    g, n = X.shape[-2], X.shape[-1]
    if g < 1 or n < 1 or h % g:
        raise KernelInputError(f"{name}: {g} groups must divide {h} heads, with state size n >= 1")
    return n


def ssd_scan(x, dt, A, B, C, D=None, initial_state=None, return_final_state=False, backend="auto"):
    """SSD: h_t = exp(Δ_t A) h_{t-1} + Δ_t x_t ⊗ B_t, y_t = h_t C_t + D x_t, per head (scalar decay A per head).

    Args:
        x: (b, l, h, p) inputs. dt: (b, l, h) step sizes Δ, already positive (softplus applied by the caller).
        A: (h,) float32/64, negative for a decaying state. B, C: (b, l, g, n), head i uses group i // (h / g).
        D: (h,) skip or None. initial_state: (b, h, p, n) float32/64 or None (zeros); gradients flow into it.
        return_final_state: also return h_{l-1} (b, h, p, n) in float32 (float64 for float64 inputs).
        backend: "auto", "reference", "chunked" or "triton" (seqssm.kernels.BACKENDS).

    Returns:
        y (b, l, h, p) in x's dtype, or (y, final_state).

    Example:
        >>> b, l, h, p, g, n = 2, 100, 4, 8, 2, 16
        >>> x, dt = torch.randn(b, l, h, p), torch.rand(b, l, h)
        >>> B, C = torch.randn(b, l, g, n), torch.randn(b, l, g, n)
        >>> y, s = ssd_scan(x, dt, -torch.rand(h), B, C, return_final_state=True)
        >>> y.shape, s.shape
        (torch.Size([2, 100, 4, 8]), torch.Size([2, 4, 8, 16]))
    """
    check_backend(backend)
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise KernelInputError(f"x: expected shape (batch, L, heads, headdim), got {getattr(x, 'shape', type(x).__name__)}")
    b, l, h, p = x.shape
    dev = x.device
    check_tensor("x", x, (b, l, h, p), device=dev)
    check_tensor("dt", dt, (b, l, h), device=dev)
    check_tensor("A", A, (h,), device=dev, dtypes=WIDE)
    n = _check_groups("B", B, b, l, h, dev)
    if _check_groups("C", C, b, l, h, dev) != n or C.shape[-2] != B.shape[-2]:
        raise KernelInputError(f"C: shape {tuple(C.shape)} must equal B's {tuple(B.shape)}")
    if D is not None:
        check_tensor("D", D, (h,), device=dev)
    if initial_state is not None:
        check_tensor("initial_state", initial_state, (b, h, p, n), device=dev, dtypes=WIDE)
    backend = path_for("ssd_scan", backend, dev)
    if backend == "triton":
        require_triton(dev, x=x.dtype, dt=dt.dtype)

        from seqssm.kernels.ssd.triton_ssd import ssd_triton

        return ssd_triton(x, dt, A, B, C, D, initial_state, return_final_state)
    fn = ssd_reference if backend == "reference" else ssd_chunked
    return fn(x, dt, A, B, C, D, initial_state, return_final_state)


def ssd_state_update(state, x, dt, A, B, C, D=None, backend="auto"):
    """One decoding step, O(1) in the context: state (b, h, p, n) float32/64 updated in place;
    x (b, h, p), dt (b, h) positive, A (h,), B, C (b, g, n), D (h,) or None -> y (b, h, p) in x's dtype.
    backend: "triton" runs one fused kernel (float32 state); every other name the PyTorch reference step."""
    check_backend(backend)
    if not isinstance(state, torch.Tensor) or state.dim() != 4:
        raise KernelInputError(f"state: expected shape (batch, heads, headdim, N), got {getattr(state, 'shape', None)}")
    b, h, p, n = state.shape
    dev = state.device
    check_tensor("state", state, (b, h, p, n), device=dev, dtypes=WIDE)
    check_tensor("x", x, (b, h, p), device=dev)
    check_tensor("dt", dt, (b, h), device=dev)
    check_tensor("A", A, (h,), device=dev, dtypes=WIDE)
    for name, X in (("B", B), ("C", C)):
        check_tensor(name, X, (b, None, n), device=dev)
        if h % X.shape[1]:
            raise KernelInputError(f"{name}: {X.shape[1]} groups do not divide {h} heads")
    if D is not None:
        check_tensor("D", D, (h,), device=dev)
    backend = path_for("ssd_state_update", backend, dev)
    if backend == "triton":
        require_triton(dev, state=state.dtype, x=x.dtype)

        from seqssm.kernels.ssd.triton_ssd import ssd_state_update_triton

        return ssd_state_update_triton(state, x, dt, A, B, C, D)
    return ssd_state_update_reference(state, x, dt, A, B, C, D)


__all__ = ["BACKENDS", "ssd_chunked", "ssd_reference", "ssd_scan", "ssd_state_update"]

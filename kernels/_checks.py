"""Input validation shared by the public kernel entries: one-line errors that name the argument."""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

# The one backend vocabulary of every op (selective_scan, selective_state_update, causal_conv1d,
# causal_conv1d_update, ssd_scan, ssd_state_update) and of ModelConfig.scan_backend, which validates against
# this very tuple:
#   "reference"  the op's readable PyTorch spec (float32/64)
#   "chunked"    the op's fast pure-PyTorch path (any device)
#   "triton"     the op's Triton kernel: CUDA tensors, or CPU tensors under TRITON_INTERPRET=1; float32/16/bf16
#                (an op without a Triton kernel yet says in its docstring which path "triton" takes)
#   "auto"       "triton" for CUDA tensors when Triton is importable and the inputs fit, else "chunked"
BACKENDS = ("auto", "reference", "chunked", "triton")


class KernelInputError(ValueError):
    """Raised for a bad argument to a public kernel; the message names the argument."""


def check_tensor(name: str, x, shape: tuple, *, device: torch.device, dtypes=FLOAT_DTYPES) -> None:
    """`shape` holds ints or None (any size); the message shows the expected layout with names."""
    if not isinstance(x, torch.Tensor):
        raise KernelInputError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in dtypes:
        allowed = ", ".join(str(t).replace("torch.", "") for t in dtypes)
        raise KernelInputError(f"{name}: dtype {str(x.dtype).replace('torch.', '')} is not supported ({allowed})")
    if x.device != device:
        raise KernelInputError(f"{name}: on device {x.device}, but u is on {device}")
    if x.dim() != len(shape) or any(s is not None and s != xs for s, xs in zip(shape, x.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise KernelInputError(f"{name}: expected shape {want}, got {tuple(x.shape)}")


def check_backend(backend: str) -> None:
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise KernelInputError(f"backend: unknown name {backend!r}; choose one of {', '.join(BACKENDS)}")

"""Input validation shared by the public kernel entries: one-line errors that name the argument."""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


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


def check_backend(backend: str, known: tuple[str, ...]) -> None:
    if backend not in known:
        raise KernelInputError(f"backend: unknown name {backend!r}; choose one of {', '.join(known)}")

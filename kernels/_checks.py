"""Input validation shared by the public kernel entries: one-line errors that name the argument."""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

# The one backend vocabulary of every op (selective_scan, selective_state_update, causal_conv1d,
# causal_conv1d_update, ssd_scan, ssd_state_update) and of ModelConfig.scan_backend, which validates against
# this very tuple:
#   "reference"  the op's readable PyTorch spec (float32/64)
#   "chunked"    the op's fast pure-PyTorch path (any device)
#   "cpu"        the op's fused C kernel for CPU tensors (float32 arithmetic; compiled on first use); an op without
#                one runs the path RUNS_INSTEAD names, after the same device check
#   "triton"     the op's Triton kernel: CUDA tensors, or CPU tensors under TRITON_INTERPRET=1; float32/16/bf16
#   "auto"       "triton" for CUDA tensors when Triton is importable and the inputs fit; on CPU the scan's "cpu"
#                kernel when a C compiler is there; else "chunked" (or the op's reference step for decoding)
BACKENDS = ("auto", "reference", "chunked", "cpu", "triton")

# (op, backend name) -> the path that op runs for that name, where it has no kernel of its own (`seqssm info`
# prints this table). Decoding steps and the conv are one or a few PyTorch ops already; the selective scan is the
# op the C kernel exists for (docs/cpu-speed.md).
RUNS_INSTEAD = {
    ("selective_state_update", "cpu"): "reference",
    ("causal_conv1d", "cpu"): "chunked",
    ("causal_conv1d_update", "cpu"): "reference",
    ("ssd_scan", "cpu"): "chunked",
    ("ssd_state_update", "cpu"): "reference",
}


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


def path_for(op: str, backend: str, device: torch.device) -> str:
    """The path `op` runs for `backend`: the name itself, or RUNS_INSTEAD's entry after the device check of the
    name it stands in for ("cpu" takes CPU tensors only)."""
    if backend == "cpu" and device.type != "cpu":
        raise KernelInputError(f"backend: 'cpu' takes CPU tensors, got tensors on {device.type} (use 'auto')")
    return RUNS_INSTEAD.get((op, backend), backend)

"""Where the Triton backends can run: CUDA tensors, or CPU tensors under the Triton interpreter."""

from __future__ import annotations

import os

import torch


def interpreter_on() -> bool:
    """TRITON_INTERPRET=1 (it must be set before triton is first imported)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _fix_interpreter_scalars() -> None:
    """Triton 3.6's interpreter hands scalar kernel arguments over as one-element arrays and turns them into loop
    bounds with int(array), which numpy >= 2.4 refuses ("only 0-dimensional arrays can be converted to Python
    scalars"), so `for c in range(N_CHUNKS)` fails there. Triton 3.8's interpreter converts int(array.squeeze());
    this applies that same conversion to older interpreters. Interpreter only: compiled kernels never see it."""
    try:
        import triton.runtime.interpreter as interp
    except ImportError:
        return
    patch = getattr(interp, "_patch_lang_tensor", None)
    if patch is None or getattr(patch, "_seqssm_squeezes", False):
        return

    def patched(tensor, scope):
        patch(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.squeeze()))

    patched._seqssm_squeezes = True
    interp._patch_lang_tensor = patched


def triton_usable(device: torch.device) -> tuple[bool, str]:
    """(usable, reason): Triton is importable and the tensors are on CUDA (or the interpreter is on)."""
    try:
        import triton  # noqa: F401 (importable is all that is asked)
    except ImportError:
        return False, "triton is not installed"
    if device.type == "cuda":
        return True, ""
    if interpreter_on():
        _fix_interpreter_scalars()
        return True, ""
    return False, f"tensors are on {device.type} (the triton backend needs CUDA, or TRITON_INTERPRET=1)"


def require_triton(device: torch.device, **dtypes: torch.dtype) -> None:
    """The checks every op makes before its "triton" path, as one-line KernelInputErrors: Triton can run on
    `device`, and no input named in `dtypes` is float64 (the kernels compute in float32)."""
    usable, why = triton_usable(device)
    if not usable:
        from seqssm.kernels._checks import KernelInputError

        raise KernelInputError(f"backend: 'triton' cannot run here: {why}")
    for name, dtype in dtypes.items():
        if dtype == torch.float64:
            from seqssm.kernels._checks import KernelInputError

            raise KernelInputError(
                f"{name}: dtype float64 is not supported by the triton backend (float32, float16, bfloat16)"
            )


_warned = False


def auto_picks_triton(device: torch.device) -> bool:
    """The "auto" rule: Triton for CUDA tensors when it is importable; on CUDA without it, the PyTorch path with one
    warning (never silently); on any other device the PyTorch path."""
    global _warned
    if device.type != "cuda":
        return False
    usable, why = triton_usable(device)
    if not usable and not _warned:
        import warnings

        warnings.warn(f"seqssm.kernels: backend 'auto' falls back to the PyTorch path on CUDA: {why}", stacklevel=3)
        _warned = True
    return usable

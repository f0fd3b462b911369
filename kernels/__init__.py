"""seqssm.kernels (the folder kernels/ of the source tree): the sequence operators, each one public validated
entry dispatching by a `backend` name.

Depends on torch (and triton, and a C compiler for the "cpu" scan, where used) only; nothing here imports the rest of seqssm.
"""

from seqssm.kernels._checks import BACKENDS, RUNS_INSTEAD, KernelInputError
from seqssm.kernels.conv import causal_conv1d, causal_conv1d_update
from seqssm.kernels.scan import selective_scan, selective_state_update, available_backends
from seqssm.kernels.ssd import ssd_scan, ssd_state_update


def runs_instead() -> dict[tuple[str, str], str]:
    """(op, backend name) -> the path the op runs for that name, where it has no kernel of its own."""
    return dict(RUNS_INSTEAD)


__all__ = [
    "BACKENDS",
    "KernelInputError",
    "available_backends",
    "runs_instead",
    "causal_conv1d",
    "causal_conv1d_update",
    "selective_scan",
    "selective_state_update",
    "ssd_scan",
    "ssd_state_update",
]

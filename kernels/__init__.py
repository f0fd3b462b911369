"""seqssm.kernels (the folder kernels/ of the source tree): the sequence operators, each one public validated
entry dispatching by a `backend` name.

Depends on torch (and, later, triton) only; nothing here imports the rest of seqssm.
"""

from seqssm.kernels._checks import BACKENDS, KernelInputError
from seqssm.kernels.conv import causal_conv1d, causal_conv1d_update
from seqssm.kernels.scan import selective_scan, selective_state_update, available_backends
from seqssm.kernels.ssd import ssd_scan, ssd_state_update
from seqssm.kernels.ssd import TRITON_RUNS_INSTEAD as _SSD_TRITON


def triton_runs_instead() -> dict[str, str]:
    """Ops whose "triton" backend runs another path (no Triton kernel yet): op name -> the path it runs."""
    return dict(_SSD_TRITON)


__all__ = [
    "BACKENDS",
    "KernelInputError",
    "available_backends",
    "triton_runs_instead",
    "causal_conv1d",
    "causal_conv1d_update",
    "selective_scan",
    "selective_state_update",
    "ssd_scan",
    "ssd_state_update",
]

"""The selective scan of Mamba: one public, validated entry with mamba_ssm's `selective_scan_fn` semantics.

Dimension names: b batch · d channels · l length · n state size · g groups of B/C.

Backends (the one vocabulary of seqssm.kernels.BACKENDS):
    "reference"  the sequential loop of reference.py: the executable spec, float32/float64, slow.
    "chunked"    chunked.py: fast pure PyTorch for CPU (or any device), O(b·d·l + b·d·n·chunk) memory,
                 recomputation in backward. Same numerics class as the reference (fp32 state, or fp64).
    "cpu"        cpu.py + cpu_scan.c: one fused C loop for CPU tensors (float32 state and arithmetic; float64 is
                 refused), compiled on first use with the system C compiler; measured in docs/cpu-speed.md.
    "triton"     fused forward and recomputing backward in Triton, for CUDA tensors (or CPU tensors under the
                 Triton interpreter, TRITON_INTERPRET=1, which is how CI tests it). Inputs float32/16/bf16, state
                 and arithmetic float32. Not yet measured on a GPU. Two designs, chosen by `triton_design`:
                 "sequential" (triton_kernels.py: each program steps through time one step at a time),
                 "parallel" (triton_parallel_kernels.py: tiles contiguous along L, tl.associative_scan within a
                 tile, the state carried from tile to tile); "auto" is "sequential" until a GPU measurement of
                 both says otherwise (docs/kernels.md, "Mamba-1 scan: the two Triton designs").
    "auto"       "triton" for CUDA tensors (float32/16/bf16, no seq_idx) when Triton is importable; "cpu" for CPU
                 tensors that are not float64 when a C compiler is there; "chunked" otherwise (with one warning when
                 the faster path was wanted but cannot run); never a path of other numerics silently.
"""

from __future__ import annotations

import torch

from seqssm.kernels._checks import BACKENDS, KernelInputError, check_backend, check_tensor, path_for
from seqssm.kernels._triton import auto_picks_triton, require_triton, triton_usable
from seqssm.kernels.scan.reference import selective_scan_reference, selective_state_update_reference

TRITON_DESIGNS = ("auto", "sequential", "parallel")


def available_backends() -> tuple[str, ...]:
    """Backends that can run on this machine (besides "auto")."""
    import torch

    from seqssm.kernels.scan.cpu import usable as cpu_usable

    usable, _ = triton_usable(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return ("reference", "chunked") + (("cpu",) if cpu_usable()[0] else ()) + (("triton",) if usable else ())


_warned_cpu = False


def _auto_picks_cpu(u: torch.Tensor) -> bool:
    """The "auto" rule on CPU: the fused kernel for float32/16/bf16 inputs when it can be compiled; without a C
    compiler the chunked backend, with one warning (never silently)."""
    global _warned_cpu
    if u.device.type != "cpu" or u.dtype == torch.float64:
        return False
    from seqssm.kernels.scan.cpu import usable as cpu_usable

    usable, why = cpu_usable()
    if not usable and not _warned_cpu:
        import warnings

        warnings.warn(f"seqssm.kernels: backend 'auto' uses the slower chunked scan on CPU: {why}", stacklevel=3)
        _warned_cpu = True
    return usable


def _check_bc(name: str, X, b: int, d: int, n: int, l: int, device) -> None:
    if not isinstance(X, torch.Tensor):
        raise KernelInputError(f"{name}: expected a torch.Tensor, got {type(X).__name__}")
    if X.dim() == 2:
        check_tensor(name, X, (d, n), device=device)
    elif X.dim() == 3:
        check_tensor(name, X, (b, n, l), device=device)
    elif X.dim() == 4:
        check_tensor(name, X, (b, None, n, l), device=device)
        g = X.shape[1]
        if g < 1 or d % g:
            raise KernelInputError(f"{name}: {g} groups do not divide dim {d}")
    else:
        raise KernelInputError(
            f"{name}: expected shape (dim, N), (batch, N, L) or (batch, groups, N, L), got {tuple(X.shape)}"
        )


INDEX_DTYPES = (torch.int32, torch.int64)


def _validate(u, delta, A, B, C, D, z, delta_bias, initial_state, seq_idx=None) -> None:
    if not isinstance(u, torch.Tensor) or u.dim() != 3:
        raise KernelInputError(f"u: expected shape (batch, dim, L), got {getattr(u, 'shape', type(u).__name__)}")
    b, d, l = u.shape
    dev = u.device
    check_tensor("u", u, (b, d, l), device=dev)
    check_tensor("delta", delta, (b, d, l), device=dev)
    check_tensor("A", A, (d, None), device=dev, dtypes=(torch.float32, torch.float64))
    n = A.shape[1]
    if n < 1:
        raise KernelInputError("A: state size N must be at least 1")
    _check_bc("B", B, b, d, n, l, dev)
    _check_bc("C", C, b, d, n, l, dev)
    for name, x in (("D", D), ("delta_bias", delta_bias)):
        if x is not None:
            check_tensor(name, x, (d,), device=dev)
    if z is not None:
        check_tensor("z", z, (b, d, l), device=dev)
    if initial_state is not None:
        check_tensor("initial_state", initial_state, (b, d, n), device=dev, dtypes=(torch.float32, torch.float64))
    if seq_idx is not None:
        check_tensor("seq_idx", seq_idx, (b, l), device=dev, dtypes=INDEX_DTYPES)


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    initial_state: torch.Tensor | None = None,
    return_last_state: bool = False,
    seq_idx: torch.Tensor | None = None,
    backend: str = "auto",
    triton_design: str = "auto",
):
    """Selective scan h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t, y_t = C_t·h_t + D u_t, times silu(z_t).

    Args:
        u, delta: (b, d, l) input and step size (before delta_bias and softplus).
        A: (d, n), float32/64 (negative for a decaying state; the Mamba block stores -exp(A_log)).
        B, C: (d, n) time-invariant, (b, n, l), or grouped (b, g, n, l) with g dividing d.
        D, delta_bias: (d,) or None. z: (b, d, l) gate or None.
        delta_softplus: apply softplus to delta + delta_bias.
        initial_state: (b, d, n) state before t = 0 (zeros when None); gradients flow into it.
        return_last_state: also return h_{l-1} (b, d, n), float32 (float64 for float64 inputs),
            which carries gradient, so scanning x[:a] then x[a:] from that state equals scanning x.
        seq_idx: (b, l) int32/int64, for several sequences packed in one row: where it changes, the state
            restarts from zero, so nothing leaks from one sequence into the next (initial_state seeds the first).
        backend: "auto", "reference", "chunked", "cpu" or "triton" (seqssm.kernels.BACKENDS; see the module docstring).
        triton_design: which Triton kernel the "triton" backend runs (also when "auto" picks it): "sequential",
            "parallel" or "auto" (today "sequential"). Naming a design with another backend is an error:
            they have none.

    Returns:
        out (b, d, l) in u's dtype, or (out, last_state).

    Example:
        >>> b, d, l, n = 2, 4, 64, 8
        >>> u, dt = torch.randn(b, d, l), torch.rand(b, d, l)
        >>> A = -torch.rand(d, n)
        >>> B, C = torch.randn(b, n, l), torch.randn(b, n, l)
        >>> y, h = selective_scan(u, dt, A, B, C, delta_softplus=True, return_last_state=True)
        >>> y.shape, h.shape
        (torch.Size([2, 4, 64]), torch.Size([2, 4, 8]))
    """
    check_backend(backend)
    if triton_design not in TRITON_DESIGNS:
        raise KernelInputError(
            f"triton_design: unknown name {triton_design!r}; choose one of {', '.join(TRITON_DESIGNS)}")
    if triton_design != "auto" and backend in ("reference", "chunked", "cpu"):
        raise KernelInputError(f"triton_design: {triton_design!r} names a triton kernel, but backend is {backend!r}")
    _validate(u, delta, A, B, C, D, z, delta_bias, initial_state, seq_idx)
    if backend == "auto":
        fits = u.dtype != torch.float64 and A.shape[1] <= 256
        backend = "triton" if fits and auto_picks_triton(u.device) else "cpu" if _auto_picks_cpu(u) else "chunked"
    if backend == "reference":
        return selective_scan_reference(
            u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, return_last_state, seq_idx
        )
    if backend == "triton":
        from seqssm.kernels.scan.triton_scan import selective_scan_triton

        require_triton(u.device, u=u.dtype, delta=delta.dtype)

        return selective_scan_triton(
            u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, return_last_state, seq_idx,
            design=triton_design,
        )
    if backend == "cpu":
        from seqssm.kernels.scan.cpu import selective_scan_cpu, usable as cpu_usable

        if u.device.type != "cpu" or u.dtype == torch.float64:
            raise KernelInputError(f"backend: 'cpu' takes CPU tensors up to float32, got {u.dtype} on {u.device.type} "
                                   "(use 'chunked' or 'reference')")
        usable, why = cpu_usable()
        if not usable:
            raise KernelInputError(f"backend: 'cpu' cannot run here: {why}")
        return selective_scan_cpu(
            u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, return_last_state, seq_idx
        )
    from seqssm.kernels.scan.chunked import selective_scan_chunked

    return selective_scan_chunked(
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, return_last_state, seq_idx
    )


def selective_state_update(
    state: torch.Tensor,
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    dt_bias: torch.Tensor | None = None,
    dt_softplus: bool = False,
    backend: str = "auto",
) -> torch.Tensor:
    """One recurrent decoding step (mamba_ssm's `selective_state_update` semantics), O(1) in the context length.

    state (b, d, n) float32/64 is updated in place; x, dt, z (b, d); B, C (b, n) or (b, g, n). Returns (b, d).
    backend: "reference" and "chunked" (the same PyTorch ops: one step has no chunks), "triton" (one fused kernel,
    float32 state) or "auto" (triton for a float32 state on CUDA).
    """
    check_backend(backend)
    if not isinstance(state, torch.Tensor) or state.dim() != 3:
        raise KernelInputError(f"state: expected shape (batch, dim, N), got {getattr(state, 'shape', None)}")
    b, d, n = state.shape
    dev = state.device
    check_tensor("state", state, (b, d, n), device=dev, dtypes=(torch.float32, torch.float64))
    check_tensor("x", x, (b, d), device=dev)
    check_tensor("dt", dt, (b, d), device=dev)
    check_tensor("A", A, (d, n), device=dev, dtypes=(torch.float32, torch.float64))
    for name, X in (("B", B), ("C", C)):
        if isinstance(X, torch.Tensor) and X.dim() == 3:
            check_tensor(name, X, (b, None, n), device=dev)
            if d % X.shape[1]:
                raise KernelInputError(f"{name}: {X.shape[1]} groups do not divide dim {d}")
        else:
            check_tensor(name, X, (b, n), device=dev)
    backend = path_for("selective_state_update", backend, dev)
    if backend == "auto":
        backend = "triton" if state.dtype == torch.float32 and auto_picks_triton(dev) else "reference"
    if backend == "triton":
        require_triton(dev, state=state.dtype, x=x.dtype, dt=dt.dtype)
        from seqssm.kernels.scan.triton_scan import selective_state_update_triton

        return selective_state_update_triton(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus)
    return selective_state_update_reference(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus)


__all__ = ["selective_scan", "selective_state_update", "selective_scan_reference", "available_backends", "BACKENDS",
           "TRITON_DESIGNS"]

"""Selective scan, "cpu" backend: the fused C loop of cpu_scan.c, compiled on first use, called through ctypes.

Dimension names: b batch · d channels · l length · n state size · g groups of B/C · T steps per checkpoint chunk ·
                 DB channels per work item.

Same contract and numerics class as the chunked backend (float32 state and arithmetic; float64 inputs are refused,
the reference and chunked backends take them), tested against the float64 reference in tests/kernels. Why it exists:
the chunked backend streams the (b, d, l, n) state through memory in 30-40 separate PyTorch operators per forward
and backward; at short lengths (the induction-heads model: b 8, d 128, l 256, n 16) that is 87% of a training step.
cpu_scan.c walks time once per (batch row, DB channels) with the state in L1, one exp and a few multiply-adds per
state element, and recomputes chunk states in backward from checkpoints every T steps (paper section 3.3.2), so
memory stays O(b·d·l + b·d·n·l/T).

Build. `cc -O3 -march=native -fno-trapping-math -fopenmp-simd` (the last two let the loops over n vectorise) (CC overrides cc) into $SEQSSM_CACHE/kernels or ~/.cache/seqssm/kernels,
one file per (source, compiler, CPU flags), written to a temporary name and renamed. About a second, once per
machine. Without a C compiler the backend is unavailable (`usable()` says why) and "auto" picks "chunked" with one
warning, never silently.

Threads (issue 15: a scan must not collapse when another process is busy on the same cores): the work items are
(batch row, DB channels) blocks taken from one shared counter, so a descheduled thread just takes fewer blocks; the
thread count is `scan_threads()` (see its docstring), printed by `seqssm info`.

Everything elementwise (Δ = softplus(delta + bias), the skip D u, the gate silu(z)) and every gradient is computed
inside the C loop, which reads the (b, d, l) tensors in their own layout (the Mamba block's delta and z are transposed
(b, l, d) views: no copies) and B, C through strided (b, l, g, n) views.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

from seqssm.kernels.scan import chunked

_SOURCE = Path(__file__).with_name("cpu_scan.c")
_FLAGS = ["-O3", "-march=native", "-fno-trapping-math", "-fopenmp-simd", "-ffp-contract=fast", "-fPIC", "-shared", "-std=c11"]
CHUNK_STEPS = 64  # T: steps between saved states (backward buffers are 2·T·DB·n floats a thread: L2-sized)
BLOCK_CHANNELS = 16  # DB: channels per work item (items = b · ceil(d / DB): enough to balance two threads at b = 1)
# Per thread the work must be worth a thread start (~50 µs): below this many state elements (b·d·l·n) per thread,
# fewer threads are used.
_MIN_ELEMENTS_PER_THREAD = 1 << 18


class _Args(ctypes.Structure):  # mirrors ScanArgs in cpu_scan.c, field for field
    _fields_ = (
        [(k, ctypes.c_int64) for k in ("b", "d", "l", "n", "T", "DB", "nthreads")]
        + [("s", ctypes.c_int64 * 24)]
        + [(k, ctypes.c_void_p) for k in ("u", "delta", "delta_bias", "D", "z")]
        + [("softplus", ctypes.c_int64), ("A", ctypes.c_void_p), ("B", ctypes.c_void_p)]
        + [(k, ctypes.c_int64) for k in ("B_sb", "B_st", "B_sg", "B_dpg", "B_ti")]
        + [("C", ctypes.c_void_p)]
        + [(k, ctypes.c_int64) for k in ("C_sb", "C_st", "C_sg", "C_dpg", "C_ti")]
        + [(k, ctypes.c_void_p) for k in ("reset", "h0", "ckpt", "out", "h_last", "dout", "dh_last", "du", "ddelta",
                                          "dz", "dA", "dD", "dbias", "dB", "dC")]
        + [(k, ctypes.c_int64) for k in ("dB_size", "dC_size")]
        + [("dh0", ctypes.c_void_p)]
        + [(k, ctypes.c_int64) for k in ("next", "failed")]
    )


_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_why_not: str | None = None


def _cache_dir() -> Path:
    root = os.environ.get("SEQSSM_CACHE")
    return (Path(root).expanduser() if root else Path("~/.cache/seqssm").expanduser()) / "kernels"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    import platform

    return platform.processor() + platform.machine()


def _build() -> ctypes.CDLL:
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        raise RuntimeError(f"no C compiler ({os.environ.get('CC', 'cc')!r} is not on PATH)")
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    key = hashlib.sha256("\n".join([_SOURCE.read_text(), " ".join(_FLAGS), *version, _cpu_flags()]).encode())
    target = _cache_dir() / f"cpu_scan-{key.hexdigest()[:16]}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            proc = subprocess.run([cc, *_FLAGS, "-o", tmp, str(_SOURCE), "-lpthread"], capture_output=True,
                                  text=True)
            if proc.returncode != 0:
                tail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
                raise RuntimeError(f"{Path(cc).name} failed on cpu_scan.c: {tail}")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    lib = ctypes.CDLL(str(target))
    for fn in (lib.seqssm_scan_forward, lib.seqssm_scan_backward):
        fn.argtypes, fn.restype = [ctypes.POINTER(_Args)], ctypes.c_int
    lib.seqssm_scan_abi.restype = ctypes.c_int64
    if lib.seqssm_scan_abi() != ctypes.sizeof(_Args):
        raise RuntimeError(f"{target.name}: argument layout differs from cpu.py (delete the file to rebuild)")
    return lib


def library() -> ctypes.CDLL:
    """The compiled kernel (built on first call); RuntimeError with the reason when it cannot be built."""
    global _lib, _why_not
    with _lock:
        if _lib is None and _why_not is None:
            try:
                _lib = _build()
            except (RuntimeError, OSError) as err:
                _why_not = str(err)
        if _lib is None:
            raise RuntimeError(_why_not)
        return _lib


def usable() -> tuple[bool, str]:
    """(usable, reason): whether the fused CPU kernel is (or can be) compiled on this machine."""
    try:
        library()
    except RuntimeError as err:
        return False, str(err)
    return True, ""


def scan_threads(b: int = 8, d: int = 128, l: int = 256, n: int = 16) -> int:
    """Threads the fused scan uses for a problem of this size: torch.get_num_threads() (the user's setting; torch
    defaults to one per core), fewer when a thread would get less than _MIN_ELEMENTS_PER_THREAD state elements or
    fewer than one work item. With dynamic scheduling this default holds up under a competing busy process (measured
    by `seqssm bench contention`, docs/cpu-speed.md)."""
    items = b * -(-d // BLOCK_CHANNELS)
    by_work = max(1, (b * d * l * n) // _MIN_ELEMENTS_PER_THREAD)
    return max(1, min(torch.get_num_threads(), items, by_work, 64))


def threading_summary() -> str:
    """One line for `seqssm info`: what the CPU scan does about threads."""
    ok, why = usable()
    if not ok:
        return f"fused cpu kernel unavailable ({why}); chunked PyTorch ops use torch's {torch.get_num_threads()}"
    return (f"fused cpu kernel, up to {torch.get_num_threads()} threads (torch.get_num_threads()), "
            f"dynamic work sharing over (batch, {BLOCK_CHANNELS}-channel) blocks, "
            f"fewer threads when one would get under {_MIN_ELEMENTS_PER_THREAD} state elements")


# ------------------------------------------------------------------------------------------------------ layouts


def _bc_view(X: torch.Tensor, d: int):
    """B or C as (contiguous float32 tensor, strides (sb, st, sg), channels per group, time-invariant)."""
    if X.dim() == 2:  # (d, n)
        Xc = X.contiguous()
        return Xc, (0, 0, Xc.shape[1]), 1, 1
    if X.dim() == 3:  # (b, n, l) -> (b, l, n)
        Xc = X.transpose(1, 2).contiguous()
        _, l, n = Xc.shape
        return Xc, (l * n, n, 0), d, 0
    Xc = X.permute(0, 3, 1, 2).contiguous()  # (b, g, n, l) -> (b, l, g, n)
    _, l, g, n = Xc.shape
    return Xc, (l * g * n, g * n, n), d // g, 0


def _grad_as_input(dX: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Undo _bc_view's layout for a gradient of the compact shape."""
    if X.dim() == 2:
        return dX
    if X.dim() == 3:
        return dX.transpose(1, 2)
    return dX.permute(0, 2, 3, 1)


def _ptr(x: torch.Tensor | None) -> int | None:
    return None if x is None else x.data_ptr()


def _f32(x: torch.Tensor | None) -> torch.Tensor | None:
    """float32, in whatever layout x has (the C loop reads through strides, zero strides included)."""
    return None if x is None else x.to(torch.float32)


# Order of the stride triples in ScanArgs.s (the enum in cpu_scan.c).
_STRIDED = ("u", "delta", "z", "out", "dout", "du", "ddelta", "dz")


def _time_major(b: int, d: int, l: int) -> torch.Tensor:
    """An empty (b, d, l) float32 tensor stored as (b, l, d): the Mamba block reads the output transposed."""
    return chunked._new_output(torch.empty(b, l, d, dtype=torch.float32)).transpose(1, 2)


def _like(x: torch.Tensor) -> torch.Tensor:
    """An empty float32 (b, d, l) tensor stored like x when x is (b, l, d) in memory (so the gradient flows back through
    the Mamba block's transposes without a copy), else contiguous."""
    if x.transpose(1, 2).is_contiguous() and not x.is_contiguous():
        return _time_major(*x.shape)
    return chunked._new_output(torch.empty(x.shape, dtype=torch.float32))


class _CpuScan(torch.autograd.Function):
    """Same signature and results as chunked._ChunkedScan (out (b, d, l) in u's dtype, h_{l-1} (b, d, n) float32).

    Everything elementwise (Δ = softplus(delta + bias), the skip D u, the gate silu(z)) and every gradient is computed
    inside the C loop, which reads (b, d, l) tensors in their own layout. Saved for backward: the inputs and the
    chunk states."""

    @staticmethod
    def _prepare(u, delta, A, B, C, D, z, delta_bias, h0, softplus, reset):
        b, d, l = u.shape
        n = A.shape[1]
        u32, delta32, bias32, D32, z32 = map(_f32, (u, delta, delta_bias, D, z))
        Bc, (B_sb, B_st, B_sg), B_dpg, B_ti = _bc_view(B, d)
        Cc, (C_sb, C_st, C_sg), C_dpg, C_ti = _bc_view(C, d)
        Ac = A.contiguous()
        r = None if reset is None else reset.to(torch.uint8).contiguous()
        keep = (u32, delta32, bias32, D32, z32, Bc, Cc, Ac, r, h0)  # the C loop reads their memory
        args = _Args(b=b, d=d, l=l, n=n, T=CHUNK_STEPS, DB=BLOCK_CHANNELS, nthreads=scan_threads(b, d, l, n),
                     u=_ptr(u32), delta=_ptr(delta32), delta_bias=_ptr(bias32), D=_ptr(D32),
                     z=_ptr(z32), softplus=int(softplus), A=_ptr(Ac), B=_ptr(Bc), B_sb=B_sb, B_st=B_st, B_sg=B_sg,
                     B_dpg=B_dpg, B_ti=B_ti, C=_ptr(Cc), C_sb=C_sb, C_st=C_st, C_sg=C_sg, C_dpg=C_dpg, C_ti=C_ti,
                     reset=_ptr(r), h0=_ptr(h0))
        _CpuScan._strides(args, u=u32, delta=delta32, z=z32)
        return args, keep, (Bc, Cc)

    @staticmethod
    def _strides(args, **tensors):
        for name, x in tensors.items():
            if x is not None:
                i = 3 * _STRIDED.index(name)
                args.s[i : i + 3] = list(x.stride())

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, h0, softplus, reset):
        b, d, l = u.shape
        n = A.shape[1]
        h0 = h0.contiguous()
        args, keep, _ = _CpuScan._prepare(u, delta, A, B, C, D, z, delta_bias, h0, softplus, reset)
        ckpt = chunked._new_output(torch.empty(b, -(-l // CHUNK_STEPS), d, n, dtype=torch.float32))
        out = _time_major(b, d, l)
        h_last = chunked._new_output(h0)
        args.ckpt, args.out, args.h_last = _ptr(ckpt), _ptr(out), _ptr(h_last)
        _CpuScan._strides(args, out=out)
        if l > 0 and library().seqssm_scan_forward(ctypes.byref(args)) != 0:
            raise MemoryError("selective_scan (cpu): a thread could not allocate its buffers")
        del keep
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, h0, reset, ckpt)
        ctx.softplus = softplus
        return out.to(u.dtype), (h_last if l > 0 else h0.clone())

    @staticmethod
    def backward(ctx, dout, dh_last):
        u, delta, A, B, C, D, z, delta_bias, h0, reset, ckpt = ctx.saved_tensors
        b, d, l = u.shape
        n = A.shape[1]
        args, keep, (Bc, Cc) = _CpuScan._prepare(u, delta, A, B, C, D, z, delta_bias, h0, ctx.softplus, reset)
        dout32 = _f32(dout)
        g_last = torch.zeros_like(h0) if dh_last is None else dh_last.to(torch.float32).contiguous()
        nt = args.nthreads
        du, ddelta = _like(keep[0]), _like(keep[1])
        dz = None if z is None else _like(keep[4])
        dA = torch.zeros(nt, d, n, dtype=torch.float64)
        dD, dbias = torch.zeros(nt, d, dtype=torch.float64), torch.zeros(nt, d, dtype=torch.float64)
        dB = torch.zeros((nt, *Bc.shape), dtype=torch.float32)
        dC = torch.zeros((nt, *Cc.shape), dtype=torch.float32)
        dh0 = chunked._new_output(h0)
        args.ckpt, args.dout, args.dh_last = _ptr(ckpt), _ptr(dout32), _ptr(g_last)
        args.du, args.ddelta, args.dz, args.dA, args.dD, args.dbias, args.dB, args.dC, args.dh0 = map(
            _ptr, (du, ddelta, dz, dA, dD, dbias, dB, dC, dh0))
        args.dB_size, args.dC_size = Bc.numel(), Cc.numel()
        _CpuScan._strides(args, dout=dout32, du=du, ddelta=ddelta, dz=dz)
        if l > 0:
            if library().seqssm_scan_backward(ctypes.byref(args)) != 0:
                raise MemoryError("selective_scan (cpu): a thread could not allocate its buffers")
        else:
            dh0.copy_(g_last)
        del keep

        def cast(g, like):
            return None if like is None else g.to(like.dtype)

        return (cast(du, u), cast(ddelta, delta), cast(dA.sum(0), A), _grad_as_input(dB.sum(0), B),
                _grad_as_input(dC.sum(0), C), cast(dD.sum(0), D), cast(dz, z), cast(dbias.sum(0), delta_bias), dh0,
                None, None)


def selective_scan_cpu(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, initial_state=None,
    return_last_state=False, seq_idx=None,
):
    """"cpu" backend; same contract as seqssm.kernels.selective_scan (inputs validated there; float32 compute)."""
    b, d, _ = u.shape
    n = A.shape[1]
    f32 = torch.float32
    h0 = torch.zeros(b, d, n, dtype=f32) if initial_state is None else initial_state.to(f32)
    out, h_last = _CpuScan.apply(
        u, delta, A.to(f32), B.to(f32), C.to(f32), D, z, delta_bias, h0, bool(delta_softplus),
        None if seq_idx is None else chunked.sequence_starts(seq_idx),
    )
    return (out, h_last) if return_last_state else out

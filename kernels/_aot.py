"""Ahead-of-time compilation cases: each Triton launcher module lists the specializations it really launches.

A launcher module (e.g. kernels/scan/triton_scan.py) defines `aot_cases() -> list[AotCase]`: one case per flag
set, input dtype, block size and integer width its launch code can produce. The test suite compiles every case
for sm_80 and sm_90 on CPU (no GPU needed) and records registers and spills; see tests/kernels/test_aot_compile.py
and `python -m seqssm.kernels._aot` (the table of docs/gpu.md).

Why: the Triton interpreter runs kernels as numpy and cannot see what only the compiler sees (an op or layout a
GPU target does not support, an int32/int64 mix-up, register pressure that spills the state to local memory).
`triton.compile` with a GPUTarget needs no GPU: it produces PTX and, with the `ptxas` that ships inside Triton's
package, a cubin; ptxas's -v log (which Triton prints when asked) gives registers and spills.
"""

from __future__ import annotations

import importlib
import re
import time
from dataclasses import dataclass, field

# The modules whose `aot_cases()` the test compiles: a new Triton launcher module adds one line here.
LAUNCHER_MODULES = [
    "seqssm.kernels.scan.triton_scan",
    "seqssm.kernels.conv.triton_conv",
    "seqssm.kernels.scan.triton_parallel",
    "seqssm.kernels.ssd.triton_ssd",
]
ARCHS = (80, 90)  # A100 and H100/H200


@dataclass(frozen=True)
class AotCase:
    name: str  # readable test id, e.g. "scan_fwd-bf16-D32-N16-all"
    kernel: object  # the @triton.jit function
    signature: dict  # argument name -> Triton type string ("*fp32", "*bf16", "i32", "i64", "fp32", "constexpr")
    constexprs: dict = field(default_factory=dict)  # argument name -> value, for every tl.constexpr argument
    num_warps: int = 4
    num_stages: int = 3
    # arguments Triton's launcher would mark divisible by 16 (aligned pointers, sizes and strides that are multiples
    # of 16): ASTSource(..., attrs={(index,): [["tt.divisibility", 16]]}); without them loads do not vectorize
    aligned: tuple = ()
    maxnreg: int | None = None  # the launch's maxnreg option (registers a thread may use), None: ptxas decides


def make_case(name: str, kernel, types: dict, constexprs: dict, *, ints: str = "i32", num_warps: int = 4,
              num_stages: int = 3, maxnreg: int | None = None) -> AotCase:
    """A case from what a launch passes: `types` gives the pointer types ("*bf16", ...) of the tensors passed and
    any integer that is not `ints` wide; a pointer argument absent from `types` is launched as None (a constexpr
    None, as Triton specializes it); `constexprs` holds the tl.constexpr arguments and integers launched as 1
    (Triton specializes an int argument equal to 1 into a constant); every other argument is an `ints` integer."""
    sig, consts = {}, dict(constexprs)
    for arg in kernel.arg_names:
        if arg in consts:
            sig[arg] = "constexpr"
        elif arg in types:
            sig[arg] = types[arg]
        elif arg.endswith("_ptr"):
            sig[arg], consts[arg] = "constexpr", None
        else:
            sig[arg] = ints
    unknown = set(types) - set(sig)
    if unknown:
        raise ValueError(f"{name}: {sorted(unknown)} are not arguments of {kernel.__name__}")
    return AotCase(name, kernel, sig, consts, num_warps, num_stages, maxnreg=maxnreg)


def collect_cases(modules: list[str] | None = None) -> list[AotCase]:
    """Every case of every launcher module (import order), names unique."""
    cases = []
    for mod in modules or LAUNCHER_MODULES:
        cases += importlib.import_module(mod).aot_cases()
    names = [c.name for c in cases]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"duplicate AOT case names: {sorted(dup)}")
    return cases


@dataclass(frozen=True)
class AotResult:
    case: str
    arch: int
    registers: int
    spill_stores: int  # bytes
    spill_loads: int  # bytes
    stack: int  # bytes of stack frame
    seconds: float  # compile time on this machine


_PTXAS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads.*?"
                    r"Used (\d+) registers", re.S)


def compile_case(case: AotCase, arch: int) -> AotResult:
    """Compile `case` for sm_`arch` on this (GPU-less) machine. Registers and spills are read from the `ptxas -v`
    log of Triton's own ptxas run (the very cubin a GPU would load; Triton passes its own ptxas options), with
    Triton's cache bypassed so that ptxas runs. Raises whatever Triton raises for a kernel that does not compile."""
    import contextlib
    import io

    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    t0 = time.perf_counter()
    log = io.StringIO()
    with knobs.compilation.scope(), knobs.nvidia.scope(), contextlib.redirect_stdout(log):
        knobs.compilation.always_compile = True
        knobs.nvidia.dump_ptxas_log = True
        attrs = {(case.kernel.arg_names.index(a),): [["tt.divisibility", 16]] for a in case.aligned}
        src = ASTSource(case.kernel, case.signature, case.constexprs, attrs)
        options = dict(num_warps=case.num_warps, num_stages=case.num_stages)
        if case.maxnreg is not None:
            options["maxnreg"] = case.maxnreg
        triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)
    seconds = time.perf_counter() - t0
    m = _PTXAS.search(log.getvalue())
    if m is None:
        raise RuntimeError(f"{case.name}: no register report in Triton's ptxas log: {log.getvalue()[-500:]!r}")
    stack, stores, loads, regs = map(int, m.groups())
    return AotResult(case.name, arch, regs, stores, loads, stack, seconds)


def table(results: list[AotResult]) -> str:
    """Markdown: one row per case, registers and spill bytes per arch."""
    archs = sorted({r.arch for r in results})
    by = {(r.case, r.arch): r for r in results}
    head = "| case | " + " | ".join(f"sm_{a} regs | sm_{a} spills (B) " for a in archs) + "|"
    rows = [head, "|---" * (1 + 2 * len(archs)) + "|"]
    for case in dict.fromkeys(r.case for r in results):
        cells = []
        for a in archs:
            r = by.get((case, a))
            cells += ["-", "-"] if r is None else [str(r.registers), str(r.spill_stores + r.spill_loads)]
        rows.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _compile_named(job: tuple[str, int]) -> AotResult | str:
    """Worker: compile the case named job[0] for sm_job[1]; a failure comes back as its one-line text."""
    name, arch = job
    case = {c.name: c for c in collect_cases()}[name]
    try:
        return compile_case(case, arch)
    except Exception as exc:  # reported by the caller with every other failure
        return f"{name} sm_{arch}: {type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300] if str(exc) else ''}"


def compile_all(archs=ARCHS, workers: int | None = None, progress=None) -> tuple[list[AotResult], list[str]]:
    """Every case of every launcher module for every arch, in `workers` processes (default: one per CPU):
    (results in case order, one line per failure)."""
    import concurrent.futures as cf
    import multiprocessing as mp
    import os

    jobs = [(c.name, a) for c in collect_cases() for a in archs]
    workers = max(1, min(len(jobs), workers or os.cpu_count() or 1))
    results, failed = [], []
    # spawn: a fresh interpreter per worker (no fork of a process that may hold threads or a CUDA context)
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        for i, res in enumerate(pool.map(_compile_named, jobs)):
            (results if isinstance(res, AotResult) else failed).append(res)
            if progress:
                progress(i + 1, len(jobs), jobs[i])
    return results, failed


def main() -> int:
    """Compile every case for every arch and print the table (docs/gpu.md); exit 1 on a spill or a failure."""
    import sys

    import triton

    t0 = time.perf_counter()
    results, failed = compile_all(progress=lambda i, n, job: print(f"[{i}/{n}] {job[0]} sm_{job[1]}",
                                                                   file=sys.stderr, flush=True))
    print(f"Triton {triton.__version__} (its ptxas, its options); spills = spill stores + loads in bytes; "
          f"{time.perf_counter() - t0:.0f} s\n")
    print(table(results))
    spilled = [f"{r.case} sm_{r.arch}" for r in results if r.spill_stores or r.spill_loads]
    for line in failed + [f"spills: {s}" for s in spilled]:
        print(line, file=sys.stderr)
    return 1 if failed or spilled else 0


if __name__ == "__main__":
    raise SystemExit(main())

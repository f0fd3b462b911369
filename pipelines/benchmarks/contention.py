"""`seqssm bench contention`: the selective scan's forward+backward while another process keeps a core busy.

Issue 15: on a shared 2-core machine a scan whose threads are statically partitioned waits for its slowest thread, and
a competing process makes that thread slow (the chunked scan once took 13.2 s on two threads against 1.06 s on one).
This benchmark starts one competing busy process itself (a Python spin loop, bounded in time and killed at the end),
then times, each in a fresh process with torch's default thread count (as a user would run it), interleaved and
repeated: seqssm's scan at default settings (backend "auto"), the peer mambapy's parallel scan on the same shapes, and
optionally the chunked backend (the previous CPU default). It prints the medians and their ratio and writes JSON.

Shapes (issue 15): batch 1, 128 channels, N 16, L 16,384; Δ through softplus with a bias, the skip D; no gate.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

_BUSY = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def _case(impl: str, b: int, d: int, n: int, length: int, threads: int) -> dict:
    """One timed forward+backward in this (fresh) process; threads 0 leaves torch's default."""
    import torch
    import torch.nn.functional as F

    if threads > 0:
        torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)

    def inputs(l):
        x = {"u": torch.randn(b, d, l, generator=gen), "delta": torch.randn(b, d, l, generator=gen) - 2.0,
             "A": -torch.rand(d, n, generator=gen) * 4, "B": torch.randn(b, n, l, generator=gen),
             "C": torch.randn(b, n, l, generator=gen), "D": torch.randn(d, generator=gen),
             "delta_bias": torch.rand(d, generator=gen)}
        return {k: v.requires_grad_(True) for k, v in x.items()}

    if impl == "mambapy":
        from mambapy.mamba import MambaBlock

        def run(x):  # mambapy's layout: (b, l, d) inputs, (b, l, n) B and C; softplus applied by its caller
            delta = F.softplus(x["delta"] + x["delta_bias"][:, None])
            y = MambaBlock.selective_scan(None, x["u"].transpose(1, 2), delta.transpose(1, 2), x["A"],
                                          x["B"].transpose(1, 2), x["C"].transpose(1, 2), x["D"])
            return y.transpose(1, 2)
    else:
        from seqssm.kernels import selective_scan

        backend = "auto" if impl == "seqssm" else impl

        def run(x):
            return selective_scan(**x, delta_softplus=True, backend=backend)

    run(inputs(256)).sum().backward()  # warm-up: lazy imports, the kernel build, first allocations
    x = inputs(length)
    t0 = time.perf_counter()
    run(x).sum().backward()
    seconds = time.perf_counter() - t0
    return {"impl": impl, "seconds": seconds, "threads": torch.get_num_threads()}


def worker(kwargs_json: str) -> None:
    print("SEQSSM_CONTENTION " + json.dumps(_case(**json.loads(kwargs_json))), flush=True)


def _run_case(timeout: float, **kwargs) -> dict:
    code = f"from seqssm.pipelines.benchmarks.contention import worker; worker({json.dumps(json.dumps(kwargs))})"
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"impl": kwargs["impl"], "error": f"timed out after {timeout:g} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("SEQSSM_CONTENTION "):
            return json.loads(line[len("SEQSSM_CONTENTION "):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"impl": kwargs["impl"], "error": f"exit {proc.returncode}: {tail}"}


def bench_contention(args) -> dict:
    """Interleaved repeats under one busy process; returns rows, medians and the ratio mambapy / seqssm."""
    from seqssm.kernels.scan.cpu import threading_summary

    impls = ["seqssm", "mambapy"] + (["chunked"] if args.with_chunked else [])
    shape = {"b": 1, "d": 128, "n": 16, "length": args.contention_length}
    busy = None
    if not args.no_busy:
        # bounded even if this process dies: the spin loop ends by itself after the longest this run can take
        limit = args.repeats * len(impls) * (args.case_timeout + 5) + 30
        busy = subprocess.Popen([sys.executable, "-c", _BUSY, str(limit)])
    rows = []
    try:
        time.sleep(0.5 if busy else 0)  # let the competitor get going
        for r in range(args.repeats):
            for impl in impls:
                print(f"  repeat {r + 1}/{args.repeats}: {impl} ...", flush=True)
                row = _run_case(args.case_timeout, impl=impl, threads=args.contention_threads, **shape)
                row["repeat"] = r
                rows.append(row)
                if "error" in row:
                    print(f"    failed: {row['error']}", flush=True)
                else:
                    print(f"    {row['seconds']:.2f} s on {row['threads']} thread(s)", flush=True)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    medians = {}
    for impl in impls:
        times = [r["seconds"] for r in rows if r["impl"] == impl and "error" not in r]
        if times:
            medians[impl] = statistics.median(times)
    threads = "torch default" if args.contention_threads == 0 else str(args.contention_threads)
    print(f"\nforward+backward, batch 1, 128 channels, N 16, L={args.contention_length}, threads: {threads}, "
          f"{'one competing busy process' if busy else 'no competing process'}, {os.cpu_count()} CPUs")
    print(f"  scan threading: {threading_summary()}")
    for impl in impls:
        got = [f"{r['seconds']:.2f}" for r in rows if r["impl"] == impl and "error" not in r]
        med = f"{medians[impl]:.2f} s" if impl in medians else "failed"
        print(f"  {impl:<8} median {med:>8}   runs: {', '.join(got)}")
    ratio = medians["mambapy"] / medians["seqssm"] if {"mambapy", "seqssm"} <= medians.keys() else None
    if ratio is not None:
        print(f"  seqssm (default settings) is {ratio:.1f}x mambapy's speed (issue 15 asks for at least 2x)")
    return {"shape": shape, "busy_process": busy is not None, "threads": threads, "rows": rows,
            "median_seconds": medians, "mambapy_over_seqssm": ratio, "scan_threading": threading_summary()}

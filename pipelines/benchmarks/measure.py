"""Run one benchmark case in a fresh Python process, so that its peak resident memory (ru_maxrss, which includes
the interpreter and torch, about 0.3-0.4 GB) is its own.

A case is a function that returns a JSON-able dict; CASES names it as "module:function", imported only inside
the worker process (so this module imports no benchmark module, and none imports another's private names).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

CASES = {
    "train": "seqssm.pipelines.benchmarks.bench:case_train",
    "long": "seqssm.pipelines.benchmarks.bench:case_long",
    "decode": "seqssm.pipelines.benchmarks.bench:case_decode",
    "accuracy": "seqssm.pipelines.benchmarks.bench:case_accuracy",
    "scaling": "seqssm.pipelines.benchmarks.scaling:case_scaling",
}
MARK = "SEQSSM_BENCH "


def peak_rss_gb() -> float:
    """This process's peak resident memory in GB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def worker(name: str, kwargs_json: str) -> None:
    """Inside the fresh process: run case `name` and print its result on one marked line."""
    module, func = CASES[name].split(":")
    result = getattr(importlib.import_module(module), func)(**json.loads(kwargs_json))
    print(MARK + json.dumps(result), flush=True)


def run_case(name: str, timeout: float | None = None, **kwargs) -> dict:
    """Run one case in a fresh interpreter and return its JSON result (or the error it died of, or the timeout)."""
    code = f"from seqssm.pipelines.benchmarks.measure import worker; worker({name!r}, {json.dumps(json.dumps(kwargs))})"
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK) :])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {proc.returncode}: {tail}"}

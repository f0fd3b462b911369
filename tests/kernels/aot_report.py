"""Compile a launcher module's aot_cases() for sm_80 and sm_90 on CPU (no GPU needed) and print registers and
spills per case, from `ptxas -v` (the ptxas inside Triton's package). Exit status 1 if a case fails or spills.

    .venv/bin/python tests/kernels/aot_report.py seqssm.kernels.scan.triton_parallel [name-filter]

Not collected by pytest (the suite's own compile test is tests/kernels/test_aot_compile.py); this prints the table.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import tempfile

import triton
from triton.backends.compiler import GPUTarget

PTXAS = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")


def sm_arch(arch: int) -> str:
    return "sm_90a" if arch == 90 else f"sm_{arch}"  # as Triton names them (sm_arch_from_capability)


def compile_case(case, arch: int) -> tuple[int, int, int]:
    """(registers, spill stores, spill loads) of one case compiled for sm_<arch>."""
    attrs = {(case.kernel.arg_names.index(name),): [["tt.divisibility", 16]] for name in case.aligned}
    src = triton.compiler.ASTSource(case.kernel, case.signature, case.constexprs, attrs)
    out = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                         options=dict(num_warps=case.num_warps, num_stages=case.num_stages))
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(out.asm["ptx"])
    try:
        # the flags Triton's own make_cubin passes (triton/backends/nvidia/compiler.py), so the numbers are its
        log = subprocess.run([PTXAS, "-lineinfo", "-v", "--regAllocOptLevel=2", f"--gpu-name={sm_arch(arch)}",
                              f.name, "-o", os.devnull], capture_output=True, text=True, check=True).stderr
    finally:
        os.unlink(f.name)
    regs = int(re.search(r"Used (\d+) registers", log).group(1))
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    return regs, int(spills.group(1)), int(spills.group(2))


def main(module: str, pattern: str = "") -> int:
    cases = [c for c in importlib.import_module(module).aot_cases() if pattern in c.name]
    bad = 0
    print(f"{'case':<62} {'warps':>5} {'sm_80 regs':>10} {'sm_90 regs':>10}  spills (st/ld bytes)")
    for case in cases:
        row, spill = [], []
        for arch in (80, 90):
            try:
                regs, st, ld = compile_case(case, arch)
            except Exception as e:  # noqa: BLE001 (reported, counted, and the exit status says so)
                row.append("FAIL")
                spill.append(f"sm_{arch}: {type(e).__name__}: {str(e).splitlines()[0][:80]}")
                bad += 1
                continue
            row.append(str(regs))
            spill.append(f"{st}/{ld}")
            bad += bool(st or ld)
        print(f"{case.name:<62} {case.num_warps:>5} {row[0]:>10} {row[1]:>10}  {' '.join(spill)}", flush=True)
    print(f"{len(cases)} cases, {bad} failures or spills")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

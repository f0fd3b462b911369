"""Mamba-2's SSD triton backend: its interpreter cases (a fresh process with TRITON_INTERPRET=1, see
interpreter/triton_ssd_cases.py), its refusal to run on CPU tensors without the interpreter, and its offset
arithmetic: every pointer offset in every kernel, as compiled, is a 64-bit integer (mamba_ssm's int32 offsets give
wrong answers past about 61K tokens, its issue #1015)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqssm.kernels import KernelInputError, ssd_scan, ssd_state_update

HERE = Path(__file__).parent
triton = pytest.importorskip("triton")
NOT_INTERPRETED = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1",
                                     reason="the interpreter is on in this process")


def test_interpreter_cases_pass():
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(HERE / "interpreter"),
         str(HERE / "interpreter" / "triton_ssd_cases.py")],
        capture_output=True, text=True, env=env, timeout=1800,
    )
    tail = "\n".join(proc.stdout.strip().splitlines()[-25:])
    assert proc.returncode == 0, f"interpreter tests failed:\n{tail}\n{proc.stderr[-2000:]}"
    assert " passed" in tail and "failed" not in tail


@NOT_INTERPRETED
def test_cpu_tensors_without_interpreter_are_refused():
    x = torch.randn(1, 5, 2, 3)
    B = torch.randn(1, 5, 1, 4)
    with pytest.raises(KernelInputError, match="^backend: 'triton' cannot run here: tensors are on cpu"):
        ssd_scan(x, torch.rand(1, 5, 2), -torch.rand(2), B, B, backend="triton")
    with pytest.raises(KernelInputError, match="^backend: 'triton' cannot run here: tensors are on cpu"):
        ssd_state_update(torch.zeros(1, 2, 3, 4), x[:, 0], torch.rand(1, 2), -torch.rand(2), B[:, 0], B[:, 0],
                         backend="triton")


# ------------------------------------------------------------------------------------------ 64-bit offsets

def narrow_offsets(ttir: str) -> list[str]:
    """The tt.addptr ops of Triton IR whose offset operand is not 64-bit (an i32 or a tensor of i32)."""
    bad = []
    for line in ttir.splitlines():
        if "tt.addptr" not in line:
            continue
        offset_type = re.sub(r"\s+loc\(.*\)$", "", line.strip()).rsplit(",", 1)[-1].strip()
        if not (offset_type == "i64" or offset_type.endswith("xi64>")):
            bad.append(line.strip())
    return bad


def _ttir(case) -> str:
    """Triton IR of a case for sm_90, before any GPU lowering (the front end only: fast, no GPU needed)."""
    from triton._C.libtriton import ir
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.compiler.compiler import make_backend

    target = GPUTarget("cuda", 90, 32)
    backend = make_backend(target)
    src = ASTSource(case.kernel, case.signature, case.constexprs)
    options = backend.parse_options(dict(num_warps=case.num_warps, num_stages=case.num_stages))
    context = ir.context()
    ir.load_dialects(context)
    backend.load_dialects(context)
    module = src.make_ir(target, options, backend.get_codegen_implementation(options), backend.get_module_map(),
                         context)
    stages = {}
    backend.add_stages(stages, options, src.language)
    return str(stages["ttir"](module, {}))


@NOT_INTERPRETED
def test_offset_check_catches_int32_math():
    """The checker itself: a kernel whose index math stays in int32 is flagged, its int64 twin is not."""
    import triton.language as tl

    from seqssm.kernels._aot import AotCase

    @triton.jit
    def narrow(x_ptr, y_ptr, stride, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        offs = row * stride + tl.arange(0, BLOCK)
        tl.store(y_ptr + offs, tl.load(x_ptr + offs))

    @triton.jit
    def wide(x_ptr, y_ptr, stride, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        offs = row * stride + tl.arange(0, BLOCK)
        tl.store(y_ptr + offs, tl.load(x_ptr + offs))

    sig = {"x_ptr": "*fp32", "y_ptr": "*fp32", "stride": "i32", "BLOCK": "constexpr"}
    narrow_ir = _ttir(AotCase("narrow", narrow, sig, {"BLOCK": 16}))
    assert narrow_ir.count("tt.addptr") >= 2 and len(narrow_offsets(narrow_ir)) == narrow_ir.count("tt.addptr")
    wide_ir = _ttir(AotCase("wide", wide, sig, {"BLOCK": 16}))
    assert wide_ir.count("tt.addptr") >= 2 and not narrow_offsets(wide_ir)


def _i32_cases():
    from seqssm.kernels.ssd.triton_ssd import aot_cases

    return [c for c in aot_cases() if not c.name.endswith("-i64")]


@NOT_INTERPRETED
@pytest.mark.parametrize("case", _i32_cases(), ids=lambda c: c.name)
def test_every_offset_is_64_bit(case):
    """Every pointer offset of every launched specialization with 32-bit sizes and strides is a 64-bit integer:
    the index math is widened before any multiplication, not by the caller."""
    ttir = _ttir(case)
    bad = narrow_offsets(ttir)
    assert ttir.count("tt.addptr") > 0 and not bad, f"{len(bad)} pointer offsets are not 64-bit, e.g. {bad[:3]}"

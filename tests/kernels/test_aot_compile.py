"""Ahead-of-time compilation of every Triton kernel, in every specialization its launcher produces, for sm_80 and
sm_90, on this GPU-less machine (kernels/_aot.py): nothing fails to compile, nothing spills.

The interpreter tests cannot see these errors (an op or layout a GPU target does not support, int32/int64 mix-ups,
register pressure). `python -m seqssm.kernels._aot` prints the registers table of docs/gpu.md.
"""

from __future__ import annotations

import importlib
import os

import pytest

triton = pytest.importorskip("triton")
pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1",
                                reason="under the interpreter @triton.jit gives interpreted functions")

from seqssm.kernels import _aot  # noqa: E402


@pytest.fixture(scope="module")
def compiled():
    return _aot.compile_all()


def test_every_case_compiles_for_every_arch(compiled):
    results, failed = compiled
    assert not failed, "\n".join(failed)
    want = {(c.name, a) for c in _aot.collect_cases() for a in _aot.ARCHS}
    assert {(r.case, r.arch) for r in results} == want
    assert {80, 90} <= set(_aot.ARCHS)


def test_no_shipped_specialization_spills(compiled):
    results, _ = compiled
    spilled = [f"{r.case} sm_{r.arch}: {r.registers} registers, {r.spill_stores} B stores, {r.spill_loads} B loads"
               for r in results if r.spill_stores or r.spill_loads]
    assert not spilled, "\n".join(spilled)
    assert all(0 < r.registers <= 255 for r in results)


def test_every_launched_kernel_has_cases():
    """Every launcher module lists cases, and each @triton.jit *_kernel of the kernel files they use appears in some
    case: a new kernel cannot be added to those files without its ahead-of-time cases."""
    covered = {c.kernel.__name__ for c in _aot.collect_cases()}
    kernel_modules = set()
    for launcher in _aot.LAUNCHER_MODULES:
        cases = importlib.import_module(launcher).aot_cases()
        assert cases, launcher
        kernel_modules |= {getattr(c.kernel, "fn", c.kernel).__module__ for c in cases}
    assert {"seqssm.kernels.scan.triton_kernels", "seqssm.kernels.conv.triton_conv_kernels"} <= kernel_modules
    for name in kernel_modules:
        mod = importlib.import_module(name)
        kernels = {n for n, v in vars(mod).items() if n.endswith("_kernel") and isinstance(v, triton.JITFunction)}
        assert kernels and kernels <= covered, (name, sorted(kernels - covered))


def test_a_case_with_a_wrong_argument_name_is_refused():
    from seqssm.kernels.conv.triton_conv_kernels import conv_update_kernel

    with pytest.raises(ValueError, match=r"\['y_ptr'\] are not arguments of conv_update_kernel"):
        _aot.make_case("bad", conv_update_kernel, {"y_ptr": "*fp32"}, {})


def test_a_kernel_that_does_not_compile_is_reported():
    """The compile helper raises on an invalid program (here a block size that is not a power of two)."""
    from seqssm.kernels.conv.triton_conv_kernels import conv_update_kernel

    bad = _aot.make_case("conv_step-bad-block", conv_update_kernel,
                         {"x_ptr": "*fp32", "state_ptr": "*fp32", "w_ptr": "*fp32", "out_ptr": "*fp32"},
                         dict(K=4, HAS_BIAS=False, SILU=True, BLOCK_D=12))
    with pytest.raises(Exception, match="power of 2|power of two"):
        _aot.compile_case(bad, 90)

"""The parallel scan's ahead-of-time cases (no compile here: tests/kernels/test_aot_compile.py compiles them, and
`python -m seqssm.kernels._aot` prints their registers): complete signatures, each flag both ways, both directions."""

from __future__ import annotations

import pytest

pytest.importorskip("triton")

from seqssm.kernels.scan import triton_parallel  # noqa: E402

FLAGS = {"fwd": ("HAS_D", "HAS_Z", "HAS_BIAS", "SOFTPLUS", "HAS_H0", "HAS_SEQ", "B_TI", "C_TI"),
         "bwd": ("HAS_D", "HAS_Z", "HAS_BIAS", "SOFTPLUS", "HAS_DHLAST", "HAS_SEQ", "B_TI", "C_TI")}


@pytest.fixture(scope="module")
def cases():
    return triton_parallel.aot_cases()


def test_every_argument_has_a_type_and_every_constexpr_a_value(cases):
    for case in cases:
        assert list(case.signature) == list(case.kernel.arg_names), case.name
        constexpr = {k for k, v in case.signature.items() if v == "constexpr"}
        assert constexpr == set(case.constexprs), case.name
        assert set(case.aligned) <= set(case.signature) - constexpr, case.name


@pytest.mark.parametrize("direction", ["fwd", "bwd"])
def test_each_flag_is_compiled_on_and_off(cases, direction):
    mine = [c for c in cases if c.name.startswith(f"pscan_{direction}-")]
    for flag in FLAGS[direction]:
        assert {c.constexprs[flag] for c in mine} == {True, False}, flag
    assert {c.signature["u_ptr"] for c in mine} == {"*fp32", "*bf16", "*fp16"}
    assert any(v == "i64" for c in mine for v in c.signature.values()), "no case with 64-bit strides"
    assert len({c.name for c in mine}) == len(mine), "case names must be unique test ids"

"""Ahead-of-time compilation cases: each Triton launcher module lists the specializations it really launches.

A launcher module (e.g. kernels/scan/triton_scan.py) defines `aot_cases() -> list[AotCase]`: one case per flag
set, input dtype, block size and integer width its launch code can produce. The test suite compiles every case
for sm_80 and sm_90 on CPU (no GPU needed) and records registers and spills; see tests/kernels/test_aot_compile.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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

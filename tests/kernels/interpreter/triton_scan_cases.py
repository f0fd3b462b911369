"""The triton scan backend under the Triton interpreter, against the float64 reference.

Not collected by the main run (the file name does not start with test_): tests/kernels/test_triton_backend.py runs
it in a fresh process with TRITON_INTERPRET=1, which must be set before triton is first imported. The interpreter
runs one numpy step per time step and program, so lengths stay short; a checkpoint chunk of 16 steps (the
sequential design) and tiles of 16 steps (the parallel design) make those lengths cross several boundaries.
Both Triton designs run the same grid (parametrized by `design`).
"""

from __future__ import annotations

import os

import pytest
import torch

assert os.environ.get("TRITON_INTERPRET") == "1", "run through tests/kernels/test_triton_backend.py"

import seqssm.kernels.scan.triton_parallel as triton_parallel  # noqa: E402
import seqssm.kernels.scan.triton_scan as triton_scan  # noqa: E402
from kernel_testing import FLAGS, assert_close, make_inputs, rel_err, run  # noqa: E402
from seqssm.kernels import KernelInputError, selective_scan  # noqa: E402


@pytest.fixture(autouse=True)
def _small_chunks_and_poison(monkeypatch):
    monkeypatch.setattr(triton_scan, "CHUNK", 16)
    monkeypatch.setattr(triton_parallel, "MAX_BLOCK_L", 16)
    monkeypatch.setattr(triton_scan, "POISON_OUTPUTS", True)
    torch.manual_seed(0)


DESIGNS = ["sequential", "parallel"]
design = pytest.mark.parametrize("design", DESIGNS)

# name: (B/C layout, flags, L[, d, N, make_inputs options])
CASES = {
    "var-all-L1": ("var", FLAGS, 1),
    "var-all-L16": ("var", FLAGS, 16),
    "var-all-L37": ("var", FLAGS, 37),
    "var-all-L100": ("var", FLAGS, 100),
    "var-none-L37": ("var", (), 37),
    "grouped-all-L37": ("grouped", FLAGS, 37),
    "grouped-none-L37": ("grouped", (), 37),
    "ti-all-L37": ("ti", FLAGS, 37),
    "mixed-all-L37": ("mixed", FLAGS, 37),
    "var-softplus-only-L37": ("var", ("delta_softplus", "return_last_state"), 37),
    # channels and states that do not fill a block (d = 6, N = 5: masked lanes in both designs)
    "grouped-all-L37-d6-N5": ("grouped", FLAGS, 37, 6, 5),
    # decays that underflow to 0 within a step (Δ·|A| up to ~250): the scan's combine must stay finite and exact
    "var-all-L37-strong-decay": ("var", FLAGS, 37, 4, 8, dict(dt_scale=5.0, a_max=50.0)),
}


@design
@pytest.mark.parametrize("case", list(CASES))
def test_triton_matches_reference(case, design):
    layout, flags, l, d, n, opts = (CASES[case] + (4, 8, {})[len(CASES[case]) - 3:])
    inputs = make_inputs(2, d, l, n, layout, flags, **opts)
    want = run(inputs, flags, "reference", torch.float64)
    assert_close(run(inputs, flags, "triton", torch.float32, triton_design=design), want, 1e-5)


@design
def test_bf16_inputs_compute_in_float32(design):
    """bf16 in, bf16 out: one rounding of the output to bf16 (8 bits of mantissa), the state stays float32."""
    inputs = make_inputs(2, 4, 37, 8, "var", FLAGS)
    rounded = {k: v.detach().to(torch.bfloat16).double().requires_grad_(True) for k, v in inputs.items()}
    got, _ = run(rounded, FLAGS, "triton", torch.bfloat16, triton_design=design)
    want, _ = run(rounded, FLAGS, "reference", torch.float64)
    assert got[0].dtype == torch.bfloat16
    assert rel_err(got[0], want[0]) < 1e-2 and rel_err(got[1], want[1]) < 1e-5


@design
def test_two_segments_equal_one_pass(design):
    inputs = {k: v.detach().float() for k, v in make_inputs(1, 4, 40, 8, "var", FLAGS).items()}
    kw = dict(D=inputs["D"], delta_bias=inputs["delta_bias"], delta_softplus=True, return_last_state=True,
              backend="triton", triton_design=design)
    whole = selective_scan(inputs["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"], z=inputs["z"],
                           initial_state=inputs["initial_state"], **kw)
    s = 17
    part = lambda x, sl: x[..., sl]  # noqa: E731
    y1, h1 = selective_scan(*(part(inputs[k], slice(None, s)) for k in ("u", "delta")), inputs["A"],
                            part(inputs["B"], slice(None, s)), part(inputs["C"], slice(None, s)),
                            z=part(inputs["z"], slice(None, s)), initial_state=inputs["initial_state"], **kw)
    y2, h2 = selective_scan(*(part(inputs[k], slice(s, None)) for k in ("u", "delta")), inputs["A"],
                            part(inputs["B"], slice(s, None)), part(inputs["C"], slice(s, None)),
                            z=part(inputs["z"], slice(s, None)), initial_state=h1, **kw)
    assert rel_err(torch.cat([y1, y2], -1), whole[0]) < 1e-6 and rel_err(h2, whole[1]) < 1e-6


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x: {k: v.double() for k, v in x.items()}, "u: dtype float64 is not supported by the triton backend"),
        (lambda x: x | {"A": torch.rand(4, 300) * -1, "B": torch.randn(2, 300, 8), "C": torch.randn(2, 300, 8)},
         "A: state size N = 300 is too large for the triton backend"),
    ],
    ids=["float64", "N-too-large"],
)
@design
def test_unsupported_inputs_are_named(change, message, design):
    x = change({k: v.detach().float() for k, v in make_inputs(2, 4, 8, 8, "var", ()).items()})
    with pytest.raises(KernelInputError, match=message):
        selective_scan(**x, backend="triton", triton_design=design)


@pytest.mark.parametrize("groups", [0, 1, 2], ids=["BC-2d", "1-group", "2-groups"])
def test_triton_step_matches_reference(groups):
    from seqssm.kernels import selective_state_update

    b, d, n = 3, 20, 8
    g = torch.Generator().manual_seed(groups)
    bc = (b, n) if groups == 0 else (b, groups, n)
    args = dict(x=torch.randn(b, d, generator=g), dt=torch.randn(b, d, generator=g), A=-torch.rand(d, n, generator=g),
                B=torch.randn(*bc, generator=g), C=torch.randn(*bc, generator=g), D=torch.randn(d, generator=g),
                z=torch.randn(b, d, generator=g), dt_bias=torch.randn(d, generator=g), dt_softplus=True)
    s_ref, s_tri = torch.randn(b, d, n, generator=g), None
    s_tri = s_ref.clone()
    for _ in range(3):  # a few steps: the state is carried in place
        y_ref = selective_state_update(s_ref, **args, backend="reference")
        y_tri = selective_state_update(s_tri, **args, backend="triton")
        assert rel_err(y_tri, y_ref) < 1e-6 and rel_err(s_tri, s_ref) < 1e-6


@pytest.mark.parametrize("mode", ["chunk-parallel", "one-pass"])
@pytest.mark.parametrize("layout", ["var", "ti"])
def test_forward_modes_agree_with_reference(mode, layout, monkeypatch):
    """The sequential design's two forward schedules: one program walking all chunks, and the three-launch
    chunk-parallel forward."""
    monkeypatch.setattr(triton_scan, "PARALLEL_BELOW_PROGRAMS", 10**9 if mode == "chunk-parallel" else 0)
    inputs = make_inputs(2, 4, 53, 8, layout, FLAGS)
    want = run(inputs, FLAGS, "reference", torch.float64)
    assert_close(run(inputs, FLAGS, "triton", torch.float32, triton_design="sequential"), want, 1e-5)


@pytest.mark.parametrize("design, mode", [("sequential", "chunk-parallel"), ("sequential", "one-pass"),
                                          ("parallel", "one-pass")])
def test_packed_sequences_match_reference(design, mode, monkeypatch):
    monkeypatch.setattr(triton_scan, "PARALLEL_BELOW_PROGRAMS", 10**9 if mode == "chunk-parallel" else 0)
    l = 53
    inputs = make_inputs(2, 4, l, 8, "var", FLAGS)
    lens = torch.tensor([3, 13, 16, 1, 20])  # starts inside chunks/tiles and right on their boundaries (t = 16, 32)
    seq_idx = torch.stack([torch.repeat_interleave(torch.arange(5), lens), torch.arange(l) // 9])
    res = {}
    for backend, dtype in (("reference", torch.float64), ("triton", torch.float32)):
        x = {k: v.detach().to(dtype if k not in ("A", "initial_state") or dtype == torch.float64 else torch.float32)
             .requires_grad_(True) for k, v in inputs.items()}
        y, h = selective_scan(**x, delta_softplus=True, return_last_state=True, seq_idx=seq_idx, backend=backend,
                              triton_design=design if backend == "triton" else "auto")
        gen = torch.Generator().manual_seed(1)
        loss = (y.double() * torch.randn(y.shape, generator=gen, dtype=torch.float64)).sum() + h.double().sum()
        res[backend] = [y, h, *torch.autograd.grad(loss, list(x.values()))]
    for i, (got, want) in enumerate(zip(res["triton"], res["reference"])):
        assert rel_err(got, want) < 1e-5, i

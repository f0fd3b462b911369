"""Every selective-scan backend against the sequential reference: outputs, last state and every gradient.

Dimension names: b batch · d channels · l length · n state size · g groups of B/C.
The chunked backend runs in float32 and is compared with the reference in float64 on the same inputs; the bound
1e-5 is a relative error per tensor. "tiny-chunks" forces many chunks and segments, so every boundary is crossed.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import seqssm.kernels.scan.chunked as chunked
from seqssm.kernels import KernelInputError, selective_scan

from kernel_testing import FLAGS, assert_close, make_inputs, rel_err, run

@pytest.fixture(params=["default-chunks", "tiny-chunks"])
def geometry(request, monkeypatch):
    if request.param == "tiny-chunks":  # S = 4 steps a segment (at most), 2 segments a chunk
        monkeypatch.setattr(chunked, "_MAX_SEGMENT", 4)
        monkeypatch.setattr(chunked, "_TARGET_CHUNK_ELEMENTS", 1)
        monkeypatch.setattr(chunked, "_MAX_SEGMENTS", 2)
    return request.param


SEQLENS = [1, 2, 7, 64, 127, 256, 511, 1024, 2047, 4096]
FLAG_SETS = {"all-flags": FLAGS, "no-flags": ()}


@pytest.mark.parametrize("flagset", list(FLAG_SETS))
@pytest.mark.parametrize("layout", ["var", "grouped", "ti", "mixed"])
@pytest.mark.parametrize("n", [8, 16], ids=lambda n: f"N{n}")
@pytest.mark.parametrize("l", SEQLENS, ids=lambda l: f"L{l}")
def test_chunked_matches_reference_grid(l, n, layout, flagset, geometry):
    if geometry == "tiny-chunks" and l > 512:
        pytest.skip("tiny chunks at long lengths only repeat what shorter ones cover")
    flags = FLAG_SETS[flagset]
    inputs = make_inputs(2, 4, l, n, layout, flags)
    want = run(inputs, flags, "reference", torch.float64)
    assert_close(run(inputs, flags, "chunked", torch.float32), want, 1e-5)


@pytest.mark.parametrize("flag", FLAGS)
@pytest.mark.parametrize("on", [True, False], ids=["on", "off"])
def test_each_flag_alone_float64(flag, on, geometry):
    """Each option toggled alone (the others at their opposite), exact to float64 rounding."""
    flags = {flag} if on else set(FLAGS) - {flag}
    inputs = make_inputs(2, 4, 301, 8, "var", flags)
    assert_close(run(inputs, flags, "chunked", torch.float64), run(inputs, flags, "reference", torch.float64), 1e-12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_half_inputs_run_in_float32(dtype):
    """Half-precision inputs are upcast: the result equals the float32 scan of the same (rounded) inputs."""
    inputs = make_inputs(2, 4, 200, 8, "var", FLAGS)
    rounded = {k: v.detach().to(dtype).double().requires_grad_(True) for k, v in inputs.items()}
    got_out, _ = run(rounded, FLAGS, "chunked", dtype)
    want_out, _ = run(rounded, FLAGS, "reference", torch.float64)
    assert got_out[0].dtype == dtype
    assert rel_err(got_out[0], want_out[0]) < 1e-2  # one rounding to the half type, at the output
    assert rel_err(got_out[1], want_out[1]) < 1e-5  # the state stays float32


@pytest.mark.parametrize("split", [1, 100, 255, 256, 999])
@pytest.mark.parametrize("backend", ["chunked", "reference"])
def test_two_segments_equal_one_pass(split, backend, geometry):
    """Scanning x[:a] and then x[a:] from the last state equals one scan: values and every gradient."""
    l = 1000
    inputs = make_inputs(1, 4, l, 8, "var", FLAGS)

    def segmented(u, delta, A, B, C, D, z, delta_bias, initial_state):
        kw = dict(D=D, delta_bias=delta_bias, delta_softplus=True, return_last_state=True, backend=backend)
        y1, h1 = selective_scan(u[..., :split], delta[..., :split], A, B[..., :split], C[..., :split],
                                z=z[..., :split], initial_state=initial_state, **kw)
        y2, h2 = selective_scan(u[..., split:], delta[..., split:], A, B[..., split:], C[..., split:],
                                z=z[..., split:], initial_state=h1, **kw)
        return torch.cat([y1, y2], -1), h2

    whole = selective_scan(**inputs, delta_softplus=True, return_last_state=True, backend=backend)
    parts = segmented(**inputs)
    for got, want in zip(parts, whole):
        assert rel_err(got, want) < 1e-12
    keys = list(inputs)
    g_whole = torch.autograd.grad(whole[0].sum() + whole[1].sum(), [inputs[k] for k in keys])
    g_parts = torch.autograd.grad(parts[0].sum() + parts[1].sum(), [inputs[k] for k in keys])
    for k, a, b in zip(keys, g_parts, g_whole):
        assert rel_err(a, b) < 1e-12, k


@pytest.mark.parametrize("dt_max", [1.0, 10.0], ids=["dt1", "dt10"])
@pytest.mark.parametrize("a_max", [1.0, 60.0], ids=["A1", "A60"])
def test_strong_decays_stay_finite_and_exact(dt_max, a_max, geometry):
    """Large Δ·|A| (up to 600 a step) underflows decays to ~0: no overflow, NaN or drift from the reference."""
    flags = ("D", "z", "initial_state", "return_last_state")
    inputs = make_inputs(2, 4, 700, 16, "var", flags, dt_scale=dt_max, a_max=a_max)
    want = run(inputs, flags, "reference", torch.float64)
    assert_close(run(inputs, flags, "chunked", torch.float32), want, 1e-5)


def test_long_sequence_memory_is_chunked(monkeypatch):
    """The chunked forward never allocates a (b, d, l, n) tensor: its largest buffer is one chunk."""
    b, d, l, n = 1, 8, 1 << 15, 16
    seen = []
    real_empty = torch.empty

    def spy(*shape, **kw):
        t = real_empty(*shape, **kw)
        seen.append(t.numel())
        return t

    monkeypatch.setattr(chunked.torch, "empty", spy)
    monkeypatch.setattr(chunked, "_TARGET_CHUNK_ELEMENTS", 1 << 14)
    inputs = make_inputs(b, d, l, n, "var", ("delta_softplus",), dtype=torch.float32)
    with torch.no_grad():
        selective_scan(**{k: v.detach() for k, v in inputs.items()}, delta_softplus=True, backend="chunked")
    assert seen and max(seen) <= 2 * (1 << 14) and max(seen) * 64 < b * d * l * n


# --------------------------------------------------------------------------------------------- bad input
def good():
    return make_inputs(2, 4, 16, 8, "var", ("D", "z", "delta_bias", "initial_state"), dtype=torch.float32)


BAD = {
    "u-2d": (lambda x: x.update(u=x["u"][0]), "u: expected shape"),
    "delta-shape": (lambda x: x.update(delta=x["delta"][..., :5]), "delta: expected shape (2, 4, 16)"),
    "A-dtype": (lambda x: x.update(A=x["A"].half()), "A: dtype float16 is not supported"),
    "A-rows": (lambda x: x.update(A=x["A"][:3]), "A: expected shape (4, *)"),
    "B-5d": (lambda x: x.update(B=x["B"][None, None]), "B: expected shape (dim, N), (batch, N, L)"),
    "C-len": (lambda x: x.update(C=x["C"][..., :3]), "C: expected shape (2, 8, 16)"),
    "C-groups": (lambda x: x.update(C=torch.randn(2, 3, 8, 16)), "C: 3 groups do not divide dim 4"),
    "D-shape": (lambda x: x.update(D=torch.randn(5)), "D: expected shape (4,)"),
    "z-int": (lambda x: x.update(z=torch.ones(2, 4, 16, dtype=torch.long)), "z: dtype int64 is not supported"),
    "state-shape": (lambda x: x.update(initial_state=torch.zeros(2, 4, 9)), "initial_state: expected shape"),
    "B-device": (lambda x: x.update(B=x["B"].to("meta")), "B: on device meta, but u is on cpu"),
    "u-list": (lambda x: x.update(u=[1.0]), "u: expected shape (batch, dim, L)"),
}


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("backend", ["reference", "chunked"])
def test_bad_input_is_one_line_naming_the_argument(case, backend):
    mutate, message = BAD[case]
    x = {k: v.detach() for k, v in good().items()}
    mutate(x)
    with pytest.raises(KernelInputError) as e:
        selective_scan(**x, backend=backend)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unknown_backend_is_named():
    with pytest.raises(KernelInputError, match="backend: unknown name 'cuda'; choose one of auto, reference"):
        selective_scan(**{k: v.detach() for k, v in good().items()}, backend="cuda")


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(backend="triton", triton_design="fast"),
         "triton_design: unknown name 'fast'; choose one of auto, sequential, parallel"),
        (dict(backend="chunked", triton_design="parallel"),
         "triton_design: 'parallel' names a triton kernel, but backend is 'chunked'"),
        (dict(backend="reference", triton_design="sequential"),
         "triton_design: 'sequential' names a triton kernel, but backend is 'reference'"),
    ],
    ids=["unknown-design", "design-with-chunked", "design-with-reference"],
)
def test_triton_design_is_validated(kw, message):
    with pytest.raises(KernelInputError, match=message):
        selective_scan(**{k: v.detach() for k, v in good().items()}, **kw)


def test_million_step_scan_equals_the_reference_in_segments():
    """L = 2^20 in one chunked call equals the float64 reference run over 16 segments with the state carried:
    no drift, overflow or index trouble at a million steps."""
    b, d, l, n = 1, 2, 1 << 20, 4
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(b, d, l, generator=gen, dtype=torch.float64)
    delta = torch.rand(b, d, l, generator=gen, dtype=torch.float64)
    A = -torch.rand(d, n, generator=gen, dtype=torch.float64) * 0.05  # slow decays: memory reaches far back
    B = torch.randn(b, n, l, generator=gen, dtype=torch.float64)
    C = torch.randn(b, n, l, generator=gen, dtype=torch.float64)
    y, h = selective_scan(u.float(), delta.float(), A.float(), B.float(), C.float(), return_last_state=True,
                          backend="chunked")
    state, worst = None, 0.0
    seg = l // 16
    for s in range(0, l, seg):
        part = slice(s, s + seg)
        want, state = selective_scan(u[..., part], delta[..., part], A, B[..., part], C[..., part],
                                     initial_state=state, return_last_state=True, backend="reference")
        worst = max(worst, rel_err(y[..., part], want))
    assert worst < 1e-5
    assert rel_err(h, state) < 1e-5


def packed_seq_idx(b: int, l: int, seed: int) -> torch.Tensor:
    """(b, l) ids of packed sequences of random lengths 1..14 (different cuts in each row)."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(b):
        lens = torch.randint(1, 15, (l,), generator=gen)
        rows.append(torch.repeat_interleave(torch.arange(l), lens)[:l])
    return torch.stack(rows)


@pytest.mark.parametrize("l", [1, 37, 300], ids=lambda l: f"L{l}")
@pytest.mark.parametrize("layout", ["var", "grouped", "ti"])
def test_packed_sequences_chunked_matches_reference(l, layout, geometry):
    inputs = make_inputs(2, 4, l, 8, layout, FLAGS)
    seq_idx = packed_seq_idx(2, l, seed=l)
    results = {}
    for backend, dtype in (("reference", torch.float64), ("chunked", torch.float32)):
        x = {k: v.detach().to(torch.float32 if dtype == torch.float32 else torch.float64).requires_grad_(True)
             for k, v in inputs.items()}
        y, h = selective_scan(**x, delta_softplus=True, return_last_state=True, seq_idx=seq_idx, backend=backend)
        gen = torch.Generator().manual_seed(1)
        loss = (y.double() * torch.randn(y.shape, generator=gen, dtype=torch.float64)).sum() + h.double().sum()
        results[backend] = [y, h, *torch.autograd.grad(loss, list(x.values()))]
    for got, want in zip(results["chunked"], results["reference"]):
        assert rel_err(got, want) < 1e-5


@pytest.mark.parametrize("backend", ["reference", "chunked"])
def test_packed_sequences_equal_separate_scans(backend):
    """Nothing leaks between packed sequences: one packed call equals separate calls, values and gradients;
    initial_state seeds the first sequence only and the last state is the last sequence's."""
    lens = [7, 1, 30, 12]
    inputs = make_inputs(1, 4, sum(lens), 8, "var", FLAGS)
    seq_idx = torch.repeat_interleave(torch.arange(len(lens)), torch.tensor(lens))[None]
    kw = dict(delta_softplus=True, return_last_state=True, backend=backend)
    y, h = selective_scan(**inputs, seq_idx=seq_idx, **kw)
    ys, start = [], 0
    for i, n in enumerate(lens):
        sl = slice(start, start + n)
        yi, hi = selective_scan(inputs["u"][..., sl], inputs["delta"][..., sl], inputs["A"], inputs["B"][..., sl],
                                inputs["C"][..., sl], inputs["D"], inputs["z"][..., sl], inputs["delta_bias"],
                                initial_state=inputs["initial_state"] if i == 0 else None, **kw)
        ys.append(yi)
        start += n
    assert rel_err(y, torch.cat(ys, -1)) < 1e-12 and rel_err(h, hi) < 1e-12
    g_packed = torch.autograd.grad(y.sum() + h.sum(), list(inputs.values()))
    g_sep = torch.autograd.grad(torch.cat(ys, -1).sum() + hi.sum(), list(inputs.values()))
    for k, a, b in zip(inputs, g_packed, g_sep):
        assert rel_err(a, b) < 1e-12, k


def test_seq_idx_is_validated():
    x = {k: v.detach() for k, v in good().items()}
    with pytest.raises(KernelInputError, match=r"seq_idx: expected shape \(2, 16\)"):
        selective_scan(**x, seq_idx=torch.zeros(2, 15, dtype=torch.long))
    with pytest.raises(KernelInputError, match="seq_idx: dtype float32 is not supported"):
        selective_scan(**x, seq_idx=torch.zeros(2, 16))

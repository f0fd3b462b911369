"""Quantisers: exact inverse on ids, bounded reconstruction error, the zero level, and named conventions."""

from __future__ import annotations

import math

import pytest
import torch

from seqssm.domains.audio import LinearQuantizer, MuLawQuantizer, build_quantizer, minmax_scale

MULAW = [
    pytest.param(dict(bits=b, scaling=s, bins=k), id=f"mulaw{b}-{s}-{k}")
    for b in (8, 4, 16) for s in ("none", "minmax") for k in ("round", "sashimi")
]


@pytest.mark.parametrize("kw", MULAW)
def test_mulaw_encode_decode_ids_is_identity(kw):
    q = MuLawQuantizer(**kw)
    ids = torch.arange(q.vocab_size)
    assert torch.equal(q.encode(q.decode(ids), prescaled=True), ids)
    assert q.decode(ids).dtype == torch.float32 and torch.all(q.decode(ids).diff() > 0)  # monotone levels


@pytest.mark.parametrize("kw", MULAW)
def test_mulaw_reconstruction_error_is_bounded(kw):
    q = MuLawQuantizer(**kw)
    x = torch.cat([torch.rand(4000, dtype=torch.float64) * 2 - 1, torch.tensor([-1.0, 0.0, 1.0, 1e-9, -1e-9])])
    target = q.scale(x)
    # half a step h in the companded domain moves x by at most ((1+mu)^h - 1)(|x| + 2/mu) (expand's derivative)
    h = 1 / q.mu if q.bins == "round" else 1 / q.vocab_size
    bound = ((1 + q.mu) ** h - 1) * (target.abs() + 2 / q.mu)
    err = (q.decode(q.encode(x)).double() - target).abs()
    assert torch.all(err <= bound + 1e-6), float((err - bound).max())


@pytest.mark.parametrize("bits", [2, 8, 12], ids=lambda b: f"{b}bit")
def test_linear_inverse_and_bound(bits):
    q = LinearQuantizer(bits)
    ids = torch.arange(q.vocab_size)
    assert torch.equal(q.encode(q.decode(ids)), ids)
    x = torch.rand(3000, dtype=torch.float64) * 2 - 1
    assert float((q.decode(q.encode(x)).double() - x).abs().max()) <= 1 / (q.vocab_size - 1) + 1e-7


@pytest.mark.parametrize("q", [
    pytest.param(MuLawQuantizer(8, "none", "round"), id="mulaw-round"),
    pytest.param(MuLawQuantizer(8, "none", "sashimi"), id="mulaw-sashimi"),
    pytest.param(LinearQuantizer(8), id="linear"),
])
def test_zero_id_is_the_level_nearest_silence(q):
    assert q.zero_id == 128
    levels = q.decode(torch.arange(q.vocab_size)).abs()
    assert float(levels[q.zero_id]) == pytest.approx(float(levels.min()))


def test_torchaudio_mulaw_agrees_with_round_bins():
    import torchaudio.functional as AF

    q = MuLawQuantizer(8, "none", "round")
    x = torch.rand(2000, dtype=torch.float64) * 2 - 1
    ours = q.encode(x)
    theirs = AF.mu_law_encoding(x, 256)
    # torchaudio computes in the input dtype; ties at a bin edge may round apart, so allow a handful of ±1 ids
    assert int((ours - theirs).abs().max()) <= 1 and int((ours != theirs).sum()) <= 5


def test_minmax_scaling_fills_the_range_and_survives_constant_clips():
    x = torch.tensor([0.1, 0.3, 0.2])
    torch.testing.assert_close(minmax_scale(x), torch.tensor([-1.0, 1.0, 0.0], dtype=torch.float64))
    q = MuLawQuantizer(8, "minmax")
    for const in (0.0, 0.4):
        ids = q.encode(torch.full((50,), const))
        assert torch.all(ids == q.zero_id)  # a silent or constant clip is silence, not a division by zero
    ids = q.encode(torch.tensor([0.25, 0.75, 0.5]))  # exact binary fractions: the middle is exactly 0
    assert ids.tolist() == [0, 255, q.zero_id]


def test_minmax_makes_gain_irrelevant_but_none_does_not():
    x = torch.sin(torch.linspace(0, 20, 500))
    scaled, plain = MuLawQuantizer(8, "minmax"), MuLawQuantizer(8, "none")
    assert torch.equal(scaled.encode(x), scaled.encode(0.1 * x))
    assert not torch.equal(plain.encode(x), plain.encode(0.1 * x))


@pytest.mark.parametrize("q", [MuLawQuantizer(8, "minmax", "sashimi"), MuLawQuantizer(10, "none", "round"),
                               LinearQuantizer(6)], ids=lambda q: q.name)
def test_config_names_the_convention_and_rebuilds(q):
    cfg = q.config()
    assert cfg["name"] == q.name and cfg["vocab_size"] == q.vocab_size and cfg["zero_id"] == q.zero_id
    again = build_quantizer(cfg)
    assert again.name == q.name and torch.equal(again.decode(torch.arange(q.vocab_size)),
                                                q.decode(torch.arange(q.vocab_size)))


@pytest.mark.parametrize("bad,err", [
    pytest.param(lambda q: q.encode(torch.tensor([0.0, math.nan])), ValueError, id="nan-wave"),
    pytest.param(lambda q: q.encode(torch.tensor([1, 2])), TypeError, id="int-wave"),
    pytest.param(lambda q: q.decode(torch.tensor([256])), ValueError, id="id-too-large"),
    pytest.param(lambda q: q.decode(torch.tensor([-1])), ValueError, id="negative-id"),
    pytest.param(lambda q: q.decode(torch.tensor([0.5])), TypeError, id="float-ids"),
    pytest.param(lambda q: MuLawQuantizer(8, "peak"), ValueError, id="unknown-scaling"),
    pytest.param(lambda q: MuLawQuantizer(0), ValueError, id="zero-bits"),
])
def test_bad_inputs_are_refused(bad, err):
    with pytest.raises(err):
        bad(MuLawQuantizer(8))

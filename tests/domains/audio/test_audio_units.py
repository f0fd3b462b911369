"""Acoustic units (seqssm.domains.audio.units) and the unit vocoder (UnitConditionalLM): the coder finds the tones it
was fitted on, saves and loads exactly; the vocoder's steps equal its parallel pass, the units are causal, and a
zero unit table is the conditional model it was built on."""

from __future__ import annotations

import math

import pytest
import torch

from seqssm import ModelConfig, build_model
from seqssm.domains.audio.conditional import ConditionalSampleLM, GuidedUnitLM, UnitConditionalLM
from seqssm.domains.audio.units import UnitCoder, UnitSpec, kmeans_pp
from seqssm.pipelines.audio.infer import generate_ids, nll_sum

SPEC = UnitSpec(sample_rate=8000, hop=80, n_fft=256, n_mels=16)


def _tone(freq: float, n: int, amp: float = 0.5) -> torch.Tensor:
    return amp * torch.sin(2 * math.pi * freq * torch.arange(n) / 8000)


def test_coder_finds_the_tones_it_was_fitted_on():
    g = torch.Generator().manual_seed(0)
    waves = [_tone(f, 2000) + 0.01 * torch.randn(2000, generator=g) for f in (300.0, 1200.0, 2500.0) for _ in range(3)]
    coder = UnitCoder.fit(waves, k=4, spec=SPEC, iters=10, seed=0)  # three tones and the clips' first frames
    assert coder.k == 4 and coder.frames(2000) == 25 and coder.frames(2001) == 26
    units = [coder.encode(w) for w in waves]
    assert all(u.shape == (25,) for u in units)
    # the middle frames (away from the zero padding at the edges) of one tone share one unit, another tone's differ
    middle = [int(torch.mode(u[3:-3]).values) for u in units]
    assert all((u[3:-3] == m).all() for u, m in zip(units, middle))
    assert len({middle[0], middle[3], middle[6]}) == 3 and middle[0] == middle[1] == middle[2]


def test_track_spreads_each_unit_over_its_hop():
    coder = UnitCoder(SPEC, torch.zeros(4, 16), torch.zeros(16), torch.ones(16))
    units = torch.tensor([[2, 0, 3]])
    track = coder.track(units, 200)
    assert track.shape == (1, 200)
    assert (track[0, :80] == 2).all() and (track[0, 80:160] == 0).all() and (track[0, 160:] == 3).all()
    assert (coder.track(units, 300)[0, 240:] == 3).all()  # past the last frame: its unit goes on


def test_coder_saves_and_loads_exactly(tmp_path):
    g = torch.Generator().manual_seed(1)
    coder = UnitCoder(SPEC, torch.randn(5, 16, generator=g), torch.randn(16, generator=g), torch.rand(16) + 0.5)
    coder.save(tmp_path / "units.safetensors")
    back = UnitCoder.load(tmp_path / "units.safetensors")
    assert back.spec == SPEC and back.same_as(coder)
    wave = torch.randn(900, generator=g) * 0.3
    assert torch.equal(back.encode(wave), coder.encode(wave))
    other = UnitCoder(SPEC, coder.centroids + 1e-3, coder.mean, coder.std)
    assert not other.same_as(coder)


def test_kmeans_pp_seeds_distinct_points():
    x = torch.cat([torch.zeros(50, 2), torch.ones(50, 2) * 10, torch.tensor([[-10.0, 5.0]]).expand(50, 2)])
    centres = kmeans_pp(x, 3, torch.Generator().manual_seed(0))
    assert len({tuple(c.tolist()) for c in centres}) == 3  # far-apart clusters: one seed in each


def test_fit_refuses_more_units_than_frames():
    with pytest.raises(ValueError, match="more units than the 2 frames"):
        UnitCoder.fit([torch.zeros(100)], k=5, spec=SPEC)


def _vocoder(pools, n_units: int = 6) -> UnitConditionalLM:
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=16, n_layer=1, vocab_size=16, tie_embeddings=False)
    cfg.multiscale.pool_factors = pools
    cfg.ssm.d_state = 4
    model = UnitConditionalLM(build_model(cfg), 10, ["ann", "bob"], n_units).double().eval()
    with torch.no_grad():  # untrained tables are 0 or near it: make every condition visible
        for table in (model.digit_embed, model.speaker_embed, model.unit_embed):
            table.weight.normal_()
    return model


@pytest.mark.parametrize("pools", [[], [2, 2]], ids=["flat", "multiscale"])
def test_vocoder_recurrent_equals_parallel_past_the_track_end(pools):
    model = _vocoder(pools)
    prefix = torch.stack([model.prefix(3, "bob"), model.prefix(None, "ann")])
    track = torch.randint(0, 6, (2, 9), generator=torch.Generator().manual_seed(2))  # shorter than the 13 samples
    with model.following(track):
        ids, loglik, _ = generate_ids(model, 13, 2, None, 1.0, 1.0, 0, 0, progress=False, prefix=prefix)
    full = torch.cat([torch.zeros(2, 1, dtype=torch.long), ids], dim=1)
    padded = torch.cat([track, torch.full((2, 4), 6)], 1)  # past the end: the "no unit" row
    with torch.no_grad():
        nll, _ = nll_sum(model, full, torch.ones(full.shape), prefix, torch.cat([padded[:, :1], padded], 1))
    assert torch.allclose(-nll.double(), loglik, rtol=1e-9, atol=1e-9)
    assert model._offset is None and model._track is None  # cleared after every call


@pytest.mark.parametrize("pools", [[], [2, 2]], ids=["flat", "multiscale"])
def test_units_are_causal_and_matter(pools):
    model = _vocoder(pools)
    prefix = model.prefix(1, "ann")[None]
    ids = torch.cat([prefix, torch.randint(0, 16, (1, 12), generator=torch.Generator().manual_seed(3))], 1)
    track = torch.zeros(1, 12, dtype=torch.long)
    changed = track.clone()
    changed[0, 7] = 4
    with torch.no_grad(), model.following(track):
        a = model(ids)
    with torch.no_grad(), model.following(changed):
        b = model(ids)
    # position i predicts sample i given its unit: no earlier position sees it (the pooled stages are causal too)
    assert torch.equal(a[:, :7], b[:, :7])
    assert (a[:, 7] - b[:, 7]).abs().max() > 1e-6


def test_zero_unit_table_is_the_conditional_model():
    model = _vocoder([2, 2])
    with torch.no_grad():
        model.unit_embed.weight.zero_()
    plain = ConditionalSampleLM(model.lm, 10, ["ann", "bob"]).double()
    plain.load_condition_state_dict(model.condition_state_dict())
    ids = torch.cat([plain.prefix(5, "bob")[None], torch.randint(0, 16, (1, 10))], 1)
    with torch.no_grad(), model.following(torch.randint(0, 7, (1, 10))):
        got = model(ids)
    with torch.no_grad():
        assert torch.equal(got, plain(ids))


@pytest.mark.parametrize("track,needle", [
    (None, "needs its unit track"),
    (torch.full((1, 5), 7), "unit ids must be in 0-6"),
    (torch.zeros(5, dtype=torch.long), "expected (b, n) long unit ids"),
    (torch.zeros(2, 5, dtype=torch.long), "2 rows for 1 rows"),
], ids=["no-track", "unit-out-of-range", "one-dim", "rows-differ"])
def test_vocoder_bad_track(track, needle):
    model = _vocoder([])
    ids = torch.cat([model.prefix(1, None)[None], torch.zeros(1, 5, dtype=torch.long)], 1)
    with pytest.raises(ValueError) as err:
        if track is None:
            model(ids)
        else:
            with model.following(track):
                model(ids)
    assert needle in str(err.value)


@pytest.mark.parametrize("pools", [[], [2, 2]], ids=["flat", "multiscale"])
@pytest.mark.parametrize("weight", [0.0, 1.0, 3.0], ids=lambda w: f"w{w:g}")
def test_unit_guidance_is_the_formula_and_recurrent_equals_parallel(pools, weight):
    model = _vocoder(pools)
    guided = GuidedUnitLM(model, weight)
    prefix = torch.stack([model.prefix(2, "ann"), model.prefix(None, "bob")])
    track = torch.randint(0, 6, (2, 11), generator=torch.Generator().manual_seed(4))
    with guided.following(track):
        ids, loglik, _ = generate_ids(guided, 11, 2, None, 1.0, 1.0, 0, 0, progress=False, prefix=prefix)
    full = torch.cat([torch.zeros(2, 1, dtype=torch.long), ids], dim=1)
    inputs = torch.cat([prefix, full[:, :-1]], 1)
    with torch.no_grad():
        with model.following(track):
            units = model(inputs).double().log_softmax(-1)
        with model.following(torch.full_like(track, 6)):  # the same digit and speaker, no unit anywhere
            free = model(inputs).double().log_softmax(-1)
        want = (free + weight * (units - free)).log_softmax(-1)
        with guided.following(track):
            got = guided(inputs)
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-9)
        nll, _ = nll_sum(guided, full, torch.ones(full.shape), prefix, torch.cat([track[:, :1], track], 1))
    assert torch.allclose(-nll.double(), loglik, rtol=1e-9, atol=1e-9)
    assert model._track is None


def test_following_nests_and_restores():
    model = _vocoder([])
    a, b = torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.long)
    with model.following(a):
        with model.following(b):
            assert model._track is b
        assert model._track is a
    assert model._track is None

"""The digit classifier's input preparation and shapes, and the n-gram sampler (the metrics' floor) by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqssm.config import ConfigError
from seqssm.domains.audio.classifier import DigitClassifier, DigitClassifierConfig, prepare
from seqssm.domains.audio.ngram import NGramSampler


@pytest.mark.parametrize("length", [100, 1024, 3000], ids=["short-padded", "exact", "long-cut"])
def test_prepare_pads_or_cuts_after_the_mu_law_round_trip(length):
    wave = 0.3 * torch.sin(torch.arange(length, dtype=torch.float32) / 7)
    x = prepare(wave, 1024)
    assert x.shape == (1024,) and x.dtype == torch.float32
    n = min(length, 1024)
    assert float(x[:n].abs().max()) > 0.9  # min-max scaled to the full range
    assert torch.all(x[n:] == 0)
    assert torch.allclose(x[:n], prepare(wave, None)[:n])


def test_classifier_shapes_and_scale_invariance():
    torch.manual_seed(0)
    cfg = DigitClassifierConfig(clip_samples=800, n_fft=64, hop=32, n_mels=8, channels=[4, 4], features=6)
    model = DigitClassifier(cfg).eval()
    wave = torch.randn(3, 800)
    feats, probs = model.features_and_probs(wave)
    assert feats.shape == (3, 6) and probs.shape == (3, 10)
    # prepared clips are min-max scaled, and the log-mel is centred per clip: loudness does not matter
    a = torch.stack([prepare(w, 800) for w in wave])
    b = torch.stack([prepare(5 * w, 800) for w in wave])
    assert torch.allclose(model.features_and_probs(a)[1], model.features_and_probs(b)[1])


@pytest.mark.parametrize("bad", [{"n_mels": 1}, {"channels": []}, {"clip_samples": 10}], ids=["mels", "channels", "clip"])
def test_classifier_config_is_validated(bad):
    with pytest.raises(ConfigError):
        DigitClassifierConfig(**bad).validate()


def test_ngram_witten_bell_by_hand():
    # clip 1 2 1 2 1 2 after the start token 0: after 1 always 2 (c = 3, one type: lambda = 3/4); the add-one
    # unigram is [1, 4, 4, 1] / 10, so p(2 | 1) = 3/4 + 1/4 * 0.4 = 0.85
    m = NGramSampler([torch.tensor([1, 2, 1, 2, 1, 2])], vocab_size=4, order=2, start_id=0)
    p = m.probs(np.array([[1]]))[0]
    assert p[2] == pytest.approx(0.85) and p.sum() == pytest.approx(1.0)
    assert p[0] == pytest.approx(0.25 * 0.1)
    want = -np.mean(np.log2([m.probs(np.array([[h]]))[0][x] for h, x in [(0, 1), (1, 2), (2, 1), (1, 2)]]))
    assert m.bits(torch.tensor([1, 2, 1, 2])) == pytest.approx(want)


@pytest.mark.parametrize("order", [1, 2, 3], ids=["unigram", "bigram", "trigram"])
def test_ngram_samples_follow_the_training_statistics(order):
    rng = np.random.default_rng(0)
    clips = [torch.from_numpy(np.tile([1, 2, 3], 50)) for _ in range(4)]
    m = NGramSampler(clips, vocab_size=8, order=order, start_id=0)
    s = m.sample(20, 60, seed=1)
    assert s.shape == (20, 60) and s.min() >= 0 and s.max() < 8
    assert np.isin(s, [1, 2, 3]).mean() > 0.9  # ids never seen are rare (smoothing only)
    if order >= 2:  # the cycle 1 -> 2 -> 3 -> 1 is followed
        follow = {1: 2, 2: 3, 3: 1}
        pairs = [(a, b) for row in s for a, b in zip(row[:-1], row[1:]) if a in follow]
        assert np.mean([follow[a] == b for a, b in pairs]) > 0.9
    assert np.array_equal(m.sample(20, 60, seed=1), s)

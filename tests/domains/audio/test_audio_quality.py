"""The sample-quality metrics (seqssm.domains.audio.quality) on cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqssm.domains.audio.quality import (
    EPS, accuracy, am_score, bootstrap, fid, inception_score, kl, modified_inception_score,
)


def _one_hot(labels, k):
    return np.eye(k)[np.asarray(labels)]


@pytest.mark.parametrize("n,f", [(50, 3), (200, 8)], ids=["n50-f3", "n200-f8"])
def test_fid_of_identical_sets_is_zero(n, f):
    x = np.random.default_rng(0).standard_normal((n, f))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize("shift", [0.5, 3.0], ids=["shift0.5", "shift3"])
def test_fid_of_a_shifted_set_is_the_squared_shift(shift):
    x = np.random.default_rng(1).standard_normal((100, 4))
    c = shift * np.array([1.0, -2.0, 0.0, 0.5])
    assert fid(x, x + c) == pytest.approx(float(c @ c), rel=1e-9)


def test_fid_of_scaled_one_dimensional_sets_is_the_gaussian_formula():
    # 1-D: (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2; scaling by 3 and shifting by 2 from the same draws
    x = np.random.default_rng(2).standard_normal((400, 1))
    y = 3 * x + 2
    sa = np.std(x[:, 0], ddof=1)
    want = (np.mean(y) - np.mean(x)) ** 2 + (3 * sa - sa) ** 2
    assert fid(x, y) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("classes_used", [1, 4, 10], ids=["one-class", "four-classes", "ten-classes"])
def test_is_of_a_one_hot_classifier_is_the_number_of_classes_used(classes_used):
    probs = _one_hot(np.arange(200) % classes_used, 10)
    assert inception_score(probs) == pytest.approx(classes_used, rel=1e-9)


def test_is_of_an_undecided_classifier_is_one():
    assert inception_score(np.full((30, 10), 0.1)) == pytest.approx(1.0)


def test_mis_by_hand_on_two_clips():
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    kl_pq = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    kl_qp = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    # four ordered pairs, two of them (i = j) contribute 0
    assert modified_inception_score(np.stack([p, q])) == pytest.approx(math.exp((kl_pq + kl_qp) / 4), rel=1e-12)


def test_mis_of_identical_clips_is_one_and_of_one_hot_pairs_uses_the_floor():
    assert modified_inception_score(np.tile([0.2, 0.3, 0.5], (7, 1))) == pytest.approx(1.0)
    # two one-hot clips of different classes: the two cross pairs each give -log EPS
    assert modified_inception_score(_one_hot([0, 1], 2)) == pytest.approx(math.exp(-2 * math.log(EPS) / 4), rel=1e-9)


@pytest.mark.parametrize("k", [2, 10], ids=["k2", "k10"])
def test_am_score_is_zero_for_confident_clips_in_the_reference_proportions(k):
    ref = _one_hot(np.arange(10 * k) % k, k)
    gen = _one_hot(np.arange(5 * k) % k, k)
    assert am_score(gen, ref) == pytest.approx(0.0, abs=1e-12)


def test_am_score_by_hand():
    ref = _one_hot([0, 1, 1, 1], 2)  # reference marginal [0.25, 0.75]
    gen = np.array([[0.5, 0.5], [0.5, 0.5]])  # marginal [0.5, 0.5], entropy log 2 each
    want = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5) + math.log(2)
    assert am_score(gen, ref) == pytest.approx(want, rel=1e-12)


def test_kl_and_accuracy():
    assert kl([1.0, 0.0], [0.5, 0.5]) == pytest.approx(math.log(2))
    assert accuracy(_one_hot([0, 1, 2, 2], 3), [0, 1, 2, 0]) == 0.75


@pytest.mark.parametrize("bad", [np.ones((3, 2)), -np.eye(2), np.ones(4) / 4], ids=["rows-sum-2", "negative", "1-d"])
def test_bad_probabilities_are_refused(bad):
    with pytest.raises(ValueError, match="probs"):
        inception_score(bad)


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_clips():
    rng = np.random.default_rng(3)
    widths = []
    for n in (40, 640):
        probs = rng.dirichlet(np.full(10, 0.3), size=n)
        iv = bootstrap(lambda idx: {"is": inception_score(probs[idx])}, n, rounds=100)["is"]
        assert iv[0] < inception_score(probs) < iv[1] + 0.5  # the plug-in IS is biased; the interval sits near it
        widths.append(iv[1] - iv[0])
    assert widths[1] < widths[0]

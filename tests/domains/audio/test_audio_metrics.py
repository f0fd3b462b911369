"""bits_per_sample and the unigram baseline, including the README's FSDD figure that pins the mu-law convention."""

from __future__ import annotations

import math

import pytest
import torch

from seqssm.domains.audio import AudioFolder, MuLawQuantizer, bits_per_sample, fsdd_split, unigram_bits


def test_uniform_logits_give_log2_v_bits():
    b, l, v = 2, 5, 256
    targets = torch.randint(v, (b, l))
    assert bits_per_sample(torch.zeros(b, l, v), targets, torch.ones(b, l)) == pytest.approx(8.0, abs=1e-6)


def test_mask_excludes_padding():
    v = 4
    logits = torch.full((1, 3, v), -30.0)
    targets = torch.tensor([[0, 1, 2]])
    logits[0, 0, 0] = logits[0, 1, 1] = 30.0  # first two positions are certain and right
    logits[0, 2, 3] = 30.0  # the third is certain and wrong
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # third position is padding: its wrong prediction must not count
    assert bits_per_sample(logits, targets, mask) == pytest.approx(0.0, abs=1e-6)
    assert bits_per_sample(logits, targets, torch.ones(1, 3)) > 20


def test_bits_per_sample_matches_direct_sum():
    logits, targets = torch.randn(3, 7, 10), torch.randint(10, (3, 7))
    mask = (torch.rand(3, 7) > 0.3).float()
    mask[0, 0] = 1
    logp = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
    expected = float(-(logp * mask).sum() / mask.sum() / math.log(2))
    assert bits_per_sample(logits, targets, mask) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("mask", [torch.zeros(1, 2), torch.ones(2, 2)], ids=["all-padding", "wrong-shape"])
def test_bits_per_sample_refuses(mask):
    with pytest.raises(ValueError):
        bits_per_sample(torch.zeros(1, 2, 4), torch.zeros(1, 2, dtype=torch.long), mask)


def test_unigram_bits_known_values():
    train = torch.tensor([0, 0, 0, 1])
    assert unigram_bits(train, torch.tensor([0, 1]), alpha=0) == pytest.approx((math.log2(4 / 3) + 2) / 2)
    assert unigram_bits([torch.arange(8)], [torch.arange(8)], alpha=0) == pytest.approx(3.0)
    # unseen symbols get add-alpha mass instead of infinite cost
    assert math.isfinite(unigram_bits(train, torch.tensor([3]), vocab_size=4))


@pytest.mark.slow
def test_fsdd_unigram_matches_readme_baseline(fsdd):
    """README: SaShiMi convention (per-clip min-max, 8-bit mu-law) on FSDD takes 0-4 as test -> unigram 7.375."""
    q = MuLawQuantizer(8, "minmax", "sashimi")
    train, test = fsdd_split(fsdd)
    tr, te = AudioFolder(train, 8000, q), AudioFolder(test, 8000, q)
    test_ids = [te[i] for i in range(len(te))]
    assert sum(len(t) for t in test_ids) == 897_663  # the README's test sample count
    bits = unigram_bits([tr[i] for i in range(len(tr))], test_ids, vocab_size=q.vocab_size)
    assert bits == pytest.approx(7.375, abs=0.01)

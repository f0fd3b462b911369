"""Bits per sample: the audio models' score (mean negative log2-likelihood of the next quantised sample).

Dimension names: b batch · l samples · v vocabulary (2^bits quantisation levels).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F


def bits_per_sample(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean NLL in bits over real samples: logits (b, l, v), targets (b, l) long, mask (b, l) (1 real, 0 padding).

    Logits wider than the quantiser's vocabulary (a padded model vocabulary) are fine: the extra entries just take
    probability mass, as they do in training.
    """
    if logits.dim() != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(f"logits (b, l, v) and targets (b, l) disagree: {tuple(logits.shape)}, {tuple(targets.shape)}")
    if mask is None:
        mask = torch.ones(targets.shape, dtype=torch.float64, device=targets.device)
    if mask.shape != targets.shape:
        raise ValueError(f"mask: expected shape {tuple(targets.shape)}, got {tuple(mask.shape)}")
    nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")  # nats, (b·l,)
    m = mask.flatten().to(torch.float64)
    total = m.sum()
    if total <= 0:
        raise ValueError("mask: no real samples to score")
    return float((nll.to(torch.float64) * m).sum() / total / math.log(2))


def _flat(ids) -> torch.Tensor:
    if isinstance(ids, torch.Tensor):
        return ids.flatten().long()
    return torch.cat([torch.as_tensor(t).flatten().long() for t in ids])


def unigram_bits(
    train_ids: torch.Tensor | Sequence[torch.Tensor], test_ids: torch.Tensor | Sequence[torch.Tensor],
    vocab_size: int | None = None, alpha: float = 1.0,
) -> float:
    """Bits per test sample under the train set's symbol frequencies (add-alpha smoothed): the floor any model
    of the quantised audio must beat. Clips may be passed as a list of id tensors."""
    train, test = _flat(train_ids), _flat(test_ids)
    if train.numel() == 0 or test.numel() == 0:
        raise ValueError("unigram_bits: train and test must both hold samples")
    v = vocab_size or int(max(train.max(), test.max())) + 1
    counts = torch.bincount(train, minlength=v).to(torch.float64) + alpha
    logp = torch.log2(counts / counts.sum())
    return float(-logp[test].mean())


__all__ = ["bits_per_sample", "unigram_bits"]

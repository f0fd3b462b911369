"""An interpolated n-gram model of quantised audio that can sample: the floor of the sample-quality metrics (the
README of ../shared/data lists its trigram at 4.981 bits per sample on FSDD's test takes).

Dimension names: v vocabulary (2^bits ids) · b clips sampled together · l samples.

Witten-Bell interpolation (Witten & Bell 1991; Chen & Goodman 1998, section 2.5), order 1 (unigram) to N:
    p_N(x | h) = λ(h) · c(h, x) / c(h) + (1 − λ(h)) · p_{N−1}(x | h'),   λ(h) = c(h) / (c(h) + t(h)),
h the last N − 1 ids, h' its last N − 2, c counts, t(h) the number of distinct ids seen after h; the unigram is
add-one smoothed. Every clip starts from the start token (the quantiser's zero level) repeated N − 1 times, as the
neural models start from one.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


class NGramSampler:
    """Counts of orders 1 … N (dense arrays; N <= 3 at 8 bits is 16.8M counts) and batched sampling."""

    def __init__(self, clips: Sequence[torch.Tensor], vocab_size: int, order: int, start_id: int):
        if not 1 <= order <= 3:
            raise ValueError(f"order: must be 1, 2 or 3, got {order}")
        self.v, self.order, self.start_id = vocab_size, order, start_id
        self.counts = [np.zeros((vocab_size,) * k, dtype=np.int64) for k in range(1, order + 1)]
        for ids in clips:
            x = np.concatenate([np.full(order - 1, start_id), np.asarray(ids, dtype=np.int64)])
            for k in range(1, order + 1):
                grams = np.stack([x[order - k + j: len(x) - k + 1 + j] for j in range(k)], axis=1)  # (n, k)
                np.add.at(self.counts[k - 1], tuple(grams.T), 1)

    def probs(self, history: np.ndarray) -> np.ndarray:
        """history (b, N − 1) ids -> p(x | history) (b, v)."""
        uni = self.counts[0] + 1.0
        p = np.broadcast_to(uni / uni.sum(), (len(history), self.v))
        for k in range(2, self.order + 1):
            c = self.counts[k - 1][tuple(history[:, -(k - 1):].T)].astype(np.float64)  # (b, v)
            total, types = c.sum(1, keepdims=True), (c > 0).sum(1, keepdims=True)
            lam = np.where(total > 0, total / np.maximum(total + types, 1), 0.0)
            p = lam * c / np.maximum(total, 1) + (1 - lam) * p
        return p

    def bits(self, ids: torch.Tensor) -> float:
        """Bits per sample of one clip (l,) under the model (the first sample predicted from the start tokens)."""
        x = np.concatenate([np.full(self.order - 1, self.start_id), np.asarray(ids, dtype=np.int64)])
        hist = np.stack([x[j: j + len(ids)] for j in range(self.order - 1)], axis=1) if self.order > 1 else \
            np.zeros((len(ids), 0), dtype=np.int64)
        p = self.probs(hist)[np.arange(len(ids)), x[self.order - 1:]]
        return float(-np.log2(p).mean())

    def sample(self, n_clips: int, n_samples: int, seed: int = 0) -> np.ndarray:
        """(n_clips, n_samples) ids, each clip from the start tokens, all clips stepped together."""
        rng = np.random.default_rng(seed)
        out = np.zeros((n_clips, n_samples), dtype=np.int64)
        hist = np.full((n_clips, max(0, self.order - 1)), self.start_id, dtype=np.int64)
        for t in range(n_samples):
            p = self.probs(hist)
            u = rng.random((n_clips, 1))
            x = np.minimum((p.cumsum(1) < u * p.sum(1, keepdims=True)).sum(1), self.v - 1)  # inverse-CDF draw
            out[:, t] = x
            if self.order > 1:
                hist = np.concatenate([hist[:, 1:], x[:, None]], axis=1)
        return out


__all__ = ["NGramSampler"]

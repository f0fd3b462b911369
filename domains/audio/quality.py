"""Sample-quality metrics from a classifier's outputs, as SaShiMi (Goel et al. 2022, section 5.2) and the Mamba paper
(section 4.4, Table 4) report them for SC09 digits. Readable reference implementations in float64 numpy.

Dimension names: n clips · f feature width · k classes. `probs` (n, k) are class probabilities (rows sum to 1),
`feats` (n, f) the classifier's penultimate features. KL(p || q) = Σ_k p_k (log p_k − log q_k) with 0 log 0 = 0;
probabilities are floored at EPS inside the logarithms so that a confident classifier gives large, finite values.

FID  (Heusel et al. 2017, eq. 6):   ‖μ_a − μ_b‖² + tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^{1/2}), Gaussians fitted to the
                                    features of the two sets (covariance with n − 1). Lower is better; 0 for equal sets.
IS   (Salimans et al. 2016, s. 4):  exp( E_x KL(p(y|x) ‖ p(y)) ), p(y) = E_x p(y|x) over the scored clips.
                                    Between 1 and the number of classes; high when each clip is confidently one class
                                    and all classes are used.
mIS  (Gurumurthy et al. 2017,       exp( E_{x_i} E_{x_j} KL(p(y|x_i) ‖ p(y|x_j)) ) over all ordered pairs of scored
      DeLiGAN, section 5.3):        clips (i = j included, where it is 0): also rewards variety within a class.
AM   (Zhou et al. 2018, eq. 9):     KL(p_ref(y) ‖ p(y)) + E_x H(p(y|x)), p_ref(y) the mean class distribution of the
                                    reference (real) clips: low when clips are confident and the classes come in the
                                    reference's proportions.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

EPS = 1e-12


def _probs(p) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1:
        raise ValueError(f"probs: expected shape (n, k) with n >= 1, got {p.shape}")
    if (p < 0).any() or not np.allclose(p.sum(1), 1.0, atol=1e-6):
        raise ValueError("probs: rows must be probability distributions (non-negative, summing to 1)")
    return p


def kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p ‖ q) along the last axis (broadcasting), in nats."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    return np.sum(np.where(p > 0, p * (np.log(np.maximum(p, EPS)) - np.log(np.maximum(q, EPS))), 0.0), axis=-1)


def entropy(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, np.float64)
    return -np.sum(np.where(p > 0, p * np.log(np.maximum(p, EPS)), 0.0), axis=-1)


def _sqrtm_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def fid(feats_a, feats_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (n_a, f) and (n_b, f), n >= 2 each.

    tr((Σ_a Σ_b)^{1/2}) = tr((Σ_a^{1/2} Σ_b Σ_a^{1/2})^{1/2}): the symmetric form, whose eigenvalues are real and
    non-negative, so no complex square root is needed."""
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"fid: expected (n_a, f) and (n_b, f) with n >= 2, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = _sqrtm_psd(s_a)
    cross = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(root @ s_b @ root), 0, None)))
    return float(max(0.0, np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * cross))


def inception_score(probs) -> float:
    p = _probs(probs)
    return float(np.exp(np.mean(kl(p, p.mean(0)))))


def modified_inception_score(probs) -> float:
    p = _probs(probs)
    pairwise = kl(p[:, None, :], p[None, :, :])  # (n, n): KL(p_i ‖ p_j)
    return float(np.exp(pairwise.mean()))


def am_score(probs, ref_probs) -> float:
    p, r = _probs(probs), _probs(ref_probs)
    if p.shape[1] != r.shape[1]:
        raise ValueError(f"am_score: {p.shape[1]} classes against {r.shape[1]} in the reference")
    return float(kl(r.mean(0), p.mean(0)) + np.mean(entropy(p)))


def accuracy(probs, labels) -> float:
    """Share of clips whose most likely class is the label (n,)."""
    p = _probs(probs)
    labels = np.asarray(labels)
    if labels.shape != (len(p),):
        raise ValueError(f"labels: expected shape ({len(p)},), got {labels.shape}")
    return float(np.mean(p.argmax(1) == labels))


def all_metrics(feats, probs, ref_feats, ref_probs) -> dict:
    """FID against the reference, IS, mIS and AM (against the reference's class marginal) of one set of clips."""
    return {"fid": fid(feats, ref_feats), "is": inception_score(probs), "mis": modified_inception_score(probs),
            "am": am_score(probs, ref_probs)}


def bootstrap(metric: Callable[[np.ndarray], dict], n: int, rounds: int = 200, seed: int = 0,
              level: float = 0.95) -> dict:
    """Percentile bootstrap over the scored clips: metric(idx) with idx (n,) drawn with replacement, `rounds` times.
    Returns {name: [low, high]} at the given level (the reference set is held fixed)."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list] = {}
    for _ in range(rounds):
        for key, value in metric(rng.integers(0, n, n)).items():
            draws.setdefault(key, []).append(value)
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    return {k: [float(np.percentile(v, lo)), float(np.percentile(v, hi))] for k, v in draws.items()}


__all__ = ["EPS", "accuracy", "all_metrics", "am_score", "bootstrap", "entropy", "fid", "inception_score", "kl",
           "modified_inception_score"]

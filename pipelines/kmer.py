"""`seqssm baseline kmer`: the k-mer + logistic-regression baseline of a labelled DNA task (train / dev / test),
the simple model a sequence classifier has to beat.

Dimension names used in this file:
    n sequences · f features (4^k k-mer counts) · c classes

Features: the k-mer counts of each sequence, reverse complement included (a k-mer and its reverse complement
are counted together, so the model is strand-symmetric like the label), scaled to frequencies and then
log(1 + 1000 x) so that a few motif hits weigh as much as many background k-mers. Windows holding a base other
than A/C/G/T are skipped. The classifier is multinomial logistic regression with an L2 penalty 1 / (2 C n)
per the scikit-learn convention (sum of losses + ||w||^2 / (2C)), fitted full-batch with L-BFGS (at most 100
iterations, float32) on standardised features. k and C are chosen on dev MCC; test is scored once with the chosen pair.
No scikit-learn needed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from seqssm.pipelines.jobconfig import UsageError
from seqssm.pipelines.rundir import atomic_write_json

KS = (3, 4, 5, 6)
CS = (0.01, 0.1, 1.0, 10.0)
_CODE = np.full(256, 4, dtype=np.int64)
for _i, _b in enumerate(b"ACGT"):
    _CODE[_b] = _i
    _CODE[ord(chr(_b).lower())] = _i


def kmer_features(seqs: list[str], k: int) -> np.ndarray:
    """(n, 4^k) float32: log1p(1000 * frequency) of each k-mer, a k-mer and its reverse complement pooled."""
    n_feat = 4 ** k
    out = np.zeros((len(seqs), n_feat), dtype=np.float32)
    weights = 4 ** np.arange(k - 1, -1, -1)
    for i, s in enumerate(seqs):
        codes = _CODE[np.frombuffer(s.encode("ascii"), dtype=np.uint8)]
        if len(codes) < k:
            continue
        win = np.lib.stride_tricks.sliding_window_view(codes, k)  # (windows, k)
        win = win[(win < 4).all(1)]
        if not len(win):
            continue
        fwd = win @ weights
        rev = (3 - win[:, ::-1]) @ weights  # the reverse complement's k-mer on the other strand
        out[i] = np.bincount(np.concatenate([fwd, rev]), minlength=n_feat)
    tot = out.sum(1, keepdims=True)
    np.divide(out, np.maximum(tot, 1), out=out)
    return np.log1p(1000.0 * out)


def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, c: float, max_iter: int = 100):
    """Multinomial logistic regression, loss sum + ||W||^2 / (2C) (bias unpenalised). Returns a predict function
    (n, f) -> logits (n, c)."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mu) / sd).float()
    yt = torch.from_numpy(y).long()
    w = torch.zeros(x.shape[1], n_classes, dtype=torch.float32, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float32, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20, tolerance_grad=1e-5,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (torch.nn.functional.cross_entropy(xt @ w + b, yt, reduction="sum") + (w * w).sum() / (2 * c)) / len(y)
        loss.backward()
        return loss

    opt.step(closure)
    wd, bd = w.detach(), b.detach()

    def predict(z: np.ndarray) -> np.ndarray:
        return (torch.from_numpy((z - mu) / sd).float() @ wd + bd).numpy()

    return predict


def mcc(pred: np.ndarray, y: np.ndarray, n_classes: int) -> float:
    """Matthews correlation (Gorodkin's multiclass form); 0 when either side is constant."""
    cm = np.zeros((n_classes, n_classes), dtype=np.float64)
    np.add.at(cm, (y, pred), 1)
    t, p, s = cm.sum(1), cm.sum(0), cm.sum()
    num = np.trace(cm) * s - t @ p
    den = np.sqrt((s * s - p @ p) * (s * s - t @ t))
    return float(num / den) if den > 0 else 0.0


def kmer_baseline(train, dev, test=None, ks=KS, cs=CS, log=None) -> dict:
    """train/dev/test: LabelledSequences (test optional, same classes). Grid over k and C on dev MCC."""
    t0 = time.perf_counter()
    c = train.num_classes
    ytr, ydv = np.asarray(train.labels), np.asarray(dev.labels)
    grid, best = [], None
    for k in ks:
        xtr, xdv = kmer_features(train.sequences, k), kmer_features(dev.sequences, k)
        for reg in cs:
            pred = fit_logistic(xtr, ytr, c, reg)
            m = mcc(pred(xdv).argmax(1), ydv, c)
            grid.append({"k": k, "C": reg, "dev_mcc": round(m, 4)})
            if log:
                log(f"  k-mer baseline: k {k} C {reg:g} dev MCC {m:.4f}")
            if best is None or m > best[0]:
                best = (m, k, reg, pred)
    dev_mcc, k, reg, pred = best
    res = {"k": k, "C": reg, "dev_mcc": dev_mcc, "test_mcc": None, "grid": grid,
           "features": "log1p(1000 * k-mer frequency), both strands pooled", "n_train": len(train)}
    if test is not None:
        res["test_mcc"] = mcc(pred(kmer_features(test.sequences, k)).argmax(1), np.asarray(test.labels), c)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def _cmd_kmer(args: argparse.Namespace) -> int:
    from seqssm.domains.dna import read_labelled

    def read(path, opt, classes=None):
        return read_labelled(path, opt, 10 ** 9, "error", classes, args.sequence_column, args.label_column)

    train = read(args.train, "--train")
    dev = read(args.val, "--val", train.classes)
    test = read(args.test, "--test", train.classes) if args.test else None
    ks = tuple(int(k) for k in args.k.split(","))
    if any(not 1 <= k <= 8 for k in ks):
        raise UsageError(f"--k {args.k}: each k must be in 1..8")
    res = kmer_baseline(train, dev, test, ks=ks, log=print)
    test_txt = f", test MCC {res['test_mcc']:.4f}" if test is not None else ""
    print(f"seqssm baseline kmer: best k {res['k']} C {res['C']:g}: dev MCC {res['dev_mcc']:.4f}{test_txt} "
          f"({res['seconds']} s)")
    if args.out:
        atomic_write_json(Path(args.out), res)
    return 0


def register(sub) -> None:
    km = sub.add_parser("kmer", help="k-mer counts + logistic regression on a labelled task (k and C chosen on dev)")
    km.add_argument("--train", required=True, help="training CSV/TSV (sequence,label) or labelled FASTA")
    km.add_argument("--val", required=True, help="dev split: chooses k and C")
    km.add_argument("--test", help="test split: scored once with the chosen k and C")
    km.add_argument("--k", default=",".join(map(str, KS)), help="k values to try, comma-separated (default 3,4,5,6)")
    km.add_argument("--sequence-column", default="sequence")
    km.add_argument("--label-column", default="label")
    km.add_argument("--out", help="also write the result as JSON")
    km.set_defaults(func=_cmd_kmer)


__all__ = ["kmer_baseline", "kmer_features", "fit_logistic", "mcc"]

"""Helpers of the classify tests: tiny labelled data and a tiny job (a few seconds on one CPU thread)."""

from __future__ import annotations

import numpy as np

TINY_CLS = [
    "model.d_model=16",
    "model.n_layer=2",
    "model.ssm.d_state=4",
    "model.scan_backend=reference",
    "data.batch_size=8",
    "data.eval_batch_size=16",
    "train.max_steps=12",
    "train.warmup_steps=2",
    "train.val_every=6",
    "train.log_every=2",
    "train.progress_bar=false",
    "train.threads=1",
]


def make_rows(n: int, seed: int = 0, length=(20, 40)) -> list[tuple[str, str]]:
    """(sequence, label) pairs; label 1 rows carry a GC-rich motif so the classes differ in content."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k = int(rng.integers(*length))
        seq = "".join(rng.choice(list("ACGT"), size=k))
        label = i % 2
        if label:
            j = int(rng.integers(0, k - 6))
            seq = seq[:j] + "GCGCGC" + seq[j + 6 :]
        rows.append((seq, str(label)))
    return rows


def make_oriented_rows(n: int, seed: int = 0, length=(30, 50)) -> list[tuple[str, str]]:
    """An oriented task (like a promoter's TATA box): label 1 rows carry TATAAA on the given strand, label 0 rows
    its reverse complement TTTATA, so only a model that tells the strands apart can separate them."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k = int(rng.integers(*length))
        seq = "".join(rng.choice(list("ACGT"), size=k))
        j = int(rng.integers(0, k - 6))
        seq = seq[:j] + ("TATAAA" if i % 2 else "TTTATA") + seq[j + 6:]
        rows.append((seq, str(i % 2)))
    return rows


def write_csv(path, rows) -> str:
    path.write_text("sequence,label\n" + "".join(f"{s},{y}\n" for s, y in rows))
    return str(path)


def write_fasta(path, rows, labels: bool = True) -> str:
    path.write_text("".join(f">s{i}{f' label={y}' if labels else ''}\n{s}\n" for i, (s, y) in enumerate(rows)))
    return str(path)

"""Token access to long records for pretraining, shared by every domain: a genome's records (dna), the files of an
audio folder (audio), one file of bytes (bytes), or a third-party domain's records.

Dimension names: b batch · l window length.

A domain's corpus says what its records are (`records`: (name, length, cut), the held-out tail after `cut`) and
how to read tokens of one (`tokens`); the window drawing and the held-out iteration are the same for all of them.
The windows of optimizer step t are drawn from a generator seeded by (seed, t, rank), so the data position of a
run is its step count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from seqssm.domains import DomainInputError


class Corpus:
    """Base of the pretraining corpora. A subclass sets `path`, `records` [(name, n, cut)] and `vocab_size`, and
    implements `tokens`; `gap_id` (a token that marks unknown data, e.g. N in a genome) makes the window draw skip
    windows that are mostly gaps, `strands` lets it read the reverse strand."""

    path: Path
    records: list[tuple[str, int, int]]
    vocab_size: int
    gap_id: int | None = None
    strands: bool = False

    @staticmethod
    def split(lengths: dict[str, int], holdout: float) -> list[tuple[str, int, int]]:
        """(name, n, cut) per record: the last `holdout` of each is held out."""
        return [(name, n, n - int(n * holdout)) for name, n in lengths.items()]

    def tokens(self, name: str, start: int, end: int, strand: str = "+") -> np.ndarray:
        """Token ids (end - start,) int64 of record `name` (strand "-": the reverse complement of the span)."""
        raise NotImplementedError

    def extra_files(self) -> dict[str, str]:
        """Files saved beside a model pretrained on this corpus (its tokenizer or quantiser)."""
        return {}

    def record_weights(self, names, spans) -> np.ndarray:
        """The probability of drawing a window from each record (its name, its number of window starts):
        proportional to the starts, so every training position is equally likely."""
        return np.array(spans, dtype=np.float64) / sum(spans)

    def check_window(self, length: int) -> None:
        """One-line error, before any compute, when no record has room for a training window of `length`."""
        longest = max(cut for _, _, cut in self.records)
        if longest <= length:
            raise DomainInputError(
                f"{self.path}: the longest training part of a record has {longest:,} tokens, not enough for a "
                f"window of schedule seq_len {length:,} (+1 target); shorten the stage or add data")

    def train_windows(self, step: int, seed: int, batch: int, length: int, max_gap_fraction: float,
                      rc_augment: float, rank: int = 0) -> torch.Tensor:
        """(b, l + 1) token ids for optimizer step `step` on process `rank`: the same for the same (seed, step,
        rank), and different ranks draw different windows (each its own shard of the stream)."""
        usable = [(name, cut - length) for name, _, cut in self.records if cut > length]
        if not usable:
            raise DomainInputError(f"{self.path}: no record has more than {length} training tokens")
        names, spans = zip(*usable)
        weights = self.record_weights(names, spans)
        rng = np.random.default_rng([seed, step, rank])
        rows = []
        for _ in range(batch):
            for _attempt in range(50):  # skip windows that are mostly gaps (assembly N runs)
                i = int(rng.choice(len(names), p=weights))
                start = int(rng.integers(0, spans[i] + 1))
                strand = "-" if self.strands and rng.random() < rc_augment else "+"
                row = self.tokens(names[i], start, start + length + 1, strand)
                if self.gap_id is None or (row == self.gap_id).mean() <= max_gap_fraction:
                    break
            rows.append(row)
        return torch.from_numpy(np.stack(rows))

    def heldout(self, context: int):
        """(name, context ids, held-out ids) of every record."""
        for name, n, cut in self.records:
            empty = np.zeros(0, np.int64)
            ctx = self.tokens(name, max(0, cut - context), cut) if context and cut else empty
            yield name, ctx, self.tokens(name, cut, n) if cut < n else empty


def existing_path(path, option: str = "--data", folder_ok: bool = False) -> Path:
    """`path` as a Path, or DomainInputError naming the option when it is missing."""
    p = Path(path)
    if not (p.is_file() or (folder_ok and p.is_dir())):
        raise DomainInputError(f"{option} {path}: no such {'file or folder' if folder_ok else 'file'}")
    return p

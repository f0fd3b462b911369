"""Datasets for DNA (torch.utils.data, no Lightning): labelled sequences, random genome windows, dedup checks.

Dimension names used in this file:
    b batch · l sequence length (padded)

Items are strings (and int labels); tokenization happens in `Collate`, so one dataset serves any tokenizer
policy and the RC augmentation can act on the padded id batch.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
from torch.utils.data import Dataset

from seqssm.domains.dna.alphabet import DNAInputError
from seqssm.domains.dna.fasta import read_fasta
from seqssm.domains.dna.indexed import IndexedGenome
from seqssm.domains.dna.tables import read_sequence_table
from seqssm.domains.dna.tokenizer import NucleotideTokenizer

_HEADER_LABEL = re.compile(r"(?:^|\s)label=(\S+)")


def _class_order(labels: Sequence[str]) -> list[str]:
    """Sorted distinct labels; numerically when they are all integers (so "10" comes after "2")."""
    distinct = set(labels)
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return sorted(distinct)


class LabelledSequences(Dataset):
    """(sequence, label id) pairs; `classes[i]` is the label as written in the file for id i.

    Pass `classes` (e.g. train.classes when loading dev) to map onto an existing label set: a label outside it
    is an error naming the line, instead of a silently different numbering.
    """

    def __init__(self, sequences: list[str], labels: list[int], classes: list[str], source: str = "sequences"):
        if len(sequences) != len(labels):
            raise ValueError(f"{source}: {len(sequences)} sequences but {len(labels)} labels")
        self.sequences, self.labels, self.classes, self.source = sequences, labels, list(classes), source
        self.where = [f"{source}: row {i + 1}" for i in range(len(sequences))]  # the reader's file:line, if any

    def __len__(self) -> int:
        return len(self.sequences)

    def check_max_length(self, max_length: int, truncation: str) -> None:
        """With truncation "error", the first sequence longer than max_length is a DNAInputError naming its
        file line or record (cutting is the collate's job when truncation is "right" or "left")."""
        if truncation != "error":
            return
        for i, s in enumerate(self.sequences):
            if len(s) > max_length:
                raise DNAInputError(f"{self.where[i]}: sequence of length {len(s)} > data.max_length {max_length} "
                                    "(set data.truncation=right or left to cut it)")

    def __getitem__(self, i: int) -> tuple[str, int]:
        return self.sequences[i], self.labels[i]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def _build(cls, path, seqs, raw_labels, where, classes):
        if not seqs:
            raise DNAInputError(f"{path}: no sequences")
        if classes is None:
            classes = _class_order(raw_labels)
            if len(classes) < 2:
                raise DNAInputError(f"{path}: the label column has one class only ({classes[0]!r})")
        index = {c: i for i, c in enumerate(classes)}
        ids = []
        for lab, loc in zip(raw_labels, where):
            if lab not in index:
                raise DNAInputError(f"{loc}: unknown label {lab!r} (known: {', '.join(classes)})")
            ids.append(index[lab])
        ds = cls(seqs, ids, classes, str(path))
        ds.where = list(where)
        return ds

    @classmethod
    def from_csv(cls, path: str | os.PathLike, classes: list[str] | None = None,
                 sequence_column: str = "sequence", label_column: str = "label") -> "LabelledSequences":
        """GUE-style table with a header naming `sequence` and `label` (comma, or tab for .tsv / tab headers);
        read by tables.read_sequence_table (fields of any length)."""
        p = Path(path)
        seqs, labels, where = [], [], []
        for row in read_sequence_table(p, True, sequence_column, label_column):
            seqs.append(row.sequence)
            labels.append(row.label)
            where.append(f"{p}:{row.line}")
        return cls._build(p, seqs, labels, where, classes)

    @classmethod
    def from_fasta(cls, path: str | os.PathLike, labels: dict[str, str] | str | os.PathLike | None = None,
                   classes: list[str] | None = None) -> "LabelledSequences":
        """Labels from headers (`>id label=1` or `>id|1`), or from `labels`: a {id: label} dict or a two-column
        table file (id, label; comma or tab, no header)."""
        p = Path(path)
        table = cls._side_table(labels) if labels is not None and not isinstance(labels, dict) else labels
        seqs, raw, where = [], [], []
        for k, rec in enumerate(read_fasta(p), start=1):
            loc = f"{p}: record {k} ({rec.name!r})"
            if table is not None:
                lab = table.get(rec.name)
            else:
                m = _HEADER_LABEL.search(rec.description)
                lab = m.group(1) if m else (rec.name.rsplit("|", 1)[1] if "|" in rec.name else None)
            if lab is None or not str(lab).strip():
                raise DNAInputError(f"{loc}: missing label")
            seqs.append(rec.sequence)
            raw.append(str(lab).strip())
            where.append(loc)
        return cls._build(p, seqs, raw, where, classes)

    @staticmethod
    def _side_table(path) -> dict[str, str]:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: file not found")
        out = {}
        for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            cols = [c.strip() for c in re.split(r"[\t,]", line)]
            if len(cols) < 2 or not cols[1]:
                raise DNAInputError(f"{p}:{lineno}: expected 'id,label'")
            out[cols[0]] = cols[1]
        return out


class Collate:
    """Batch of (sequence, label) -> {"input_ids" (b, l), "attention_mask" (b, l), "labels" (b,)[, "soft_mask"]}.

    A class (not a closure) so DataLoader workers can pickle it.
    """

    def __init__(self, tokenizer: NucleotideTokenizer, max_length: int | None = None, truncation: str = "error",
                 add_special_tokens: bool = False):
        self.tokenizer, self.max_length = tokenizer, max_length
        self.truncation, self.add_special_tokens = truncation, add_special_tokens

    def __call__(self, batch: list[tuple[str, int]]) -> dict[str, torch.Tensor]:
        seqs = [s for s, _ in batch]
        out = self.tokenizer.encode_batch(seqs, self.max_length, self.truncation, self.add_special_tokens)
        names = ("input_ids", "attention_mask", "soft_mask")
        result = dict(zip(names, out))
        result["labels"] = torch.tensor([y for _, y in batch], dtype=torch.long)
        return result


class GenomeWindows(Dataset):
    """n_windows random windows of `length` bases for pretraining, drawn once from `seed`.

    Sequences are picked in proportion to their length (uniform over positions); windows with more than
    max_n_fraction N (assembly gaps) are skipped, since a model learns nothing from runs of N.
    """

    def __init__(self, genome: IndexedGenome, length: int, n_windows: int, max_n_fraction: float = 0.1,
                 seed: int = 0, max_tries: int | None = None):
        if length < 1 or n_windows < 1:
            raise ValueError(f"length and n_windows must be >= 1, got {length}, {n_windows}")
        if not 0.0 <= max_n_fraction <= 1.0:
            raise ValueError(f"max_n_fraction: must be in [0, 1], got {max_n_fraction}")
        self.genome, self.length = genome, length
        spans = [(name, n - length + 1) for name, n in genome.lengths.items() if n >= length]
        if not spans:
            raise DNAInputError(f"{genome.source}: no sequence is at least {length} bases long")
        names, weights = zip(*spans)
        rng = random.Random(seed)
        self.windows: list[tuple[str, int]] = []
        tries, limit = 0, max_tries if max_tries is not None else 50 * n_windows + 1000
        while len(self.windows) < n_windows:
            tries += 1
            if tries > limit:
                raise DNAInputError(f"{genome.source}: found only {len(self.windows)} of {n_windows} windows with "
                                    f"<= {max_n_fraction:.0%} N after {limit} draws")
            chrom = rng.choices(names, weights=weights)[0]
            start = rng.randrange(genome.lengths[chrom] - length + 1)
            seq = genome.fetch(chrom, start, start + length)
            if seq.upper().count("N") <= max_n_fraction * length:
                self.windows.append((chrom, start))

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> str:
        chrom, start = self.windows[i]
        return self.genome.fetch(chrom, start, start + self.length)


class DedupReport(NamedTuple):
    n_dev: int
    n_duplicates: int  # dev sequences that also occur in train
    unique_dev: list[int]  # indices of dev sequences not in train, in order


def dedup_against(train, dev) -> DedupReport:
    """Exact-sequence overlap of dev with train (case-insensitive); deterministic, order kept."""

    def seqs(x):
        return x.sequences if isinstance(x, LabelledSequences) else list(x)

    seen = {s.upper() for s in seqs(train)}
    dev_seqs = seqs(dev)
    unique = [i for i, s in enumerate(dev_seqs) if s.upper() not in seen]
    return DedupReport(len(dev_seqs), len(dev_seqs) - len(unique), unique)


__all__ = ["Collate", "DedupReport", "GenomeWindows", "LabelledSequences", "dedup_against"]

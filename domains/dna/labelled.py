"""Labelled DNA sequences from files, for classification: CSV, TSV (any header that names the sequence and label
columns) and FASTA with labels in the headers (`>id label=X` or `>id|X`).

`read_labelled` loads a whole labelled file (training, dev, test splits) and checks lengths; `iter_records` streams
(id, sequence, label or None) from a file of any size (prediction, embedding), where the label column is optional.
Errors are DNAInputError naming the file and line (or record).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from seqssm.domains.dna.alphabet import DNAInputError
from seqssm.domains.dna.datasets import LabelledSequences
from seqssm.domains.dna.fasta import check_fasta, read_fasta
from seqssm.domains.dna.tables import check_table, read_sequence_table

FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas", ".fa.gz", ".fasta.gz", ".fna.gz")


def is_fasta(path: Path) -> bool:
    return Path(path).name.lower().endswith(FASTA_SUFFIXES)


def existing_file(path: str | os.PathLike, option: str) -> Path:
    """`path` as a Path; DNAInputError naming the option when it is empty, missing or not a file."""
    p = Path(path)
    if not str(path):
        raise DNAInputError(f"{option}: no file given")
    if not p.exists():
        raise DNAInputError(f"{option} {p}: no such file")
    if not p.is_file():
        raise DNAInputError(f"{option} {p}: not a regular file")
    return p


def read_labelled(path, option: str, max_length: int, truncation: str, classes=None,
                  sequence_column: str = "sequence", label_column: str = "label") -> LabelledSequences:
    """A labelled CSV/TSV (a header naming `sequence_column` and `label_column`) or FASTA (`>id label=X`),
    checked against max_length. `classes` (the training split's) maps the labels of a dev or test split."""
    p = existing_file(path, option)
    if is_fasta(p):
        ds = LabelledSequences.from_fasta(p, classes=classes)
    else:
        ds = LabelledSequences.from_csv(p, classes=classes, sequence_column=sequence_column.lower(),
                                        label_column=label_column.lower())
    ds.check_max_length(max_length, truncation)  # truncation "error": the first too-long row, named
    return ds


def iter_records(path, option: str = "--data", sequence_column: str = "sequence",
                 label_column: str = "label") -> Iterator[tuple[str, str, str | None]]:
    """Stream (id, sequence, label or None) from a FASTA or CSV/TSV without reading the whole file.

    The whole file is checked first (the readers' rules: duplicate ids, empty records, non-IUPAC characters), so a
    bad record fails before any compute. CSV ids come from an `id` or `name` column when there is one, else the
    line number; labels are optional.
    """
    p = existing_file(path, option)
    if is_fasta(p):
        check_fasta(p)
        for rec in read_fasta(p):
            label = next((w[6:] for w in rec.description.split()[1:] if w.startswith("label=")), None)
            yield rec.name, rec.sequence, label
        return
    check_table(p, require_label=False, sequence_column=sequence_column.lower(), label_column=label_column.lower())
    for row in read_sequence_table(p, False, sequence_column.lower(), label_column.lower()):
        yield row.id, row.sequence, row.label


__all__ = ["FASTA_SUFFIXES", "existing_file", "is_fasta", "iter_records", "read_labelled"]

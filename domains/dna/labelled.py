"""Labelled DNA sequences from files, for classification: CSV, TSV (any header that names the sequence and label
columns) and FASTA with labels in the headers (`>id label=X` or `>id|X`).

`read_labelled` loads a whole labelled file (training, dev, test splits) and checks lengths; `iter_records` streams
(id, sequence, label or None) from a file of any size (prediction, embedding), where the label column is optional.
Errors are DNAInputError naming the file and line (or record).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterator

from seqssm.domains.dna.alphabet import DNAInputError, check_iupac
from seqssm.domains.dna.datasets import LabelledSequences
from seqssm.domains.dna.fasta import read_fasta

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


def _delimiter(path: Path, first_line: str) -> str:
    return "\t" if path.suffix.lower() == ".tsv" or "\t" in first_line else ","


def _csv_line_of_row(path: Path, index: int) -> int:
    """The file line of data row `index` (0-based), counted as LabelledSequences.from_csv counts (blank rows
    skipped)."""
    seen = -1
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if lineno == 1 or not line.strip().strip(",\t"):
                continue
            seen += 1
            if seen == index:
                return lineno
    return index + 2


def check_lengths(ds: LabelledSequences, path: Path, max_length: int, truncation: str) -> None:
    """With truncation "error", the first sequence longer than max_length is a DNAInputError naming its line."""
    if truncation != "error":
        return
    for i, s in enumerate(ds.sequences):
        if len(s) > max_length:
            loc = f"{path}: record {i + 1}" if is_fasta(path) else f"{path}:{_csv_line_of_row(path, i)}"
            raise DNAInputError(
                f"{loc}: sequence of length {len(s)} > data.max_length {max_length} "
                "(set data.truncation=right or left to cut it)"
            )


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
    check_lengths(ds, p, max_length, truncation)
    return ds


def iter_records(path, option: str = "--data", sequence_column: str = "sequence",
                 label_column: str = "label") -> Iterator[tuple[str, str, str | None]]:
    """Stream (id, sequence, label or None) from a FASTA or CSV/TSV without reading the whole file.

    CSV ids come from an `id` or `name` column when there is one, else the line number; labels are optional.
    """
    p = existing_file(path, option)
    if is_fasta(p):
        for rec in read_fasta(p):
            label = next((w[6:] for w in rec.description.split()[1:] if w.startswith("label=")), None)
            yield rec.name, rec.sequence, label
        return
    seq_col, label_col = sequence_column.lower(), label_column.lower()
    lineno = 0
    try:
        with open(p, encoding="utf-8", newline="") as fh:
            first = fh.readline()
            fh.seek(0)
            rows = csv.reader(fh, delimiter=_delimiter(p, first))
            for lineno, row in enumerate(rows, start=1):
                if "\x00" in "".join(row):
                    raise DNAInputError(f"{p}:{lineno}: not a text file (NUL bytes)")
                if lineno == 1:
                    header = [h.strip().lower() for h in row]
                    if seq_col not in header:
                        raise DNAInputError(f"{p}:1: header must name a {seq_col!r} column, got {header}")
                    si = header.index(seq_col)
                    li = header.index(label_col) if label_col in header else None
                    ii = next((header.index(k) for k in ("id", "name") if k in header), None)
                    continue
                if not "".join(row).strip():
                    continue
                seq = row[si].strip() if len(row) > si else ""
                if not seq:
                    raise DNAInputError(f"{p}:{lineno}: empty sequence")
                check_iupac(seq, f"{p}:{lineno}")
                rid = row[ii].strip() if ii is not None and len(row) > ii else str(lineno)
                label = row[li].strip() if li is not None and len(row) > li else None
                yield rid, seq, label or None
    except UnicodeDecodeError:
        raise DNAInputError(f"{p}:{lineno + 1}: not a text file (bytes that are not UTF-8)") from None
    if lineno == 0:
        raise DNAInputError(f"{p}:1: empty file (a header with a {seq_col!r} column is required)")


__all__ = ["FASTA_SUFFIXES", "check_lengths", "existing_file", "is_fasta", "iter_records", "read_labelled"]

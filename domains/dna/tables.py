"""Sequence tables: the one reader of CSV and TSV files of DNA sequences (GUE style `sequence,label`).

A header names the columns, in any order and case: `sequence` is required, `label` where the command needs
labels, and an `id` (or `name`) column gives each row its name (else the line number does). Commas separate
columns, or tabs for a `.tsv` file or a header line holding a tab. Quoted fields, a UTF-8 byte-order mark,
Windows line ends and blank rows are accepted; fields of any length are read (Python's csv module refuses
fields over 131,072 characters unless told otherwise, and a long-context tool must read million-base rows).

Every row is checked as it is read and a bad one is a DNAInputError naming the file and line: not text, no
sequence, a character outside IUPAC, a missing label, an id used twice, no data rows at all.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sys
from pathlib import Path
from typing import Iterator, NamedTuple

from seqssm.domains.dna.alphabet import IUPAC_SET, DNAInputError, first_non_iupac

ID_COLUMNS = ("id", "name")


class TableRow(NamedTuple):
    line: int  # the file line the row starts on (1 = the header)
    id: str  # the id/name column, else the line number
    sequence: str  # as written (soft-masked lower case kept)
    label: str | None  # None where the table has no label column or the cell is empty


def check_sequence(seq: str, context: str) -> str:
    """`seq` itself, or a one-line DNAInputError naming `context`: empty, or a character outside IUPAC."""
    if not seq:
        raise DNAInputError(f"{context}: empty sequence")
    if not set(seq) <= IUPAC_SET:  # the fast test; the slow scan only to name the character
        i = first_non_iupac(seq)
        raise DNAInputError(f"{context}: character {seq[i]!r} at column {i + 1} is not an IUPAC nucleotide code")
    return seq


@contextlib.contextmanager
def _any_field_size():
    """Lift the csv module's per-field limit for the duration of a read, then put the old one back. The largest
    value the platform's C long holds is found by halving (sys.maxsize overflows it on Windows)."""
    old = csv.field_size_limit()
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            break
        except OverflowError:
            limit //= 2
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _decoded(fh, p: Path) -> Iterator[str]:
    """The lines of a binary file as text, so a byte that is not UTF-8 is named by its own line (a text-mode
    file decodes 8 KiB blocks ahead of the csv reader)."""
    for lineno, raw in enumerate(fh, start=1):
        try:
            yield raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError:
            raise DNAInputError(f"{p}:{lineno}: not a text file (bytes that are not UTF-8)") from None


def delimiter_of(path: Path, header: str) -> str:
    return "\t" if path.suffix.lower() == ".tsv" or "\t" in header else ","


def read_sequence_table(path: str | os.PathLike, require_label: bool, sequence_column: str = "sequence",
                        label_column: str = "label") -> Iterator[TableRow]:
    """Stream the checked rows of a CSV/TSV; DNAInputError naming file and line at the first bad one."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: file not found")
    with open(p, "rb") as fh:
        first = fh.readline()
    if b"\x00" in first:
        raise DNAInputError(f"{p}:1: not a text file (NUL bytes)")
    try:
        head = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DNAInputError(f"{p}:1: not a text file (bytes that are not UTF-8)") from None
    if not head.strip():
        want = f"{sequence_column!r}" + (f" and {label_column!r}" if require_label else "")
        raise DNAInputError(f"{p}:1: empty {'file' if not first else 'header'} (a header naming {want} is required)")
    line = 1
    with _any_field_size(), open(p, "rb") as fh:
        rows = csv.reader(_decoded(fh, p), delimiter=delimiter_of(p, head))
        try:
            header = [h.strip().lower() for h in next(rows)]
            if sequence_column not in header or (require_label and label_column not in header):
                need = f"{sequence_column!r}" + (f" and {label_column!r}" if require_label else "")
                raise DNAInputError(f"{p}:1: the header must name the column{'s' if require_label else ''} {need}, "
                                    f"got {header}")
            si = header.index(sequence_column)
            li = header.index(label_column) if label_column in header else None
            ii = next((header.index(k) for k in ID_COLUMNS if k in header), None)
            seen: dict[str, int] = {}
            n = 0
            while True:
                line = rows.line_num + 1
                row = next(rows, None)
                if row is None:
                    break
                if not "".join(row).strip():
                    continue
                loc = f"{p}:{line}"
                if "\x00" in "".join(row):
                    raise DNAInputError(f"{loc}: not a text file (NUL bytes)")
                seq = check_sequence(row[si].strip() if len(row) > si else "", loc)
                label = row[li].strip() if li is not None and len(row) > li else ""
                if require_label and not label:
                    raise DNAInputError(f"{loc}: missing label")
                rid = row[ii].strip() if ii is not None and len(row) > ii else ""
                if ii is not None:
                    if not rid:
                        raise DNAInputError(f"{loc}: empty {header[ii]!r}")
                    if rid in seen:
                        raise DNAInputError(f"{loc}: {header[ii]} {rid!r} used twice (first at line {seen[rid]}); "
                                            "ids must be unique")
                    seen[rid] = line
                n += 1
                yield TableRow(line, rid or str(line), seq, label or None)
        except csv.Error as err:
            raise DNAInputError(f"{p}:{line}: not a readable table ({err})") from None
    if n == 0:
        raise DNAInputError(f"{p}: no sequences (only a header)")


def check_table(path: str | os.PathLike, require_label: bool, sequence_column: str = "sequence",
                label_column: str = "label") -> int:
    """Check a whole table without keeping it; returns the number of rows."""
    return sum(1 for _ in read_sequence_table(path, require_label, sequence_column, label_column))


__all__ = ["TableRow", "check_sequence", "check_table", "delimiter_of", "read_sequence_table"]

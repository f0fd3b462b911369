"""FASTA and BED input: streaming multi-record reading, random access (pyfaidx), BED intervals.

Coordinates are 0-based, half-open (BED's convention): fetch(chrom, 0, 10) is the first ten bases.

One reader, `_scan`, checks every FASTA a command reads (plain, gzip or bgzip) line by line and fails with one
line naming the file and the line: bytes that are not text, text before the first header, an empty header, a
record with no sequence, a name used twice, a character outside IUPAC. Windows line endings, lower-case
(soft-masked) bases, N runs and lines of any length are accepted. `read_fasta` streams its records;
`IndexedGenome` (indexed.py) runs the same scan once per file content before pyfaidx indexes it (genome_cache.py keeps the
index, and a plain-line copy where one is needed, in the cache, never beside the user's file).
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path
from typing import Iterator, NamedTuple

from seqssm.atomic import atomic_open
from seqssm.domains.dna.alphabet import IUPAC, DNAInputError

GZIP_MAGIC = b"\x1f\x8b"
_IUPAC_BYTES = (IUPAC + IUPAC.lower()).encode("ascii")
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # never in FASTA: a binary file passed by mistake
WRAP = 80  # bases per line of the plain copies written to the cache


class FastaRecord(NamedTuple):
    name: str  # the first word of the header
    description: str  # the whole header without '>'
    sequence: str  # as written (soft-masked lower case kept)


class BedInterval(NamedTuple):
    chrom: str
    start: int  # 0-based, inclusive
    end: int  # exclusive
    name: str
    strand: str  # "+" or "-"


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def is_bgzf(path: Path) -> bool:
    """BGZF (bgzip) blocks are gzip members with an extra field 'BC' (SAM spec 4.1); pyfaidx reads only these."""
    with open(path, "rb") as fh:
        head = fh.read(14)
    return len(head) == 14 and head[:2] == GZIP_MAGIC and bool(head[3] & 4) and head[12:14] == b"BC"


def _open_binary(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def _text_error(path: Path, lineno: int, raw: bytes) -> str | None:
    """Why `raw` is not a line of text (control bytes, not UTF-8), or None."""
    if _CONTROL.search(raw):
        return f"{path}:{lineno}: not a text file (control bytes)"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"{path}:{lineno}: not a text file (bytes that are not UTF-8)"
    return None


class _Scan:
    """One checked pass over a FASTA: iterate for (lineno, header or None, bases) events.

    A header event is (lineno, description, b""); a sequence line is (lineno, None, its bases without white
    space or line end). After the pass, `plain` tells whether pyfaidx can index the file as it is: every line of
    a record but the last of the same length in bytes, the last no longer, no blank or space-padded lines
    (one empty line may end a record; faidx counts bytes per line, anything else would shift its offsets).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.plain = True
        self.records = 0

    def _not_plain(self) -> None:
        self.plain = False

    def __iter__(self) -> Iterator[tuple[int, str | None, bytes]]:
        p = self.path
        seen: dict[str, int] = {}  # name -> line of its header
        name, header_line, n_seq = None, 0, 0
        width, short, blanks = 0, False, 0  # the record's first line length in bytes; a shorter line; blank lines
        lineno = 0
        with _open_binary(p) as fh:
            try:
                for lineno, raw in enumerate(fh, start=1):
                    body = raw.rstrip(b"\r\n")
                    if body[:1] == b">":
                        if name is not None and n_seq == 0:
                            raise DNAInputError(f"{p}:{header_line}: record {name!r} has no sequence")
                        bad = _text_error(p, lineno, body)
                        if bad:
                            raise DNAInputError(bad)
                        desc = body[1:].decode("utf-8").strip()
                        if not desc:
                            raise DNAInputError(f"{p}:{lineno}: empty FASTA header")
                        name = desc.split()[0]
                        if name in seen:
                            raise DNAInputError(f"{p}:{lineno}: record name {name!r} used twice (first at line "
                                                f"{seen[name]}); record names must be unique")
                        seen[name], header_line, n_seq, width, short, blanks = lineno, lineno, 0, 0, False, 0
                        self.records += 1
                        yield lineno, desc, b""
                        continue
                    seq = body.strip()
                    if not seq:
                        blanks += name is not None
                        if body or blanks > 1:  # faidx allows one empty line at the end of a record
                            self._not_plain()
                        if _CONTROL.search(body):
                            raise DNAInputError(f"{p}:{lineno}: not a text file (control bytes)")
                        continue  # blank lines carry nothing
                    if name is None:
                        raise DNAInputError(_text_error(p, lineno, body)
                                            or f"{p}:{lineno}: text before the first FASTA header ('>name')")
                    if seq.translate(None, _IUPAC_BYTES):
                        raise DNAInputError(self._bad_base(lineno, name, seq))
                    if len(seq) != len(body) or blanks:
                        self._not_plain()
                    if self.plain:  # faidx's rule: equal lines, then at most one shorter last line
                        if not width:
                            width = len(raw)
                        elif short or len(raw) > width:
                            self._not_plain()
                        elif len(raw) < width:
                            short = True
                    n_seq += len(seq)
                    yield lineno, None, seq
            except (OSError, EOFError, gzip.BadGzipFile) as err:  # a truncated or corrupt gzip stream
                raise DNAInputError(f"{p}:{lineno + 1}: cannot read ({err})") from None
        if name is None:
            raise DNAInputError(f"{p}: no FASTA records (empty file)")
        if n_seq == 0:
            raise DNAInputError(f"{p}:{header_line}: record {name!r} has no sequence")

    def _bad_base(self, lineno: int, name: str, seq: bytes) -> str:
        bad = _text_error(self.path, lineno, seq)
        if bad:
            return bad
        text = seq.decode("utf-8")
        col = next(i for i, ch in enumerate(text) if ch not in IUPAC and ch not in IUPAC.lower())
        return (f"{self.path}:{lineno}: record {name!r}: character {text[col]!r} at column {col + 1} is not an "
                "IUPAC nucleotide code")


def read_fasta(path: str | os.PathLike) -> Iterator[FastaRecord]:
    """Stream the records of a FASTA file (plain, gzip or bgzip) one at a time; DNAInputError on a malformed file
    (checked as it streams: a caller that must not start work on a bad file calls `check_fasta` first)."""
    desc, parts = None, []
    for _, header, seq in _Scan(path):
        if header is not None:
            if desc is not None:
                yield FastaRecord(desc.split()[0], desc, b"".join(parts).decode("ascii"))
            desc, parts = header, []
        else:
            parts.append(seq)
    if desc is not None:
        yield FastaRecord(desc.split()[0], desc, b"".join(parts).decode("ascii"))


def check_fasta(path: str | os.PathLike) -> tuple[int, bool]:
    """Check a whole FASTA without keeping it: (records, plain), `plain` as in _Scan; DNAInputError when bad."""
    scan = _Scan(path)
    for _ in scan:
        pass
    return scan.records, scan.plain


def write_plain_copy(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Write src's records, checked, as plain FASTA (LF line ends, WRAP bases a line) to dest, atomically."""
    with atomic_open(dest, "wb") as out:
        pending = b""
        for _, header, seq in _Scan(src):
            if header is not None:
                if pending:
                    out.write(pending + b"\n")
                out.write(b">" + header.encode("utf-8") + b"\n")
                pending = b""
                continue
            pending += seq
            if len(pending) >= WRAP:
                cut = len(pending) - len(pending) % WRAP
                out.write(b"\n".join(pending[i:i + WRAP] for i in range(0, cut, WRAP)) + b"\n")
                pending = pending[cut:]
        if pending:
            out.write(pending + b"\n")


def read_bed(path: str | os.PathLike) -> Iterator[BedInterval]:
    """Intervals of a BED file (3 to 6+ columns); '#', 'track' and 'browser' lines are skipped."""
    p = Path(path)
    lineno = 0
    with _open_binary(p) as fh:
        try:
            for lineno, raw in enumerate(fh, start=1):
                bad = _text_error(p, lineno, raw.rstrip(b"\r\n"))
                if bad:
                    raise DNAInputError(bad)
                line = raw.decode("utf-8").rstrip("\r\n")
                if not line.strip() or line.startswith(("#", "track", "browser")):
                    continue
                yield _bed_interval(p, lineno, line)
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            raise DNAInputError(f"{p}:{lineno + 1}: cannot read ({err})") from None


def _bed_interval(p: Path, lineno: int, line: str) -> BedInterval:
    cols = line.split("\t") if "\t" in line else line.split()
    if len(cols) < 3:
        raise DNAInputError(f"{p}:{lineno}: expected at least 3 columns (chrom start end), got {len(cols)}")
    try:
        start, end = int(cols[1]), int(cols[2])
    except ValueError:
        raise DNAInputError(f"{p}:{lineno}: start and end must be integers, got {cols[1]!r} {cols[2]!r}") from None
    if start < 0 or end <= start:
        raise DNAInputError(f"{p}:{lineno}: need 0 <= start < end, got start={start} end={end}")
    name = cols[3] if len(cols) > 3 else f"{cols[0]}:{start}-{end}"
    strand = cols[5] if len(cols) > 5 else "+"
    if strand not in ("+", "-", "."):
        raise DNAInputError(f"{p}:{lineno}: strand must be +, - or ., got {strand!r}")
    return BedInterval(cols[0], start, end, name, "-" if strand == "-" else "+")


__all__ = ["BedInterval", "FastaRecord", "check_fasta", "is_bgzf", "is_gzip", "read_bed", "read_fasta",
           "write_plain_copy"]

"""FASTA and BED input: streaming multi-record reading (Biopython), random access (pyfaidx), BED intervals.

Coordinates are 0-based, half-open (BED's convention): fetch(chrom, 0, 10) is the first ten bases.

Every line goes through `_CheckedLines` before Biopython sees it, so a bad file fails with one line naming the
file and the line number (Biopython's own errors name neither): text before the first header, a header with no
sequence, bytes that are not text, characters outside IUPAC. Windows line endings are accepted (stripped here).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from typing import Iterator, NamedTuple

from Bio import SeqIO

from seqssm.atomic import atomic_open
from seqssm.domains.dna.alphabet import DNAInputError, first_non_iupac, reverse_complement

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_CACHE = Path("~/.cache/seqssm/genomes")


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


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def _is_bgzf(path: Path) -> bool:
    """BGZF (bgzip) blocks are gzip members with an extra field 'BC' (SAM spec 4.1); pyfaidx reads only these."""
    with open(path, "rb") as fh:
        head = fh.read(14)
    return len(head) == 14 and head[:2] == GZIP_MAGIC and head[3] & 4 and head[12:14] == b"BC"


def _open_binary(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


class _CheckedLines:
    """A file-like object for Bio.SeqIO that validates each line and tracks line numbers and records."""

    def __init__(self, path: Path):
        self.path = path
        self._raw = iter(self._lines())
        self.record_line = 0  # line of the current record's header, for Biopython-side messages

    def _lines(self) -> Iterator[str]:
        p = self.path
        header, header_line, n_seq = None, 0, 0
        with _open_binary(p) as fh:
            lineno = 0
            try:
                for lineno, raw in enumerate(fh, start=1):
                    line = self._decode(raw, lineno).rstrip("\r\n")
                    if not line.strip():
                        continue  # blank lines carry nothing; Biopython refuses them before the first header
                    if line.startswith(">"):
                        if header is not None and n_seq == 0:
                            raise DNAInputError(f"{p}:{header_line}: record {header!r} has no sequence")
                        words = line[1:].split()
                        if not words:
                            raise DNAInputError(f"{p}:{lineno}: empty FASTA header")
                        header, header_line, n_seq = words[0], lineno, 0
                        self.record_line = lineno
                        yield line + "\n"
                        continue
                    if header is None:
                        raise DNAInputError(f"{p}:{lineno}: text before the first FASTA header ('>name')")
                    seq = line.strip()
                    bad = first_non_iupac(seq)
                    if bad >= 0:
                        raise DNAInputError(
                            f"{p}:{lineno}: record {header!r}: character {seq[bad]!r} is not an IUPAC nucleotide code"
                        )
                    n_seq += len(seq)
                    yield seq + "\n"
            except (OSError, EOFError) as err:  # a truncated or corrupt gzip stream
                raise DNAInputError(f"{p}:{lineno + 1}: cannot read ({err})") from None
        if header is None:
            raise DNAInputError(f"{p}: no FASTA records (empty file)")
        if n_seq == 0:
            raise DNAInputError(f"{p}:{header_line}: record {header!r} has no sequence")

    def _decode(self, raw: bytes, lineno: int) -> str:
        # NUL and other control bytes never occur in FASTA; they mean a binary file passed by mistake.
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DNAInputError(f"{self.path}:{lineno}: not a text file (bytes that are not UTF-8)") from None
        if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
            raise DNAInputError(f"{self.path}:{lineno}: not a text file (control bytes)")
        return text

    def readline(self) -> str:
        return next(self._raw, "")

    def read(self, size: int = -1) -> str:  # Biopython probes read(0) to tell text from binary handles
        if size == 0:
            return ""
        return "".join(iter(self.readline, ""))

    def __iter__(self):
        return iter(self.readline, "")


def read_fasta(path: str | os.PathLike) -> Iterator[FastaRecord]:
    """Stream the records of a FASTA file (plain or gzip) one at a time; DNAInputError on a malformed file."""
    for rec in SeqIO.parse(_CheckedLines(Path(path)), "fasta"):
        yield FastaRecord(rec.id, rec.description, str(rec.seq))


def read_bed(path: str | os.PathLike) -> Iterator[BedInterval]:
    """Intervals of a BED file (3 to 6+ columns); '#', 'track' and 'browser' lines are skipped."""
    p = Path(path)
    with _open_binary(p) as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise DNAInputError(f"{p}:{lineno}: not a text file (bytes that are not UTF-8)") from None
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
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
            yield BedInterval(cols[0], start, end, name, "-" if strand == "-" else "+")


def _atomic_decompress(src: Path, dest: Path) -> None:
    """Write src's records, validated and with plain line endings, to dest via a temp file and os.replace."""
    with atomic_open(dest, "w", encoding="utf-8", newline="\n") as out:
        for line in _CheckedLines(src):
            out.write(line)


class IndexedGenome:
    """Random access into a FASTA through pyfaidx (plain or bgzip); a plain .gz is decompressed once to a cache.

    The cache file name holds a hash of the source's absolute path, size and modification time, so an edited
    source is decompressed again instead of silently served stale.
    """

    def __init__(self, path: str | os.PathLike, cache_dir: str | os.PathLike | None = None):
        import pyfaidx  # here: only random access needs it

        self.source = Path(path)
        if not self.source.is_file():
            raise FileNotFoundError(f"{self.source}: file not found")
        fasta = self.source
        if _is_gzip(self.source) and not _is_bgzf(self.source):
            st = self.source.stat()
            key = f"{self.source.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()
            stem = self.source.name.removesuffix(".gz")
            cache = Path(cache_dir if cache_dir is not None else DEFAULT_CACHE).expanduser()
            fasta = cache / f"{hashlib.sha256(key).hexdigest()[:16]}-{stem}"
            if not fasta.is_file():
                _atomic_decompress(self.source, fasta)
        self.path = fasta
        try:
            self._fa = pyfaidx.Fasta(str(fasta), sequence_always_upper=False, rebuild=False)
        except (pyfaidx.FastaIndexingError, pyfaidx.UnsupportedCompressionFormat, ValueError) as err:
            raise DNAInputError(f"{self.source}: cannot index ({str(err).strip().splitlines()[0]})") from None
        self.lengths = {name: len(self._fa[name]) for name in self._fa.keys()}

    @property
    def names(self) -> list[str]:
        return list(self.lengths)

    def fetch(self, chrom: str, start: int, end: int, strand: str = "+") -> str:
        """Bases [start, end) of `chrom` (0-based, half-open); strand "-" gives the reverse complement."""
        if chrom not in self.lengths:
            raise DNAInputError(f"{self.source}: no sequence named {chrom!r} (has {', '.join(self.names[:5])})")
        n = self.lengths[chrom]
        if not (0 <= start < end <= n):
            raise DNAInputError(f"{self.source}: {chrom}:{start}-{end} is outside [0, {n}) or empty")
        if strand not in ("+", "-"):
            raise DNAInputError(f"{self.source}: strand must be + or -, got {strand!r}")
        seq = str(self._fa[chrom][start:end])
        return reverse_complement(seq) if strand == "-" else seq

    def fetch_bed(self, bed_path: str | os.PathLike) -> Iterator[tuple[BedInterval, str]]:
        """(interval, sequence) for every interval of a BED file, on the interval's strand."""
        for iv in read_bed(bed_path):
            yield iv, self.fetch(iv.chrom, iv.start, iv.end, iv.strand)

    def close(self) -> None:
        self._fa.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


__all__ = ["BedInterval", "FastaRecord", "IndexedGenome", "read_bed", "read_fasta"]

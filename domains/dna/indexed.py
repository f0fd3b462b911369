"""Random access into a genome: a FASTA (plain, gzip or bgzip) read through pyfaidx after one full check, with its
index and any plain copy in the genome cache (genome_cache.py), never beside the user's file.

Apart from fasta.py so that the readers (fasta.py) and the cache (genome_cache.py, which uses the readers' checks)
do not import each other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from seqssm.domains.dna.alphabet import DNAInputError, reverse_complement
from seqssm.domains.dna.fasta import BedInterval, read_bed
from seqssm.domains.dna.genome_cache import prepare


class IndexedGenome:
    """Random access into a FASTA (plain, gzip or bgzip) through pyfaidx, after one full check of the file.

    The check, the index and any plain copy pyfaidx needs live in the genome cache (genome_cache.py), keyed by
    the file's content; nothing is written beside the user's file, so read-only reference folders work.
    """

    def __init__(self, path: str | os.PathLike, cache_dir: str | os.PathLike | None = None):
        import pyfaidx  # here: only random access needs it

        self.source = Path(path)
        ready = prepare(self.source, cache_dir)
        self.path = ready.fasta
        kw = {"gzi_indexname": str(ready.gzi)} if ready.gzi is not None else {}
        try:
            self._fa = pyfaidx.Fasta(str(ready.fasta), indexname=str(ready.fai), sequence_always_upper=False,
                                     rebuild=False, build_index=False, **kw)
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


__all__ = ["IndexedGenome"]

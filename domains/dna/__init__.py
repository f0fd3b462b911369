"""seqssm.domains.dna: the DNA plugin — FASTA/BED readers, the nucleotide tokenizer, labelled and genome-window
datasets, reverse-complement tools. Registered as the `dna` entry point of the `seqssm.domains` group.

    >>> from seqssm.domains.dna import NucleotideTokenizer
    >>> NucleotideTokenizer().encode("ACGTN")
    [5, 6, 7, 8, 9]
"""

from __future__ import annotations

from dataclasses import dataclass

from seqssm.domains.dna.alphabet import IUPAC, DNAInputError, reverse_complement
from seqssm.domains.dna.conjoin import rc_conjoin
from seqssm.domains.dna.datasets import Collate, DedupReport, GenomeWindows, LabelledSequences, dedup_against
from seqssm.domains.dna.fasta import BedInterval, FastaRecord, IndexedGenome, read_bed, read_fasta
from seqssm.domains.dna.tokenizer import (
    NucleotideTokenizer,
    RandomReverseComplement,
    reverse_complement_ids,
)


@dataclass(frozen=True)
class DNAPlugin:
    """What the `seqssm.domains` entry point hands out: the domain's name and its factories."""

    name: str = "dna"
    description: str = "DNA sequences: FASTA/BED readers, single-nucleotide tokenizer, reverse-complement tools"

    def tokenizer(self, **policy) -> NucleotideTokenizer:
        return NucleotideTokenizer(**policy)

    def load_tokenizer(self, path) -> NucleotideTokenizer:
        return NucleotideTokenizer.from_file(path)


plugin = DNAPlugin()

__all__ = [
    "IUPAC",
    "BedInterval",
    "Collate",
    "DedupReport",
    "GenomeWindows",
    "LabelledSequences",
    "dedup_against",
    "DNAInputError",
    "DNAPlugin",
    "FastaRecord",
    "IndexedGenome",
    "NucleotideTokenizer",
    "RandomReverseComplement",
    "plugin",
    "rc_conjoin",
    "read_bed",
    "read_fasta",
    "reverse_complement",
    "reverse_complement_ids",
]

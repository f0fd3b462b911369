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
from seqssm.domains.dna.fasta import BedInterval, FastaRecord, read_bed, read_fasta
from seqssm.domains.dna.indexed import IndexedGenome
from seqssm.domains.dna.genome import GenomeCorpus
from seqssm.domains.dna.labelled import is_fasta, iter_records, read_labelled
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
    source: str = "fasta"  # `pretrain` data.source
    strands: bool = True  # reverse-complement augmentation, conjoining and equivariance apply
    user_errors: tuple = (DNAInputError,)

    def tokenizer(self, **policy) -> NucleotideTokenizer:
        return NucleotideTokenizer(**policy)

    def load_tokenizer(self, path) -> NucleotideTokenizer:
        return NucleotideTokenizer.from_file(path)

    read_labelled = staticmethod(read_labelled)
    iter_records = staticmethod(iter_records)

    def corpus(self, path, holdout: float, options=None):
        """GenomeCorpus of `path`, or, when the options name several genomes (pretrain data.genomes, entries
        with name, path and weight), a MultiGenomeCorpus of them."""
        genomes = getattr(options, "genomes", None) or []
        if genomes:
            from seqssm.domains.dna.multigenome import MultiGenomeCorpus

            return MultiGenomeCorpus([(g.name, g.path, g.weight) for g in genomes], holdout)
        return GenomeCorpus(path, holdout)

    def vocab_size(self, options=None) -> int:
        return NucleotideTokenizer.vocab_size

    def rc_conjoin(self, model, ids, mask, tokenizer):
        """Logits averaged over both strands (Caduceus's post-hoc conjoining)."""
        return rc_conjoin(model, ids, mask, tokenizer)

    def random_reverse_complement(self, p: float, seed: int) -> RandomReverseComplement:
        return RandomReverseComplement(p, seed=seed)


plugin = DNAPlugin()

__all__ = [
    "IUPAC",
    "BedInterval",
    "Collate",
    "DedupReport",
    "GenomeCorpus",
    "GenomeWindows",
    "LabelledSequences",
    "dedup_against",
    "DNAInputError",
    "DNAPlugin",
    "FastaRecord",
    "IndexedGenome",
    "is_fasta",
    "iter_records",
    "read_labelled",
    "NucleotideTokenizer",
    "RandomReverseComplement",
    "plugin",
    "rc_conjoin",
    "read_bed",
    "read_fasta",
    "reverse_complement",
    "reverse_complement_ids",
]

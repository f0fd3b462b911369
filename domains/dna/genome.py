"""A genome as a pretraining corpus: the records of a FASTA read through pyfaidx (IndexedGenome), nucleotide
tokens, either strand. Windows that are mostly N (assembly gaps) are drawn again (data.max_n_fraction).

Dimension names: l window length.
"""

from __future__ import annotations

import numpy as np

from seqssm.domains import DomainInputError
from seqssm.domains.corpus import Corpus, existing_path
from seqssm.domains.dna.indexed import IndexedGenome
from seqssm.domains.dna.tokenizer import NucleotideTokenizer, VOCAB


class GenomeCorpus(Corpus):
    """Every record of a FASTA, its last `holdout` held out; tokens of either strand."""

    vocab_size = NucleotideTokenizer.vocab_size
    gap_id = VOCAB["N"]
    strands = True

    def __init__(self, path, holdout: float, option: str = "--data"):
        self.path = existing_path(path, option)
        self.genome, self.tokenizer = IndexedGenome(self.path), NucleotideTokenizer()
        lengths = self.genome.lengths
        if not lengths or not sum(lengths.values()):
            raise DomainInputError(f"{self.path}: the FASTA has no sequence")
        self.records = self.split(lengths, holdout)

    def tokens(self, name: str, start: int, end: int, strand: str = "+") -> np.ndarray:
        return np.asarray(self.tokenizer.encode(self.genome.fetch(name, start, end, strand)), dtype=np.int64)

    def extra_files(self) -> dict[str, str]:
        return {"tokenizer.json": self.tokenizer.to_json()}


__all__ = ["GenomeCorpus"]

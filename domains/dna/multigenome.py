"""Several genomes as one pretraining corpus: each FASTA's records (through IndexedGenome), named
`<genome>/<record>`, with a sampling weight per genome, so that a small genome is not drowned by a large one
(or a large one is not over-sampled). Within a genome, windows are drawn in proportion to each record's length,
as in GenomeCorpus; both strands, and the last `holdout` of every record of every genome held out.

Dimension names: l window length.
"""

from __future__ import annotations

import numpy as np

from seqssm.domains import DomainInputError
from seqssm.domains.corpus import Corpus, existing_path
from seqssm.domains.dna.indexed import IndexedGenome
from seqssm.domains.dna.tokenizer import NucleotideTokenizer, VOCAB


class MultiGenomeCorpus(Corpus):
    """`genomes`: [(name, FASTA path, weight)]; names unique, weights > 0 (normalised here)."""

    vocab_size = NucleotideTokenizer.vocab_size
    gap_id = VOCAB["N"]
    strands = True

    def __init__(self, genomes, holdout: float, option: str = "data.genomes"):
        if not genomes:
            raise DomainInputError(f"{option}: no genomes given")
        self.tokenizer, self.genomes, self.weight = NucleotideTokenizer(), {}, {}
        self.records = []
        for i, (name, path, weight) in enumerate(genomes):
            where = f"{option}[{i}]"
            if not name or "/" in name or name in self.genomes:
                raise DomainInputError(f"{where}.name {name!r}: must be non-empty, unique and without '/'")
            if not weight > 0:
                raise DomainInputError(f"{where}.weight {weight}: must be > 0")
            g = IndexedGenome(existing_path(path, f"{where}.path"))
            if not g.lengths or not sum(g.lengths.values()):
                raise DomainInputError(f"{where}.path {path}: the FASTA has no sequence")
            self.genomes[name], self.weight[name] = g, float(weight)
            self.records += [(f"{name}/{r}", n, cut) for r, n, cut in self.split(g.lengths, holdout)]
        self.path = existing_path(genomes[0][1])  # for messages only
        total = sum(self.weight.values())
        self.weight = {k: v / total for k, v in self.weight.items()}

    def tokens(self, name: str, start: int, end: int, strand: str = "+") -> np.ndarray:
        genome, record = name.split("/", 1)
        return np.asarray(self.tokenizer.encode(self.genomes[genome].fetch(record, start, end, strand)),
                          dtype=np.int64)

    def record_weights(self, names, spans) -> np.ndarray:
        """A genome's weight, shared among its records in proportion to their window starts; a genome with no
        record long enough for this window length drops out and the others' weights are renormalised."""
        genome = [n.split("/", 1)[0] for n in names]
        per = {g: 0 for g in set(genome)}
        for g, s in zip(genome, spans):
            per[g] += s
        w = np.array([self.weight[g] * s / per[g] if per[g] else 0.0 for g, s in zip(genome, spans)])
        return w / w.sum()

    def extra_files(self) -> dict[str, str]:
        return {"tokenizer.json": self.tokenizer.to_json()}


__all__ = ["MultiGenomeCorpus"]

"""seqssm_toy: a domain plugin for protein sequences, written against seqssm's public plugin interface only
(seqssm.domains: DomainInputError, corpus.Corpus). It gives `seqssm classify` labelled CSV files of amino-acid
strings and a tokenizer, and `seqssm pretrain` a corpus (data.source protein)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqssm.domains import DomainInputError
from seqssm.domains.corpus import Corpus, existing_path

AMINO = "ACDEFGHIKLMNPQRSTVWY"
PAD = 0
IDS = {a: i + 1 for i, a in enumerate(AMINO)}  # 0 is padding


class ProteinInputError(DomainInputError):
    """A protein file the plugin cannot read; one line naming the file and line."""


class ProteinTokenizer:
    vocab_size = len(AMINO) + 1

    def encode(self, seq: str, where: str = "sequence") -> list[int]:
        bad = next((c for c in seq.upper() if c not in IDS), None)
        if bad is not None:
            raise ProteinInputError(f"{where}: {bad!r} is not an amino-acid code")
        return [IDS[c] for c in seq.upper()]

    def encode_batch(self, seqs: list[str]):
        """(ids (b, l), mask (b, l)), right-padded to the longest row."""
        rows = [self.encode(s, f"sequence {r}") for r, s in enumerate(seqs)]
        ids = torch.full((len(rows), max(map(len, rows))), PAD, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, row in enumerate(rows):
            ids[r, : len(row)], mask[r, : len(row)] = torch.tensor(row), 1
        return ids, mask

    def to_json(self) -> str:
        return json.dumps({"format": "seqssm-toy-protein", "alphabet": AMINO})

    @classmethod
    def from_file(cls, path) -> "ProteinTokenizer":
        if json.loads(Path(path).read_text()).get("alphabet") != AMINO:
            raise ProteinInputError(f"{path}: not a protein tokenizer")
        return cls()


class Labelled(torch.utils.data.Dataset):
    """(sequence, label id) pairs, classes in sorted order."""

    def __init__(self, sequences, labels, classes, source):
        self.sequences, self.labels, self.classes, self.source = sequences, labels, list(classes), source

    def __len__(self):
        return len(self.sequences)

    def __getitem__(self, i):
        return self.sequences[i], self.labels[i]

    @property
    def num_classes(self):
        return len(self.classes)


def _rows(path, option, sequence_column, label_column):
    p = Path(path)
    if not p.is_file():
        raise ProteinInputError(f"{option} {p}: no such file")
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        for lineno, row in enumerate(reader, start=2):
            seq = (row.get(sequence_column) or "").strip()
            ProteinTokenizer().encode(seq, f"{p}:{lineno}")
            rid = (row.get("id") or "").strip() or str(lineno)
            yield lineno, rid, seq, (row.get(label_column) or "").strip() or None


@dataclass(frozen=True)
class ProteinPlugin:
    name: str = "protein"
    description: str = "protein sequences (20 amino acids), a toy plugin"
    source: str = "protein"
    strands: bool = False
    user_errors: tuple = (ProteinInputError,)

    def tokenizer(self) -> ProteinTokenizer:
        return ProteinTokenizer()

    def load_tokenizer(self, path) -> ProteinTokenizer:
        return ProteinTokenizer.from_file(path)

    def read_labelled(self, path, option, max_length, truncation, classes=None, sequence_column="sequence",
                      label_column="label") -> Labelled:
        rows = list(_rows(path, option, sequence_column, label_column))
        raw = [label for _, _, _, label in rows]
        classes = classes or sorted(set(raw))
        index = {c: i for i, c in enumerate(classes)}
        for lineno, _, seq, label in rows:
            if label not in index:
                raise ProteinInputError(f"{path}:{lineno}: unknown label {label!r}")
            if truncation == "error" and len(seq) > max_length:
                raise ProteinInputError(f"{path}:{lineno}: longer than data.max_length {max_length}")
        return Labelled([s for _, _, s, _ in rows], [index[label] for label in raw], classes, str(path))

    def iter_records(self, path, option="--data", sequence_column="sequence", label_column="label"):
        for _, rid, seq, label in _rows(path, option, sequence_column, label_column):
            yield rid, seq, label

    def corpus(self, path, holdout, options=None) -> "ProteinCorpus":
        return ProteinCorpus(path, holdout)

    def vocab_size(self, options=None) -> int:
        return ProteinTokenizer.vocab_size


class ProteinCorpus(Corpus):
    """One text file of amino-acid letters (whitespace ignored) as one record."""

    vocab_size = ProteinTokenizer.vocab_size

    def __init__(self, path, holdout):
        self.path = existing_path(path)
        text = "".join(self.path.read_text().split())
        self.ids = np.array(ProteinTokenizer().encode(text, str(self.path)), dtype=np.int64)
        self.records = self.split({self.path.name: len(self.ids)}, holdout)

    def tokens(self, name, start, end, strand="+"):
        return self.ids[start:end]

    def extra_files(self):
        return {"tokenizer.json": ProteinTokenizer().to_json()}


plugin = ProteinPlugin()

"""Labelled sequence tables and FASTA, collation, genome windows, and train/dev duplicate checks."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from seqssm.domains.dna import DNAInputError, IndexedGenome, NucleotideTokenizer
from seqssm.domains.dna.datasets import Collate, GenomeWindows, LabelledSequences, dedup_against
from dna_helpers import DATA, needs_data


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


@pytest.mark.parametrize("name,text", [("t.csv", "sequence,label\nACGT,1\nGGa,0\r\nTTT,10\n"),
                                       ("t.tsv", "label\tsequence\n1\tACGT\n0\tGGa\n10\tTTT\n")],
                         ids=["csv_crlf", "tsv_reordered"])
def test_from_csv_maps_labels_to_contiguous_ids(tmp_path, name, text):
    ds = LabelledSequences.from_csv(_write(tmp_path, name, text))
    assert ds.classes == ["0", "1", "10"]  # numeric order, not "0" "1" "10" by accident of string sort
    assert list(ds) == [("ACGT", 1), ("GGa", 0), ("TTT", 2)]


BAD_CSV = [
    ("no_header", "ACGT,1\nGG,0\n", ":1:", "header must name"),
    ("missing_label", "sequence,label\nACGT,1\nGG\n", ":3:", "missing label"),
    ("blank_label", "sequence,label\nACGT,1\nGG, \n", ":3:", "missing label"),
    ("empty_sequence", "sequence,label\nACGT,1\n,0\n", ":3:", "empty sequence"),
    ("non_iupac", "sequence,label\nACGT,1\nACXG,0\n", ":3:", "'X' at column 3"),
    ("one_class", "sequence,label\nACGT,1\nGG,1\n", ":", "one class only ('1')"),
    ("binary", b"sequence,label\n\x00\xff\xfe,1\n", ":", "not a text file"),
]


@pytest.mark.parametrize("text,where,what", [b[1:] for b in BAD_CSV], ids=[b[0] for b in BAD_CSV])
def test_from_csv_errors_name_file_and_line(tmp_path, text, where, what):
    p = _write(tmp_path, "bad.csv", text)
    with pytest.raises(DNAInputError) as err:
        LabelledSequences.from_csv(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}{where}") and what in msg and "\n" not in msg, msg


def test_unknown_label_against_train_classes(tmp_path):
    train = LabelledSequences.from_csv(_write(tmp_path, "train.csv", "sequence,label\nAC,a\nGT,b\n"))
    with pytest.raises(DNAInputError, match=r"dev\.csv:3: unknown label 'c'"):
        LabelledSequences.from_csv(_write(tmp_path, "dev.csv", "sequence,label\nAC,a\nGG,c\n"), classes=train.classes)


def test_from_fasta_header_labels_and_side_table(tmp_path):
    fa = _write(tmp_path, "s.fa", ">s1 label=pos\nACGT\n>s2|neg\nGG\n")
    ds = LabelledSequences.from_fasta(fa)
    assert ds.classes == ["neg", "pos"] and ds.labels == [1, 0]
    plain = _write(tmp_path, "p.fa", ">s1\nACGT\n>s2\nGG\n")
    table = _write(tmp_path, "labels.tsv", "s1\t0\ns2\t1\n")
    assert LabelledSequences.from_fasta(plain, labels=table).labels == [0, 1]
    assert LabelledSequences.from_fasta(plain, labels={"s1": "x", "s2": "y"}).classes == ["x", "y"]
    with pytest.raises(DNAInputError, match=r"p\.fa: record 2 \('s2'\): missing label"):
        LabelledSequences.from_fasta(plain, labels={"s1": "x"})


def test_collate_pads_with_the_tokenizer(tmp_path):
    ds = LabelledSequences.from_csv(_write(tmp_path, "t.csv", "sequence,label\nACGT,1\nGG,0\nTTA,1\n"))
    batch = next(iter(DataLoader(ds, batch_size=3, collate_fn=Collate(NucleotideTokenizer()))))
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [7, 7, 0, 0], [8, 8, 5, 0]]
    assert batch["attention_mask"].sum(1).tolist() == [4, 2, 3]
    assert batch["labels"].tolist() == [1, 0, 1]
    soft = Collate(NucleotideTokenizer(lowercase="mask_channel"))([("Ac", 0)])
    assert soft["soft_mask"].tolist() == [[0, 1]]


def test_genome_windows_skip_mostly_n_and_are_seeded(tmp_path):
    # chr1 is half N: windows there must fall in the ACGT half; chr2 is too short for any window.
    fa = _write(tmp_path, "g.fa", ">chr1\n" + "N" * 40 + "ACGT" * 10 + "\n>chr2\nACG\n")
    with IndexedGenome(fa) as g:
        a = GenomeWindows(g, length=10, n_windows=20, max_n_fraction=0.1, seed=5)
        b = GenomeWindows(g, length=10, n_windows=20, max_n_fraction=0.1, seed=5)
        assert a.windows == b.windows and len(a) == 20
        assert all(len(w) == 10 and w.count("N") <= 1 for w in a)
        with pytest.raises(DNAInputError, match="no sequence is at least 100 bases"):
            GenomeWindows(g, length=100, n_windows=1)
        with pytest.raises(DNAInputError, match="found only 0 of 3 windows"):
            GenomeWindows(g, length=40, n_windows=3, max_n_fraction=0.0, max_tries=5)


def test_dedup_against_is_exact_and_ordered():
    rep = dedup_against(["ACGT", "GGG"], ["TTT", "acgt", "GGG", "CCC"])
    assert rep == (4, 2, [0, 3])


@needs_data
def test_real_gue_prom_core_all_has_54_dev_duplicates():
    folder = DATA / "gue" / "prom_core_all"
    train = LabelledSequences.from_csv(folder / "train.csv")
    dev = LabelledSequences.from_csv(folder / "dev.csv", classes=train.classes)
    assert (len(train), len(dev), train.classes) == (47356, 5920, ["0", "1"])
    assert dedup_against(train, dev).n_duplicates == 54


@needs_data
def test_real_genome_windows_on_d_melanogaster(tmp_path):
    with IndexedGenome(DATA / "eukaryotes_1pct" / "D.melanogaster.fa.gz", cache_dir=tmp_path) as g:
        ds = GenomeWindows(g, length=256, n_windows=8, seed=0)
        assert all(len(w) == 256 and w.upper().count("N") <= 25 for w in ds)
        ids, mask = NucleotideTokenizer().encode_batch([ds[i] for i in range(len(ds))])
        assert ids.shape == (8, 256) and bool((mask == 1).all())

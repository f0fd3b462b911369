"""The DNA plugin's labelled-sequence readers (domains/dna/labelled.py), as the classify job calls them through
the plugin: CSV, TSV with any header naming the two columns, FASTA with labels; streaming records."""

from __future__ import annotations

import pytest

from seqssm import domains
from seqssm.domains.dna import DNAInputError

DNA = domains.load("dna")


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("name, text, columns", [
    ("t.csv", "sequence,label\nACGT,a\nGGCC,b\nTTAA,a\n", ("sequence", "label")),
    ("t.tsv", "id\tClass\textra\tSeq\nx1\ta\t0\tACGT\nx2\tb\t0\tGGCC\nx3\ta\t1\tTTAA\n", ("seq", "class")),
    ("t.fa", ">x1 label=a\nACGT\n>x2 label=b\nGGCC\n>x3 label=a\nTTAA\n", ("sequence", "label")),
], ids=["csv", "tsv-named-columns", "fasta-labels"])
def test_read_labelled_formats(tmp_path, name, text, columns):
    ds = DNA.read_labelled(_write(tmp_path, name, text), "--train", 100, "error", None, *columns)
    assert ds.classes == ["a", "b"] and list(ds) == [("ACGT", 0), ("GGCC", 1), ("TTAA", 0)]
    dev = DNA.read_labelled(_write(tmp_path, "dev_" + name, text), "--val", 100, "error", ["b", "a"], *columns)
    assert [y for _, y in dev] == [1, 0, 1]  # mapped onto the training split's classes


def test_missing_named_column_and_long_rows_name_file_and_line(tmp_path):
    p = _write(tmp_path, "t.tsv", "seq\tlabel\nACGT\ta\nGG\tb\n")
    with pytest.raises(DNAInputError, match=r"t.tsv:1: the header must name the columns 'sequence' and 'label'"):
        DNA.read_labelled(p, "--train", 100, "error")
    with pytest.raises(DNAInputError, match=r"t.tsv:2: sequence of length 4 > data.max_length 3"):
        DNA.read_labelled(p, "--train", 3, "error", None, "seq", "label")
    with pytest.raises(DNAInputError, match=r"--train .*nope.csv: no such file"):
        DNA.read_labelled(tmp_path / "nope.csv", "--train", 3, "error")


def test_iter_records_streams_ids_sequences_and_optional_labels(tmp_path):
    p = _write(tmp_path, "t.tsv", "name\tSeq\nr1\tACGT\nr2\tGG\n")
    assert list(DNA.iter_records(p, "--data", "seq")) == [("r1", "ACGT", None), ("r2", "GG", None)]
    fa = _write(tmp_path, "t.fa", ">r1 label=x\nACGT\n>r2\nGG\n")
    assert list(DNA.iter_records(fa)) == [("r1", "ACGT", "x"), ("r2", "GG", None)]
    with pytest.raises(DNAInputError, match=r"t.csv:3: "):
        list(DNA.iter_records(_write(tmp_path, "t.csv", "sequence\nACGT\nAC!T\n")))


def test_the_plugins_expose_their_data_and_sources():
    assert {"audio", "bytes", "fasta"} <= set(domains.sources())
    assert domains.by_source("fasta") is DNA and DNA.strands
    assert domains.by_source("bytes").vocab_size() == 256 and not domains.by_source("bytes").strands
    with pytest.raises(ValueError, match=r"data source 'nope': no installed domain reads it; known: .*fasta"):
        domains.by_source("nope")

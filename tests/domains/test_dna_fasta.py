"""FASTA and BED reading: streaming records, one-line errors naming file and line, random access, strands."""

from __future__ import annotations

import gzip

import pytest

from seqssm.domains.dna import DNAInputError, IndexedGenome, read_bed, read_fasta, reverse_complement
from dna_helpers import DATA, needs_data

GOOD = ">chr1 first record\nACGTacgtNN\nRYKM\n>chr2\nGGGCCC\n"


def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return p


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_read_fasta_streams_records(tmp_path, newline, compress):
    data = GOOD.replace("\n", newline).encode()
    p = _write(tmp_path, "g.fa.gz" if compress else "g.fa", gzip.compress(data) if compress else data)
    recs = list(read_fasta(p))
    assert [(r.name, r.description, r.sequence) for r in recs] == [
        ("chr1", "chr1 first record", "ACGTacgtNNRYKM"),
        ("chr2", "chr2", "GGGCCC"),
    ]


BAD_FASTA = [
    ("no_header", b"ACGT\n>r\nAC\n", ":1:", "before the first FASTA header"),
    ("empty_record_middle", b">a\nAC\n>b\n>c\nGG\n", ":3:", "record 'b' has no sequence"),
    ("empty_record_last", b">a\nAC\n>z\n", ":3:", "record 'z' has no sequence"),
    ("empty_file", b"", ":", "no FASTA records"),
    ("empty_header", b">\nAC\n", ":1:", "empty FASTA header"),
    ("binary_junk", b">a\nAC\n\x00\x01\xff\xfe\n", ":3:", "not a text file"),
    ("control_bytes", b">a\nAC\x00GT\n", ":2:", "not a text file"),
    ("non_iupac", b">a\nACGT\nACXT\n", ":3:", "'X' at column 3 is not an IUPAC"),
    ("rna_u", b">a\nACGU\n", ":2:", "'U' at column 4 is not an IUPAC"),
    ("gap_dash", b">a\nAC-GT\n", ":2:", "'-' at column 3 is not an IUPAC"),
]


@pytest.mark.parametrize("data,where,what", [b[1:] for b in BAD_FASTA], ids=[b[0] for b in BAD_FASTA])
def test_read_fasta_errors_are_one_line_naming_file_and_line(tmp_path, data, where, what):
    p = _write(tmp_path, "bad.fa", data)
    with pytest.raises(DNAInputError) as err:
        list(read_fasta(p))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{p}{where}"), msg
    assert what in msg


def test_read_fasta_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.fa"):
        list(read_fasta(tmp_path / "nope.fa"))


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "plain_gzip"])
def test_indexed_genome_fetch_strands(tmp_path, compress):
    text = ">chr1\nACGTACGTAA\nCCGGTTAAGG\nAT\n>chr2\nttttGGGG\n"  # fixed line width, as faidx requires
    data = gzip.compress(text.encode()) if compress else text.encode()
    p = _write(tmp_path, "g.fa.gz" if compress else "g.fa", data)
    with IndexedGenome(p, cache_dir=tmp_path / "cache") as g:
        assert g.lengths == {"chr1": 22, "chr2": 8}
        assert g.fetch("chr1", 0, 3) == "ACG"
        assert g.fetch("chr1", 8, 12) == "AACC"  # across a line break
        assert g.fetch("chr1", 20, 22) == "AT"
        assert g.fetch("chr1", 8, 12, "-") == "GGTT"
        assert g.fetch("chr2", 2, 6) == "ttGG"  # soft-masking kept
    cached = sorted(c.name for c in (tmp_path / "cache" / "genomes").iterdir())
    # gzip: a plain copy and its .fai; plain: the .fai only; never a temporary file, never a file beside the input
    assert [c.split(".", 1)[1] for c in cached] == (["fa", "fa.fai"] if compress else ["fai"])
    assert sorted(x.name for x in tmp_path.iterdir()) == ["cache", p.name]


@pytest.mark.parametrize(
    "args,what",
    [(("chrX", 0, 1), "no sequence named 'chrX'"), (("chr1", 5, 5), "outside"), (("chr1", 0, 99), "outside"),
     (("chr1", -1, 2), "outside"), (("chr1", 0, 2, "*"), "strand")],
    ids=["unknown_chrom", "empty", "past_end", "negative", "bad_strand"],
)
def test_indexed_genome_fetch_errors(tmp_path, args, what):
    p = _write(tmp_path, "g.fa", ">chr1\nACGTACGT\n")
    with IndexedGenome(p) as g, pytest.raises(DNAInputError, match=what) as err:
        g.fetch(*args)
    assert str(p) in str(err.value)


def test_bed_intervals_to_sequences(tmp_path):
    g = _write(tmp_path, "g.fa", ">chr1\nAACCGGTTAC\n")
    bed = _write(tmp_path, "r.bed", "track name=x\n# comment\nchr1\t0\t4\tfirst\t0\t+\r\nchr1\t2\t6\tsecond\t0\t-\n"
                                    "chr1\t6\t10\n")
    assert list(read_bed(bed))[2] == ("chr1", 6, 10, "chr1:6-10", "+")
    with IndexedGenome(g) as genome:
        got = [(iv.name, seq) for iv, seq in genome.fetch_bed(bed)]
    assert got == [("first", "AACC"), ("second", reverse_complement("CCGG")), ("chr1:6-10", "TTAC")]


@pytest.mark.parametrize(
    "line,what",
    [("chr1\t0\n", "at least 3 columns"), ("chr1\tx\t4\n", "integers"), ("chr1\t5\t4\n", "start < end"),
     ("chr1\t0\t4\tn\t0\t?\n", "strand")],
    ids=["two_columns", "not_int", "reversed", "bad_strand"],
)
def test_bed_errors_name_file_and_line(tmp_path, line, what):
    bed = _write(tmp_path, "r.bed", "chr1\t0\t4\n" + line)
    with pytest.raises(DNAInputError, match=what) as err:
        list(read_bed(bed))
    assert str(err.value).startswith(f"{bed}:2:")


@needs_data
def test_real_ecoli_plain_gzip_is_cached_and_indexed(tmp_path):
    with IndexedGenome(DATA / "ecoli_k12_mg1655.fna.gz", cache_dir=tmp_path) as g:
        (name, n), = g.lengths.items()
        assert name.startswith("NC_000913") and n == 4_641_652
        assert g.fetch(name, 0, 12) == "AGCTTTTCATTC"  # the published start of the K-12 MG1655 sequence
        assert g.fetch(name, 0, 12, "-") == reverse_complement("AGCTTTTCATTC")


@needs_data
def test_real_eukaryote_slices_with_n_and_iupac():
    recs = list(read_fasta(DATA / "eukaryotes_1pct" / "A.thaliana.fa.gz"))
    assert len(recs) == 7
    joined = "".join(r.sequence for r in recs).upper()
    assert joined.count("N") == 2220 and set("YKS") <= set(joined)

"""The DNA readers on the inputs users actually have (issue 15): million-base table rows, TSVs with any header,
duplicate and empty FASTA records, non-IUPAC text in plain, gzip and bgzip files, ragged lines, and the genome
cache (content-keyed, reused, bounded, movable, never beside the input)."""

from __future__ import annotations

import csv
import gzip
import os

import pytest

from seqssm.domains.dna import DNAInputError, IndexedGenome, LabelledSequences, read_bed, read_fasta
from seqssm.domains.dna import genome_cache as gc
from seqssm.domains.dna.fasta import check_fasta
from seqssm.domains.dna.tables import read_sequence_table

MEGA = 1_000_000


def _mega(seed: int = 0) -> str:
    import random

    rng = random.Random(seed)
    return "".join(rng.choice("ACGTacgtN") for _ in range(MEGA))


def _snapshot(folder):
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


# ------------------------------------------------------------------------------------------------ tables


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_million_base_row_is_read(tmp_path, suffix):
    big = _mega()
    sep = "\t" if suffix == ".tsv" else ","
    p = tmp_path / f"long{suffix}"
    p.write_text(f"sequence{sep}label\nACGT{sep}0\n{big}{sep}1\n")
    limit = csv.field_size_limit()
    ds = LabelledSequences.from_csv(p)
    assert [len(s) for s in ds.sequences] == [4, MEGA] and ds.classes == ["0", "1"]
    assert csv.field_size_limit() == limit  # the module-wide limit is put back


def test_tsv_with_any_header_order_bom_crlf_quotes_and_ids(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_bytes("\ufeffName\tLABEL\tExtra\tSequence\r\nr1\tb\tx\tacgtNN\r\n\r\nr2\ta\t\"q\"\tGGCC\r\n".encode())
    rows = list(read_sequence_table(p, True))
    assert [(r.line, r.id, r.sequence, r.label) for r in rows] == [(2, "r1", "acgtNN", "b"), (4, "r2", "GGCC", "a")]
    assert LabelledSequences.from_csv(p).classes == ["a", "b"]


TABLE_ERRORS = [
    ("label_column_typo", "sequence,lable\nACGT,0\n", ":1:", "must name the columns 'sequence' and 'label'"),
    ("header_only", "sequence,label\n", ":", "no sequences (only a header)"),
    ("empty_file", "", ":1:", "empty file"),
    ("duplicate_id", "id,sequence,label\na,ACGT,0\nb,ACGT,1\na,GG,0\n", ":4:", "'a' used twice (first at line 2)"),
    ("not_iupac", "sequence,label\nACGT,0\nACZT,1\n", ":3:", "'Z' at column 3"),
    ("missing_label", "sequence,label\nACGT,0\nACGT\n", ":3:", "missing label"),
    ("nul_byte", "sequence,label\nAC\x00GT,0\n", ":2:", "NUL"),
]


@pytest.mark.parametrize("text,where,what", [c[1:] for c in TABLE_ERRORS], ids=[c[0] for c in TABLE_ERRORS])
def test_table_errors_name_file_and_line(tmp_path, text, where, what):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(DNAInputError) as err:
        list(read_sequence_table(p, True))
    msg = str(err.value)
    assert msg.startswith(f"{p}{where}") and what in msg and "\n" not in msg, msg


def test_table_not_utf8_names_the_line(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_bytes(b"sequence,label\nACGT,0\nAC\xffGT,1\n")
    with pytest.raises(DNAInputError, match=r"bad.csv:3: not a text file"):
        list(read_sequence_table(p, True))


# ------------------------------------------------------------------------------------------------- FASTA


def _bgzip(data: bytes, path):
    from Bio import bgzf

    with bgzf.BgzfWriter(str(path), "wb") as fh:
        fh.write(data)
    return path


def _write(tmp_path, name, data: bytes):
    p = tmp_path / name
    if name.endswith(".bgz.fa.gz"):
        return _bgzip(data, p)
    p.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return p


FASTA_ERRORS = [
    ("duplicate_id", b">a\nACGT\n>b\nGG\n>a\nTT\n", ":5:", "record name 'a' used twice (first at line 1)"),
    ("empty_record", b">a\nACGT\n>b\n>c\nGG\n", ":3:", "record 'b' has no sequence"),
    ("not_iupac", b">a\nACGT\nACXT\n", ":3:", "'X' at column 3 is not an IUPAC"),
    ("utf16", "\ufeff>a\nACGT\n".encode("utf-16"), ":1:", "not a text file"),
]
KINDS = ["g.fa", "g.fa.gz", "g.bgz.fa.gz"]


@pytest.mark.parametrize("kind", KINDS, ids=["plain", "gzip", "bgzip"])
@pytest.mark.parametrize("data,where,what", [c[1:] for c in FASTA_ERRORS], ids=[c[0] for c in FASTA_ERRORS])
def test_fasta_errors_are_the_same_for_every_reader_and_compression(tmp_path, kind, data, where, what):
    p = _write(tmp_path, kind, data)
    before = _snapshot(tmp_path)
    for read in (lambda: list(read_fasta(p)), lambda: check_fasta(p),
                 lambda: IndexedGenome(p, cache_dir=tmp_path / "cache")):
        with pytest.raises(DNAInputError) as err:
            read()
        msg = str(err.value)
        assert msg.startswith(f"{p}{where}") and what in msg and "\n" not in msg, msg
    after = _snapshot(tmp_path)
    after.pop("cache", None)
    assert after == before
    cache = tmp_path / "cache" / "genomes"
    assert not cache.exists() or not [c for c in cache.iterdir() if not c.name.startswith(".probe")]


GOOD_TEXT = (">Chr1 mixed Case header\r\nACGTNNNNNNNNNNacgtacgtNN\r\nacgtRYKMacgtacgtacgtACGT\r\nACG\r\n"
             ">chr1\r\n" + "A" * 5000 + "\r\n")  # CRLF, soft-masking, N runs, names differing by case, a long line


@pytest.mark.parametrize("kind", KINDS, ids=["plain", "gzip", "bgzip"])
def test_edge_cases_users_have_are_read_and_indexed(tmp_path, kind):
    p = _write(tmp_path, kind, GOOD_TEXT.encode())
    recs = list(read_fasta(p))
    assert [(r.name, len(r.sequence)) for r in recs] == [("Chr1", 51), ("chr1", 5000)]
    before = _snapshot(tmp_path)
    with IndexedGenome(p, cache_dir=tmp_path / "cache") as g:
        assert g.lengths == {"Chr1": 51, "chr1": 5000}
        assert g.fetch("Chr1", 20, 30) == recs[0].sequence[20:30] == "gtNNacgtRY"  # across a CRLF line end
        assert g.fetch("Chr1", 45, 51) == "CGTACG"
    after = _snapshot(tmp_path)
    after.pop("cache")
    assert after == before  # no .fai, .gzi or copy beside the input


def test_one_million_bases_on_one_line(tmp_path):
    big = _mega(1)
    p = _write(tmp_path, "one.fa", f">one\n{big}\n".encode())
    assert [len(r.sequence) for r in read_fasta(p)] == [MEGA]
    with IndexedGenome(p, cache_dir=tmp_path / "cache") as g:
        assert g.fetch("one", MEGA - 10, MEGA) == big[-10:]


def test_ragged_lines_get_a_plain_copy_in_the_cache(tmp_path):
    p = _write(tmp_path, "r.fa", b">a\nACG\nACGTT\nA\n\n\n>b\nACGT  \n")
    with IndexedGenome(p, cache_dir=tmp_path / "c") as g:
        assert g.fetch("a", 0, 9) == "ACGACGTTA" and g.fetch("b", 0, 4) == "ACGT"
        assert g.path.parent == tmp_path / "c" / "genomes"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["c", "r.fa"]


# ------------------------------------------------------------------------------------------------- cache


def test_cache_is_keyed_by_content_reused_and_moved_by_env(tmp_path, monkeypatch):
    monkeypatch.setenv(gc.ENV_DIR, str(tmp_path / "envcache"))
    data = gzip.compress(b">a\nACGTACGT\n")
    a, b = tmp_path / "a.fa.gz", tmp_path / "copy_of_a.fa.gz"
    a.write_bytes(data)
    b.write_bytes(data)
    st = a.stat()
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns))
    IndexedGenome(a).close()
    IndexedGenome(b).close()  # same size, time and head: the same entry
    entries = sorted(p.name for p in (tmp_path / "envcache" / "genomes").iterdir())
    assert [e.split(".", 1)[1] for e in entries] == ["fa", "fa.fai"]
    a.write_bytes(gzip.compress(b">a\nTTTTACGT\n"))  # edited: a new entry, never the stale one
    with IndexedGenome(a) as g:
        assert g.fetch("a", 0, 4) == "TTTT"


def test_cache_is_bounded_least_recently_used_first(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    files = []
    for i in range(3):
        p = tmp_path / f"g{i}.fa.gz"
        p.write_bytes(gzip.compress(b">a\n" + b"ACGT" * 2000 + b"\n"))  # ~8 kB decompressed each
        os.utime(p, ns=(i, i))  # different content keys
        files.append(p)
    monkeypatch.setenv(gc.ENV_MAX_GB, str(20_000 / (1 << 30)))  # room for two entries
    for i, p in enumerate(files):
        IndexedGenome(p, cache_dir=cache).close()
        if i == 0:
            IndexedGenome(files[0], cache_dir=cache).close()
    keys = {gc.content_key(p): p.name for p in files}
    left = {n.split(".", 1)[0] for n in os.listdir(cache / "genomes")}
    assert {keys[k] for k in left} == {"g1.fa.gz", "g2.fa.gz"}  # g0, the least recently used, went first
    monkeypatch.setenv(gc.ENV_MAX_GB, "1e-9")  # smaller than one entry: the one in use stays
    IndexedGenome(files[0], cache_dir=cache).close()
    assert {n.split(".", 1)[0] for n in os.listdir(cache / "genomes")} == {gc.content_key(files[0])}


def test_unwritable_cache_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    p = _write(tmp_path, "g.fa", b">a\nACGT\n")
    with pytest.raises(DNAInputError, match="genome cache is not writable"):
        IndexedGenome(p, cache_dir=tmp_path / "file")


# --------------------------------------------------------------------------------------------------- BED


@pytest.mark.parametrize("data,what", [(b"chr1\t0\t4\nchr1\t\xff\t4\n", "not UTF-8"),
                                       (b"chr1\t0\t4\nchr1\t0\x00\t4\n", "control bytes")],
                         ids=["not_utf8", "nul"])
def test_bed_binary_lines_name_the_line(tmp_path, data, what):
    p = tmp_path / "r.bed"
    p.write_bytes(data)
    with pytest.raises(DNAInputError, match=what) as err:
        list(read_bed(p))
    assert str(err.value).startswith(f"{p}:2:")

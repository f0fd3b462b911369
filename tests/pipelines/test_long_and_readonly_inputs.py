"""Issue 15's must-show cases: a 1,000,000-base sequence in a CSV row and in a TSV row is read, classified and
predicted; `pretrain` and `classify predict` on a FASTA in a read-only folder succeed and write nothing there."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from classify_helpers import TINY_CLS, make_rows
from corpus_helpers import MEGA, mega_sequence, snapshot, write
from seqssm.pipelines.cli import main as _main
from test_bad_input_corpus import PRE_TINY, sets

CLS = TINY_CLS[:-5] + ["train.max_steps=2", "train.val_every=2", "train.log_every=1", "train.progress_bar=false",
                       "train.threads=1"]


def main(args) -> int:
    return _main([str(a) for a in args])


def _tables(folder: Path) -> tuple[Path, Path]:
    """The same labelled rows, one of them a million bases long, as CSV and as TSV (other column order)."""
    rows = make_rows(12) + [(mega_sequence(), "1")]
    csv = write(folder, "long.csv", "sequence,label\n" + "".join(f"{s},{y}\n" for s, y in rows))
    tsv = write(folder, "long.tsv", "label\tid\tsequence\n" + "".join(f"{y}\tr{i}\t{s}\n" for i, (s, y) in
                                                                       enumerate(rows)))
    return csv, tsv


def test_million_base_rows_are_read_classified_and_predicted(tmp_path, capsys):
    """Train on the CSV, select on the TSV, evaluate and predict both: the model reads the first data.max_length
    bases of the long row (truncation right), the readers the whole row."""
    csv, tsv = _tables(tmp_path / "in")
    before = snapshot(csv.parent)
    run = tmp_path / "run"
    assert main(["classify", "train", "--train", csv, "--val", tsv, "--out", run,
                 *sets(CLS + ["data.max_length=512", "data.truncation=right"])]) == 0
    assert json.loads((run / "metrics.json").read_text())["n_train"] == 13
    for data in (csv, tsv):
        out = tmp_path / f"{data.suffix[1:]}"
        assert main(["classify", "eval", "--model", run, "--data", data, "--out", f"{out}.json"]) == 0
        assert json.loads(Path(f"{out}.json").read_text())["n"] == 13
        assert main(["classify", "predict", "--model", run, "--data", data, "--out", f"{out}.tsv"]) == 0
        rows = Path(f"{out}.tsv").read_text().splitlines()
        assert len(rows) == 14 and rows[-1].split("\t")[0] == ("r12" if data == tsv else "14")
    assert snapshot(csv.parent) == before


@pytest.mark.slow
def test_million_base_row_is_predicted_at_full_length(tmp_path, capsys):
    """A classifier with data.max_length 1,000,000 reads the whole row (the scan over a million positions takes
    tens of seconds on one shared CPU thread)."""
    _, tsv = _tables(tmp_path / "in")
    short = write(tmp_path, "short.csv", "sequence,label\n" + "".join(f"{s},{y}\n" for s, y in make_rows(12)))
    run = tmp_path / "run"
    assert main(["classify", "train", "--train", short, "--val", short, "--out", run,
                 *sets(CLS + [f"data.max_length={MEGA}", "data.truncation=error", "model.scan_backend=auto"])]) == 0
    # batch size 1: predict pads a batch to its longest row, so the short rows would each cost a million positions
    assert main(["classify", "predict", "--model", run, "--data", tsv, "--out", tmp_path / "p.tsv",
                 "--no-rc-conjoin", "--batch-size", "1"]) == 0
    rows = (tmp_path / "p.tsv").read_text().splitlines()
    assert len(rows) == 14 and rows[-1].startswith("r12\t")


def _read_only(folder: Path):
    for p in folder.iterdir():
        p.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)


@pytest.mark.parametrize("name", ["ref.fa", "ref.fa.gz"])
def test_fasta_in_a_read_only_folder(name, tmp_path, capsys):
    """pretrain and classify predict succeed and leave the folder as it was (no .fai, .gzi or copy beside it).
    The tests run as root, where the mode bits stop no write: the snapshot of the folder is what shows it."""
    import gzip

    seq = mega_sequence(1)[:20000].upper()
    text = ">chrA label=1\n" + "\n".join(seq[i:i + 60] for i in range(0, len(seq), 60)) + "\n>chrB label=0\nACGTAC\n"
    ref = write(tmp_path / "shared", name, gzip.compress(text.encode()) if name.endswith(".gz") else text)
    _read_only(ref.parent)
    before = snapshot(ref.parent)
    try:
        assert main(["pretrain", "--data", ref, "--out", tmp_path / "pre", *sets(PRE_TINY)]) == 0
        cls = write(tmp_path, "t.csv", "sequence,label\n" + "".join(f"{s},{y}\n" for s, y in make_rows(16)))
        assert main(["classify", "train", "--train", cls, "--val", cls, "--out", tmp_path / "run", *sets(CLS)]) == 0
        assert main(["classify", "predict", "--model", tmp_path / "run", "--data", ref, "--out",
                     tmp_path / "p.tsv"]) == 2  # the run refuses chrA: 20,000 bases > its data.max_length
        assert "max_length 512" in capsys.readouterr().err
        assert main(["classify", "train", "--train", cls, "--val", cls, "--out", tmp_path / "run2",
                     *sets(CLS + ["data.max_length=64", "data.truncation=left"])]) == 0
        assert main(["classify", "predict", "--model", tmp_path / "run2", "--data", ref, "--out",
                     tmp_path / "p.tsv"]) == 0
        assert [r.split("\t")[0] for r in (tmp_path / "p.tsv").read_text().splitlines()[1:]] == ["chrA", "chrB"]
        assert snapshot(ref.parent) == before
        if os.geteuid() != 0:  # where the mode bits hold, a write there would have failed outright
            assert not os.access(ref.parent, os.W_OK)
    finally:
        ref.parent.chmod(0o755)


def test_genome_cache_moves_with_the_option_and_info_names_it(tmp_path, monkeypatch, capsys):
    """--cache-dir (then $SEQSSM_CACHE) places the genome cache; `seqssm info` says where it is and its bound."""
    import gzip

    ref = write(tmp_path / "in", "g.fa.gz", gzip.compress((">a\n" + mega_sequence(2)[:5000] + "\n").encode()))
    assert main(["pretrain", "--data", ref, "--out", tmp_path / "pre", "--cache-dir", tmp_path / "mycache",
                 *sets(PRE_TINY)]) == 0
    assert sorted(p.suffix for p in (tmp_path / "mycache" / "genomes").iterdir()) == [".fa", ".fai"]
    monkeypatch.setenv("SEQSSM_CACHE", str(tmp_path / "mycache"))
    monkeypatch.setenv("SEQSSM_CACHE_MAX_GB", "3")
    capsys.readouterr()
    assert main(["info"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("genome cache"))
    assert str(tmp_path / "mycache" / "genomes") in line and "bound 3 GiB" in line

"""Bad DNA input to `seqssm classify`: one line naming the file and line or record, exit 2, no output left."""

from __future__ import annotations

import pytest

from classify_helpers import TINY_CLS, make_rows, write_csv, write_fasta
from seqssm.pipelines.cli import main

GOOD = make_rows(16, seed=0)


def _expect_user_error(capsys, args, *needles):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("seqssm: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err
    return err


def _train_args(tmp_path, train, val=None, extra=()):
    val = val or write_csv(tmp_path / "dev_ok.csv", GOOD)
    args = ["classify", "train", "--train", str(train), "--val", str(val), "--out", str(tmp_path / "run")]
    for kv in list(TINY_CLS) + list(extra):
        args += ["--set", kv]
    return args


BAD_TRAIN = {
    "fasta_no_header": ("x.fa", b"ACGTACGT\n>r label=1\nACGT\n", "x.fa:1"),
    "fasta_empty_record": ("x.fa", b">a label=0\n>b label=1\nACGT\n", "x.fa:1"),
    "fasta_binary": ("x.fa", b">a label=0\nAC\x00\x01\x02GT\n", "x.fa:2"),
    "fasta_not_iupac": ("x.fa", b">a label=0\nACGT\n>b label=1\nACXGT\n", "x.fa:4"),
    "csv_missing_label": ("x.csv", b"sequence,label\nACGT,0\nACGT,\n", "x.csv:3"),
    "csv_empty_sequence": ("x.csv", b"sequence,label\nACGT,0\n,1\n", "x.csv:3"),
    "csv_not_iupac": ("x.csv", b"sequence,label\nACGT,0\nAC-GT,1\n", "x.csv:3"),
    "csv_binary": ("x.csv", b"sequence,label\n\xff\xfe\x00junk,0\n", "x.csv"),
    "csv_one_class": ("x.csv", b"sequence,label\nACGT,1\nGGCA,1\n", "one class"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRAIN))
def test_bad_training_file(case, tmp_path, capsys):
    name, data, needle = BAD_TRAIN[case]
    p = tmp_path / name
    p.write_bytes(data)
    _expect_user_error(capsys, _train_args(tmp_path, p), needle)
    assert not (tmp_path / "run").exists()


def test_unknown_label_in_dev_names_the_line(tmp_path, capsys):
    dev = tmp_path / "dev.csv"
    dev.write_text("sequence,label\nACGT,0\nACGT,1\nACGT,7\n")
    _expect_user_error(capsys, _train_args(tmp_path, write_csv(tmp_path / "t.csv", GOOD), dev), "dev.csv:4", "'7'")
    assert not (tmp_path / "run").exists()


def test_too_long_with_truncation_error_names_the_line(tmp_path, capsys):
    p = tmp_path / "t.csv"  # the blank line counts: the long row is on line 5
    p.write_text("sequence,label\nACGT,0\nACGTA,1\n\nACGTACGTAC,1\n")
    _expect_user_error(capsys, _train_args(tmp_path, p, extra=["data.max_length=8"]), "t.csv:5", "max_length 8")
    fa = write_fasta(tmp_path / "t.fa", [("ACGT", "0"), ("ACGTACGTAC", "1")])
    _expect_user_error(capsys, _train_args(tmp_path, fa, extra=["data.max_length=8"]), "t.fa: record 2")
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("clserr")
    args = _train_args(d, write_csv(d / "t.csv", GOOD), extra=["train.max_steps=2", "train.val_every=2"])
    assert main(args) == 0
    return d / "run"


@pytest.mark.parametrize("case", ["fasta_no_header", "fasta_empty_record", "fasta_binary", "fasta_not_iupac",
                                  "csv_empty_sequence", "csv_not_iupac", "csv_binary"])
def test_predict_and_embed_refuse_bad_input_and_leave_no_file(case, run, tmp_path, capsys):
    name, data, needle = BAD_TRAIN[case]
    # a good first batch, so the error comes after some rows were already written to the temporary file
    good = "".join(f">g{i}\nACGTACGT\n" for i in range(5)).encode() if name.endswith(".fa") else b""
    p = tmp_path / name
    p.write_bytes(data if not good or case == "fasta_no_header" else good + data)
    for action, out in (("predict", "p.tsv"), ("embed", "e.npy")):
        _expect_user_error(capsys, ["classify", action, "--model", str(run), "--data", str(p),
                                    "--out", str(tmp_path / out), "--batch-size", "2"], name)
        assert sorted(x.name for x in tmp_path.iterdir()) == [name]


def test_eval_refuses_unknown_label_and_missing_run(run, tmp_path, capsys):
    p = tmp_path / "d.csv"
    p.write_text("sequence,label\nACGT,0\nACGT,2\n")
    _expect_user_error(capsys, ["classify", "eval", "--model", str(run), "--data", str(p)], "d.csv:3", "unknown label")
    _expect_user_error(capsys, ["classify", "eval", "--model", str(tmp_path), "--data", str(p)], "not a run folder")


def test_bad_config_values(tmp_path, capsys):
    t = write_csv(tmp_path / "t.csv", GOOD)
    _expect_user_error(capsys, _train_args(tmp_path, t, extra=["data.truncation=middle"]), "data.truncation")
    _expect_user_error(capsys, _train_args(tmp_path, t, extra=["train.monitor=val_foo"]), "train.monitor")
    _expect_user_error(capsys, ["classify", "train", "--val", t, "--out", str(tmp_path / "r")], "--train")


def test_non_empty_run_folder_is_refused_without_overwrite(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    _expect_user_error(capsys, _train_args(tmp_path, write_csv(tmp_path / "t.csv", GOOD)), "--out", "not empty")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["notes.txt"]

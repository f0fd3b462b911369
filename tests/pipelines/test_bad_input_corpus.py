"""Issue 15's bad-input corpus through every command that reads each kind of input: a refused file ends with exit
status 2 and one line `seqssm: error: <file>:<line>: ...` (no traceback), leaves no output and leaves the input
folder exactly as it was; an accepted one runs. Commands run in-process (main()), as the console script does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classify_helpers import TINY_CLS, make_rows, write_csv
from corpus_helpers import CSV, CSV_LABELLED, FASTA, GOOD_FASTA, GOOD_TSV, YAML, snapshot, wav_cases, write
from seqssm.pipelines.cli import main

PRE_TINY = ["model.d_model=8", "model.n_layer=1", "model.ssm.d_state=4", "schedule.tokens_per_batch=64",
            "schedule.stages=[{seq_len: 32, steps: 2}]", "train.progress_bar=false", "train.warmup_steps=1",
            "train.threads=1", "data.eval_segment=256", "data.eval_context=16", "data.eval_max_tokens=64",
            "train.val_every=100", "train.tensorboard=false"]
CLS_RUN = TINY_CLS[:-5] + ["train.max_steps=2", "train.val_every=2", "train.log_every=1", "train.progress_bar=false",
                            "train.threads=1", "data.max_length=256", "data.truncation=right"]
AUDIO_TINY = ["model.d_model=8", "model.n_layer=1", "model.ssm.d_state=4", "data.crop_len=64", "data.batch_size=2",
              "data.eval_batch_size=4", "train.max_steps=2", "train.val_every=2", "train.warmup_steps=1",
              "train.progress_bar=false", "train.threads=1", "data.split=files", "data.test_fraction=0.3",
              "data.val_fraction=0.3"]


def sets(kvs) -> list[str]:
    return [x for kv in kvs for x in ("--set", kv)]


def refused(capsys, args, inp: Path, outputs, *needles: str) -> None:
    before = snapshot(inp.parent)
    capsys.readouterr()  # what earlier commands printed
    status = main([str(a) for a in args])
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("seqssm: error: "), (args[:2], cap.err)
    for needle in needles:
        assert needle in lines[0], (args[:2], lines[0])
    assert "Traceback" not in cap.err + cap.out
    for o in outputs:
        assert not Path(o).exists(), (args[:2], o)
    assert snapshot(inp.parent) == before, args[:2]


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clsrun")
    good = write_csv(d / "good.csv", make_rows(16))
    assert main(["classify", "train", "--train", good, "--val", good, "--out", str(d / "run"), *sets(CLS_RUN)]) == 0
    return d / "run"


def fasta_commands(p: Path, out: Path, run: Path, good_csv: str) -> dict[str, tuple[list, list]]:
    """command -> (argv, outputs it would write), for every command that reads a FASTA."""
    out.mkdir(parents=True, exist_ok=True)
    return {
        "pretrain": (["pretrain", "--data", p, "--out", out / "pre", *sets(PRE_TINY)], [out / "pre"]),
        "classify train": (["classify", "train", "--train", p, "--val", good_csv, "--out", out / "cls",
                            *sets(CLS_RUN)], [out / "cls"]),
        "classify eval": (["classify", "eval", "--model", run, "--data", p, "--out", out / "m.json"], [out / "m.json"]),
        "classify predict": (["classify", "predict", "--model", run, "--data", p, "--out", out / "p.tsv"],
                             [out / "p.tsv"]),
        "classify embed": (["classify", "embed", "--model", run, "--data", p, "--out", out / "e.npy"], [out / "e.npy"]),
        "baseline markov": (["baseline", "markov", "--fasta", p, "--max-order", "2", "--out", out / "mk.json"],
                            [out / "mk.json"]),
    }


@pytest.mark.parametrize("case", sorted(FASTA))
def test_bad_fasta_through_every_command(case, cls_run, tmp_path, capsys):
    name, data, needle = FASTA[case]
    p = write(tmp_path / "in", name, data)
    good = write_csv(tmp_path / "good.csv", make_rows(16))
    for cmd, (args, outs) in fasta_commands(p, tmp_path / "out", cls_run, good).items():
        refused(capsys, args, p, outs, needle)


def test_fasta_users_have_through_every_command(cls_run, tmp_path, capsys):
    """Windows line ends, soft-masked bases, N runs, names differing only by case, an 8,000-base line."""
    p = write(tmp_path / "in", "edge.fa", GOOD_FASTA)
    good = write_csv(tmp_path / "good.csv", make_rows(16))
    before = snapshot(p.parent)
    for cmd, (args, outs) in fasta_commands(p, tmp_path / "out", cls_run, good).items():
        assert main([str(a) for a in args]) == 0, cmd
        assert all(Path(o).exists() for o in outs), cmd
    assert snapshot(p.parent) == before
    rows = (tmp_path / "out" / "p.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in rows[1:]] == ["Chr1", "chr1", "chr2"]


def table_commands(p: Path, out: Path, run: Path, good_csv: str, labelled: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cmds = {
        "classify predict": (["classify", "predict", "--model", run, "--data", p, "--out", out / "p.tsv"],
                             [out / "p.tsv"]),
        "classify embed": (["classify", "embed", "--model", run, "--data", p, "--out", out / "e.npy"], [out / "e.npy"]),
    }
    labelled_cmds = {
        "classify train": (["classify", "train", "--train", p, "--val", good_csv, "--out", out / "cls",
                            *sets(CLS_RUN)], [out / "cls"]),
        "classify train --val": (["classify", "train", "--train", good_csv, "--val", p, "--out", out / "cls2",
                                  *sets(CLS_RUN)], [out / "cls2"]),
        "classify eval": (["classify", "eval", "--model", run, "--data", p, "--out", out / "m.json"], [out / "m.json"]),
    }
    return labelled_cmds if labelled else {**cmds, **labelled_cmds}


@pytest.mark.parametrize("case", sorted(CSV) + sorted(CSV_LABELLED))
def test_bad_table_through_every_command(case, cls_run, tmp_path, capsys):
    labelled = case in CSV_LABELLED
    name, data, needle = (CSV_LABELLED if labelled else CSV)[case]
    p = write(tmp_path / "in", name, data)
    good = write_csv(tmp_path / "good.csv", make_rows(16))
    for cmd, (args, outs) in table_commands(p, tmp_path / "out", cls_run, good, labelled).items():
        refused(capsys, args, p, outs, needle)


def test_label_typo_in_dev_and_eval_names_the_line(cls_run, tmp_path, capsys):
    p = write(tmp_path / "in", "typo.csv", "sequence,label\nACGT,0\nGGCC,1\nTTAA,l\n")  # l for 1
    good = write_csv(tmp_path / "good.csv", make_rows(16))
    for cmd, (args, outs) in table_commands(p, tmp_path / "out", cls_run, good, True).items():
        if cmd != "classify train":  # in a training file, 'l' is a third class: nothing to compare it with
            refused(capsys, args, p, outs, "typo.csv:4: unknown label 'l'")


def test_tsv_users_have_through_every_command(cls_run, tmp_path, capsys):
    p = write(tmp_path / "in", "edge.tsv", GOOD_TSV)
    good = write_csv(tmp_path / "good.csv", make_rows(16))
    before = snapshot(p.parent)
    for cmd, (args, outs) in table_commands(p, tmp_path / "out", cls_run, good, False).items():
        assert main([str(a) for a in args]) == 0, cmd
        assert all(Path(o).exists() for o in outs), cmd
        if cmd == "classify predict":
            assert [r.split("\t")[0] for r in Path(outs[0]).read_text().splitlines()[1:]] == ["r1", "r2", "r3"]
    assert snapshot(p.parent) == before


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory) -> Path:
    import numpy as np
    import soundfile as sf

    d = tmp_path_factory.mktemp("audiorun")
    folder = d / "wavs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        sf.write(folder / f"c{i}.wav", (0.3 * np.sin(np.arange(600) / (3 + i)) + 0.01 * rng.standard_normal(600))
                 .astype(np.float32), 8000)
    assert main(["audio", "train", "--data", str(folder), "--out", str(d / "run"), *sets(AUDIO_TINY)]) == 0
    return d / "run"


def audio_commands(p: Path, out: Path, run: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    return {
        "audio eval": (["audio", "eval", "--model", run, "--data", p, "--out", out / "eval.tsv"], [out / "eval.tsv"]),
        "audio generate --prompt": (["audio", "generate", "--model", run, "--prompt", p, "--seconds", "0.01",
                                     "--out", out / "gen"], [out / "gen"]),
        "pretrain audio": (["pretrain", "--data", p, "--out", out / "pre",
                            *sets(PRE_TINY + ["data.source=audio", "model.vocab_size=256", "data.sample_rate=8000",
                                              "schedule.stages=[{seq_len: 16, steps: 2}]"])], [out / "pre"]),
    }


def test_wavs_through_every_command(audio_run, tmp_path, capsys):
    cases = wav_cases(tmp_path / "in")
    for case, (p, needle) in cases.items():
        single = write(tmp_path / f"one_{case}", p.name, p.read_bytes())
        for cmd, (args, outs) in audio_commands(single, tmp_path / "out" / case, audio_run).items():
            if needle is None:
                assert main([str(a) for a in args]) == 0, (case, cmd, capsys.readouterr().err)
                assert all(Path(o).exists() for o in outs), (case, cmd)
            else:
                refused(capsys, args, single, outs, needle)


def test_bad_wav_in_a_training_folder_is_refused_before_training(tmp_path, capsys):
    cases = wav_cases(tmp_path / "all")
    for case, (p, needle) in cases.items():
        if needle is None:
            continue
        folder = tmp_path / f"train_{case}"
        for good in ("stereo_44k", "silent"):
            write(folder, cases[good][0].name, cases[good][0].read_bytes())
        for i in range(3):
            write(folder, f"extra{i}.wav", cases["stereo_44k"][0].read_bytes())
        bad = write(folder, p.name, p.read_bytes())
        out = tmp_path / "out" / case
        refused(capsys, ["audio", "train", "--data", folder, "--out", out, *sets(AUDIO_TINY)], bad, [out], needle)


@pytest.mark.parametrize("case", sorted(YAML))
def test_bad_yaml_through_every_command(case, tmp_path, capsys):
    name, data, needle = YAML[case]
    p = write(tmp_path / "in", name, data)
    out = tmp_path / "out"
    commands = [["classify", "train", "--train", "x.csv", "--val", "x.csv"], ["pretrain", "--data", "x.fa"],
                ["audio", "train", "--data", "wavs"], ["lm", "train", "--data", "x.txt"],
                ["eval", "selective-copying"]]
    for args in commands:
        refused(capsys, args + ["--config", p, "--out", out], p, [out], needle, name)


def test_override_is_blamed_not_the_shipped_yaml(capsys):
    assert main(["pretrain", "--set", "train.max_steps=2", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seqssm: error: override 'train.max_steps=2': train.max_steps: must be 0"), err
    assert "pretrain_ecoli.yaml" not in err and err.count("\n") == 1
    assert main(["classify", "train", "--set", "data.max_length=0", "--print-config"]) == 2
    assert capsys.readouterr().err.startswith("seqssm: error: override 'data.max_length=0': data.max_length")

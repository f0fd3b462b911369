"""The `seqssm` command line: exit codes and one-line errors for user mistakes, run-folder safety."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seqssm.pipelines.cli import SUBCOMMANDS, main

from pipeline_helpers import TINY

SEQSSM = str(Path(sys.executable).parent / "seqssm")


def _one_error_line(err: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert lines[0].startswith("seqssm: error: "), lines[0]
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], f"{n!r} not named in {lines[0]!r}"
    return lines[0]


def test_info_console_script_exits_0():
    proc = subprocess.run([SEQSSM, "info"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for label in ("seqssm", "torch", "triton", "lightning", "python", "threads", "scan backends", "cuda available"):
        assert any(line.startswith(label) for line in proc.stdout.splitlines()), f"{label} missing:\n{proc.stdout}"
    assert "reference" in proc.stdout


def test_bad_config_key_console_script_one_line_no_traceback(tmp_path, text_file):
    proc = subprocess.run(
        [SEQSSM, "lm", "train", "--data", str(text_file), "--out", str(tmp_path / "run"), "--set", "model.d_modle=8"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    _one_error_line(proc.stderr, "model.d_modle")
    assert not (tmp_path / "run").exists()


def test_unknown_key_in_yaml_names_key_and_file(tmp_path, text_file, capsys):
    cfg = tmp_path / "my.yaml"
    cfg.write_text("train:\n  max_step: 5\n")
    assert main(["lm", "train", "--config", str(cfg), "--data", str(text_file), "--out", str(tmp_path / "r")]) == 2
    _one_error_line(capsys.readouterr().err, "train.max_step", str(cfg))


@pytest.mark.parametrize(
    "override, key",
    [("data.seq_len=1", "data.seq_len"), ("train.lr=0", "train.lr"), ("data.val_fraction=1.5", "data.val_fraction"),
     ("train.precision=fp8", "train.precision"), ("model.d_model=abc", "model.d_model")],
)
def test_bad_value_names_key(tmp_path, text_file, capsys, override, key):
    assert main(["lm", "train", "--data", str(text_file), "--out", str(tmp_path / "r"), "--set", override]) == 2
    _one_error_line(capsys.readouterr().err, key)


def test_missing_data_file(tmp_path, capsys):
    missing = tmp_path / "nope.bin"
    assert main(["lm", "train", "--data", str(missing), "--out", str(tmp_path / "r")]) == 2
    _one_error_line(capsys.readouterr().err, "--data", str(missing))
    assert not (tmp_path / "r").exists()


def test_data_folder_and_too_small_file(tmp_path, capsys):
    assert main(["lm", "train", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    _one_error_line(capsys.readouterr().err, "--data", "not a regular file")
    small = tmp_path / "small.txt"
    small.write_bytes(b"x" * 100)
    assert main(["lm", "train", "--data", str(small), "--out", str(tmp_path / "r"), "--set", "data.seq_len=64"]) == 2
    _one_error_line(capsys.readouterr().err, str(small), "too small", "data.seq_len=64")


def test_missing_config_and_model(tmp_path, capsys):
    assert main(["lm", "train", "--config", str(tmp_path / "none.yaml")]) == 2
    _one_error_line(capsys.readouterr().err, "--config", "none.yaml")
    assert main(["lm", "sample", "--model", str(tmp_path), "--prompt", "a"]) == 2
    _one_error_line(capsys.readouterr().err, "--model", str(tmp_path))


def test_argparse_errors_are_one_line(capsys):
    assert main(["lm", "trian"]) == 2
    _one_error_line(capsys.readouterr().err, "trian")
    assert main([]) == 2
    _one_error_line(capsys.readouterr().err, "COMMAND")
    assert main(["lm", "sample", "--model", "m", "--max-new-tokens", "many"]) == 2
    _one_error_line(capsys.readouterr().err, "--max-new-tokens", "many")


def test_real_bugs_still_raise(monkeypatch):
    import seqssm.pipelines.info as info

    def broken():
        raise KeyError("a bug, not a user error")

    monkeypatch.setattr(info, "collect", broken)
    with pytest.raises(KeyError):
        main(["info"])


def test_subcommand_registry_is_one_line_per_command():
    assert {"info", "lm"} <= set(SUBCOMMANDS)
    assert all(v.startswith("seqssm.pipelines.") for v in SUBCOMMANDS.values())


def test_refuses_non_empty_out_dir_and_keeps_user_files(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["lm", "train", "--data", str(text_file), "--out", str(out)] + sum((["--set", s] for s in TINY), [])
    args += ["--set", "train.max_steps=4", "--set", "train.val_every=4"]
    assert main(args) == 2
    _one_error_line(capsys.readouterr().err, "--out", str(out), "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]

    assert main(args + ["--overwrite"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["notes.txt", "model", "config.yaml", "metrics.json", "history.json", "curves.png", "logs"])
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "metrics.json").read_text())["steps"] == 4

    # a second --overwrite run replaces the job's own files (model folder included) and still keeps notes.txt
    assert main(args + ["--overwrite", "--set", "train.max_steps=2", "--set", "train.val_every=2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == names
    assert json.loads((out / "metrics.json").read_text())["steps"] == 2
    assert (out / "notes.txt").read_text() == "mine"


def test_sigterm_during_training_leaves_no_partial_output(tmp_path, text_file):
    import signal
    import time

    out = tmp_path / "run"
    args = [SEQSSM, "lm", "train", "--data", str(text_file), "--out", str(out)] + sum((["--set", s] for s in TINY), [])
    proc = subprocess.Popen(args + ["--set", "train.max_steps=100000"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 90
        while not (out.exists() and any(out.iterdir())) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(1.0)  # inside training
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc != 0
    assert "Traceback" not in proc.stderr.read()
    assert not out.exists(), f"left behind: {[p.name for p in out.iterdir()]}"


def test_stale_staging_of_a_dead_job_is_removed_and_nothing_else(tmp_path, text_file):
    dead = subprocess.Popen(["true"])
    dead.wait()
    out = tmp_path / "run"
    stale = out / f".staging-{dead.pid}-abc"
    stale.mkdir(parents=True)
    (stale / "metrics.json").write_text("{}")
    args = ["lm", "train", "--data", str(text_file), "--out", str(out)] + sum((["--set", s] for s in TINY), [])
    assert main(args + ["--set", "train.max_steps=2", "--set", "train.val_every=2"]) == 0  # staging is not content
    assert not stale.exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]

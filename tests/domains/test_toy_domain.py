"""A third-party domain plugin, installed as a package, is found through the `seqssm.domains` entry point and
trained and evaluated through the `seqssm` command line: tests/domains/toy_domain (protein sequences) is
pip-installed into a temporary folder, and the CLI runs in a process whose PYTHONPATH holds that folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
TINY = ["model.d_model=16", "model.n_layer=2", "model.ssm.d_state=4", "model.scan_backend=reference",
        "data.batch_size=8", "data.eval_batch_size=16", "train.max_steps=12", "train.warmup_steps=2",
        "train.val_every=6", "train.log_every=2", "train.progress_bar=false", "train.threads=1"]
PROTEIN = ["data.domain=protein", "model.vocab_size=21", "data.rc_augment=0", "eval.rc_conjoin=false"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The toy package installed by pip (from a copy: a build writes beside its sources) into its own folder."""
    tmp = tmp_path_factory.mktemp("toy")
    src = shutil.copytree(HERE / "toy_domain", tmp / "src")
    target = tmp / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "--target", str(target), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert any(p.name.endswith(".dist-info") for p in target.iterdir())
    return target


def seqssm(args, site: Path | None, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site) if site else ""}
    return subprocess.run([sys.executable, "-m", "seqssm.pipelines.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def write_proteins(path: Path, n: int, seed: int) -> str:
    """Two classes told apart by their composition: "acidic" rows rich in D/E, "basic" rows rich in K/R."""
    rng = np.random.default_rng(seed)
    rows = ["id,label,sequence"]  # any column order: the header names them
    for i in range(n):
        label = "acidic" if i % 2 else "basic"
        pool = list("ACDEFGHIKLMNPQRSTVWY") + list("DE" * 6 if label == "acidic" else "KR" * 6)
        rows.append(f"p{i},{label},{''.join(rng.choice(pool, size=int(rng.integers(15, 30))))}")
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_the_installed_plugin_is_discovered(site, tmp_path):
    code = "from seqssm import domains; print(','.join(domains.available())); print(domains.by_source('protein').name)"
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "protein" in out.stdout.splitlines()[0].split(",") and out.stdout.splitlines()[1] == "protein"


def test_train_and_evaluate_a_protein_classifier_through_the_cli(site, tmp_path):
    tr, dv = write_proteins(tmp_path / "train.csv", 48, 1), write_proteins(tmp_path / "dev.csv", 16, 2)
    run = tmp_path / "run"
    sets = [x for kv in TINY + PROTEIN for x in ("--set", kv)]
    res = seqssm(["classify", "train", "--train", tr, "--val", dv, "--out", str(run), *sets], site, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.loads((run / "metrics.json").read_text())
    assert m["classes"] == ["acidic", "basic"] and m["steps"] == 12
    assert list(m["dev"]) == ["single_strand"] and m["dev"]["single_strand"]["n"] == 16  # no reverse strand
    assert json.loads((run / "model" / "tokenizer.json").read_text())["format"] == "seqssm-toy-protein"

    res = seqssm(["classify", "eval", "--model", str(run), "--data", dv, "--out", str(tmp_path / "eval.json")],
                 site, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    again = json.loads((tmp_path / "eval.json").read_text())
    assert again["n"] == 16 and again["mcc"] == pytest.approx(m["dev"]["single_strand"]["mcc"], abs=1e-6)
    assert "MCC" in res.stdout

    res = seqssm(["classify", "predict", "--model", str(run), "--data", dv, "--out", str(tmp_path / "p.tsv")],
                 site, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = (tmp_path / "p.tsv").read_text().splitlines()
    assert lines[0] == "id\tpredicted\tp_acidic\tp_basic" and len(lines) == 17 and lines[1].startswith("p0\t")


def test_pretrain_reads_the_plugins_source(site, tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "proteins.txt"
    data.write_text("\n".join("".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), size=60)) for _ in range(100)))
    sets = ["data.source=protein", "model.vocab_size=21", "model.d_model=16", "model.n_layer=1", "model.ssm.d_state=4",
            "schedule.stages=[{seq_len: 32, steps: 4}]", "schedule.tokens_per_batch=128", "train.progress_bar=false",
            "train.warmup_steps=1", "train.threads=1", "train.tensorboard=false", "data.eval_segment=256",
            "data.eval_context=16"]
    res = seqssm(["pretrain", "--data", str(data), "--out", str(tmp_path / "pt"),
                  *[x for kv in sets for x in ("--set", kv)]], site, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.loads((tmp_path / "pt" / "metrics.json").read_text())
    assert m["source"] == "protein" and m["steps"] == 4 and 0 < m["heldout_bits_per_token"] < 10
    assert "bits per token" in res.stdout


def test_plugin_errors_are_one_line_and_unknown_domains_are_named(site, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("sequence,label\nACDZZ,acidic\nKKRR,basic\n")
    args = ["classify", "train", "--train", str(bad), "--val", str(bad), "--out", str(tmp_path / "r"),
            *[x for kv in TINY + PROTEIN for x in ("--set", kv)]]
    res = seqssm(args, site, tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == f"seqssm: error: {bad}:2: 'Z' is not an amino-acid code"
    res = seqssm(args, None, tmp_path)  # not installed: the domain is unknown, and the message says which exist
    assert res.returncode == 2 and "data.domain" in res.stderr and "protein" in res.stderr and "dna" in res.stderr
    assert not (tmp_path / "r").exists()

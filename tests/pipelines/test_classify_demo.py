"""The DNA part of `make demo`, on tiny data: it trains, and prints dev/test MCC beside the k-mer baseline."""

from __future__ import annotations

import json
from pathlib import Path

from classify_helpers import TINY_CLS, make_rows, write_csv
from seqssm.pipelines import demo


def test_bundled_demo_splits_exist():
    root = Path(__file__).resolve().parents[2] / demo.DEMO_DNA
    for split, rows in (("train", 6478), ("dev", 810), ("test", 810)):
        lines = (root / f"{split}.csv").read_text().splitlines()
        assert lines[0] == "sequence,label" and len(lines) - 1 == rows


def test_demo_classify_reports_against_the_baseline(tmp_path, capsys):
    for split, seed in (("train", 1), ("dev", 2), ("test", 3)):
        write_csv(tmp_path / f"{split}.csv", make_rows(24, seed=seed))
    out = tmp_path / "out"
    overrides = [arg for kv in TINY_CLS for arg in ("--classify-set", kv)]
    assert demo.main(["--skip-lm", "--skip-audio", "--dna", str(tmp_path), "--out", str(out), *overrides]) == 0
    printed = capsys.readouterr().out
    m = json.loads((out / "classify" / "metrics.json").read_text())
    assert m["steps"] == 12
    for split in ("dev", "test"):
        row = next(ln for ln in printed.splitlines() if ln.split()[:2] == [split, "rc_conjoin"])
        mcc, acc, base = (float(x) for x in row.split()[2:5])
        assert mcc == round(m[split]["rc_conjoin"]["mcc"], 4) and acc == round(m[split]["rc_conjoin"]["accuracy"], 4)
        assert base == demo.KMER_BASELINE_MCC[split]

"""`seqssm classify benchmark` and `seqssm baseline kmer` on tiny synthetic suites in tmp folders (a tiny model,
a few steps per task: seconds on one CPU thread)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from classify_helpers import TINY_CLS, make_oriented_rows, make_rows, write_csv
from seqssm.pipelines.cli import main
from seqssm.pipelines.kmer import kmer_features, mcc, orientation_probe

# the budget is generous for these few steps: the tiny job ends on max_steps, the budget only bounds it
SUITE_SET = [kv for kv in TINY_CLS if not kv.startswith("train.max_steps")] + ["train.max_steps=8",
                                                                                "train.target_epochs=0"]


def _args(suite, out, extra=()):
    args = ["classify", "benchmark", "--suite", str(suite), "--out", str(out), "--minutes", "5"]
    for kv in SUITE_SET + list(extra):
        args += ["--set", kv]
    return args


def _gue_task(folder, seed=0, n=(64, 24, 16)):
    folder.mkdir(parents=True)
    for split, k, s in zip(("train", "dev", "test"), n, range(3)):
        write_csv(folder / f"{split}.csv", make_rows(k, seed=seed + s))


def _gb_task(folder, seed=10):
    """Genomic Benchmarks' layout: TSV `seq<TAB>label`."""
    folder.mkdir(parents=True)
    for split, k, s in (("train", 64, 0), ("dev", 24, 1), ("test", 16, 2)):
        (folder / f"{split}.tsv").write_text("seq\tlabel\n" + "".join(f"{q}\t{y}\n" for q, y in
                                                                       make_rows(k, seed=seed + s)))


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    suite = root / "suite"
    _gue_task(suite / "a_gue")
    _gb_task(suite / "b_genomic_benchmarks")
    bad = suite / "c_no_train"
    bad.mkdir(parents=True)
    write_csv(bad / "dev.csv", make_rows(8))
    _gue_task(suite / "d_labels_differ")
    write_csv(suite / "d_labels_differ" / "dev.csv", [(s, "0") for s, _ in make_rows(8)])
    _gue_task(suite / "e_empty_split")
    (suite / "e_empty_split" / "test.csv").write_text("sequence,label\n")
    _gue_task(suite / "f_dups")
    rows = make_rows(64, seed=0)
    write_csv(suite / "f_dups" / "dev.csv", rows[:5] + make_rows(19, seed=5))  # 5 dev rows also in train
    g = suite / "g_oriented"
    g.mkdir()
    for split, k, sd in (("train", 96, 0), ("dev", 40, 1), ("test", 24, 2)):
        write_csv(g / f"{split}.csv", make_oriented_rows(k, seed=sd))
    (suite / "references.yaml").write_text("a_gue: {Some-Model: 0.5}\n")
    out = root / "run"
    code = main(_args(suite, out))
    return suite, out, code


def test_suite_table_rows_and_failures(suite_run):
    suite, out, code = suite_run
    assert code == 1  # some tasks failed (and were named)
    res = json.loads((out / "results.json").read_text())
    rows = {r["task"]: r for r in res["tasks"]}
    assert [r["task"] for r in res["tasks"]] == sorted(p.name for p in suite.iterdir() if p.is_dir())
    for ok in ("a_gue", "b_genomic_benchmarks", "f_dups"):
        r = rows[ok]
        assert r["status"] == "ok", r
        assert -1 <= r["model"]["test_mcc"] <= 1 and -1 <= r["kmer"]["test_mcc"] <= 1
        assert r["model"]["steps"] == 8
        assert (out / "plots" / f"{ok}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert rows["a_gue"]["references"] == {"Some-Model": 0.5}
    assert rows["f_dups"]["duplicates"]["train_dev"] == 5
    assert "no train split" in rows["c_no_train"]["error"]
    assert "label sets differ" in rows["d_labels_differ"]["error"] and "'1'" in rows["d_labels_differ"]["error"]
    assert "no sequences" in rows["e_empty_split"]["error"] and "test.csv" in rows["e_empty_split"]["error"]
    for bad in ("c_no_train", "d_labels_differ", "e_empty_split"):
        assert "\n" not in rows[bad]["error"]
    md = (out / "results.md").read_text()
    assert md.count("**failed**") == 3 and "Some-Model 0.500" in md


def test_resume_skips_finished_tasks_and_reruns_failed_ones(suite_run, capsys):
    suite, out, _ = suite_run
    before = (out / "tasks" / "a_gue" / "result.json").stat().st_mtime_ns
    (suite / "e_empty_split" / "test.csv").write_text("sequence,label\n" + "".join(
        f"{s},{y}\n" for s, y in make_rows(16, seed=7)))  # fixed: runs now
    capsys.readouterr()
    assert main(_args(suite, out, )) == 1
    text = capsys.readouterr().out
    assert "[a_gue] finished before: not rerun" in text
    assert (out / "tasks" / "a_gue" / "result.json").stat().st_mtime_ns == before
    rows = {r["task"]: r for r in json.loads((out / "results.json").read_text())["tasks"]}
    assert rows["e_empty_split"]["status"] == "ok"


def test_resume_with_another_config_is_refused(suite_run, capsys):
    suite, out, _ = suite_run
    assert main(_args(suite, out, ["train.lr=0.01"])) == 2
    err = capsys.readouterr().err
    assert "another suite or config" in err and len(err.strip().splitlines()) == 1


def test_suite_without_task_folders_is_one_line(tmp_path, capsys):
    assert main(_args(tmp_path, tmp_path / "run")) == 2
    assert "no task folders" in capsys.readouterr().err


def test_kmer_features_pool_both_strands():
    x = kmer_features(["AACG", "CGTT"], 2)  # reverse complements of each other: same features
    assert np.array_equal(x[0], x[1]) and x.shape == (2, 16)
    assert kmer_features(["ANNA"], 3).sum() == 0  # no window without N


def test_mcc_matches_definition():
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0, 1, 1, 1, 0, 0])
    tp, tn, fp, fn = 2, 2, 1, 1
    want = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert mcc(p, y, 2) == pytest.approx(want)
    assert mcc(np.zeros(6, int), y, 2) == 0.0


def test_baseline_kmer_cli_learns_a_motif(tmp_path, capsys):
    tr = write_csv(tmp_path / "train.csv", make_rows(200, seed=1))
    dv = write_csv(tmp_path / "dev.csv", make_rows(60, seed=2))
    te = write_csv(tmp_path / "test.csv", make_rows(60, seed=3))
    out = tmp_path / "k.json"
    assert main(["baseline", "kmer", "--train", tr, "--val", dv, "--test", te, "--k", "3,4", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["k"] in (3, 4) and res["test_mcc"] > 0.6  # the GCGCGC motif is easy for k-mer counts
    assert main(["baseline", "kmer", "--train", tr, "--val", dv, "--k", "0"]) == 2


def test_compare_puts_runs_side_by_side(suite_run, tmp_path, capsys):
    """Two benchmark runs of one suite: a task missing from one is 'not run', a failed one 'failed', the run best on
    dev is marked, the k-mer baseline comes along."""
    _, out, _ = suite_run
    res = json.loads((out / "results.json").read_text())
    other = tmp_path / "finetuned"
    other.mkdir()
    rows = [r for r in res["tasks"] if r["task"] != "f_dups"]  # f_dups not run in the second run
    for r in rows:
        if r["status"] == "ok":
            r["model"] = dict(r["model"], dev_mcc=r["model"]["dev_mcc"] + 0.5, test_mcc=0.123)
    (other / "results.json").write_text(json.dumps({"minutes_per_task": 5, "init_from": "/x/backbone",
                                                     "tasks": rows}))
    capsys.readouterr()
    assert main(["classify", "compare", str(out), str(other), "--out", str(tmp_path / "cmp")]) == 0
    data = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    by = {r["task"]: r for r in data["tasks"]}
    assert [r["name"] for r in data["runs"]] == ["from scratch", "backbone (fine-tuned)"]
    assert by["a_gue"]["best_on_dev"] == 1 and by["a_gue"]["runs"][1]["test_mcc"] == 0.123
    assert by["a_gue"]["kmer"]["test_mcc"] == res["tasks"][0]["kmer"]["test_mcc"]
    assert by["f_dups"]["runs"][1] == {"status": "not run"} and by["f_dups"]["best_on_dev"] == 0
    assert by["c_no_train"]["runs"][0]["status"] == "failed" and by["c_no_train"]["best_on_dev"] is None
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| a_gue |" in md and "**" in md and "not run" in md and "/x/backbone" in md
    assert "| g_oriented (oriented) |" in md and by["g_oriented"]["oriented"] and not by["a_gue"]["oriented"]
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("case", ["not_a_run", "names_count"])
def test_compare_bad_input_is_one_line(suite_run, tmp_path, capsys, case):
    _, out, _ = suite_run
    args = ["classify", "compare", str(out), str(tmp_path), "--out", str(tmp_path / "cmp")]
    if case == "names_count":
        args = ["classify", "compare", str(out), "--names", "a,b", "--out", str(tmp_path / "cmp")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert (str(tmp_path) in err and "results.json" in err) if case == "not_a_run" else "2 names for 1 runs" in err
    assert not (tmp_path / "cmp").exists()


def test_kmer_features_of_the_given_strand_only():
    x = kmer_features(["AACG", "CGTT"], 2, strands="forward")  # reverse complements: different on one strand
    assert not np.array_equal(x[0], x[1])


class _Split:
    def __init__(self, rows):
        self.sequences, self.labels = [q for q, _ in rows], [int(y) for _, y in rows]
        self.num_classes = 2

    def __len__(self):
        return len(self.sequences)


@pytest.mark.parametrize("oriented", [True, False], ids=["tata_box_on_one_strand", "palindromic_motif"])
def test_orientation_probe(oriented):
    rows = make_oriented_rows if oriented else make_rows
    probe = orientation_probe(_Split(rows(200, seed=1)), _Split(rows(80, seed=2)), ks=(3, 4), cs=(0.1,))
    assert probe["oriented"] is oriented
    if oriented:
        assert probe["dev_mcc_forward"] > 0.6 and probe["dev_mcc_both"] < 0.3
        assert probe["dev_loss_forward"] < probe["dev_loss_both"]


def test_oriented_task_trains_and_scores_one_strand(suite_run):
    """The suite's oriented task: the model's probe found it oriented (no reverse complements, one strand scored)
    and the k-mer baseline reads the given strand only; the strand-symmetric tasks are unchanged."""
    _, out, _ = suite_run
    rows = {r["task"]: r for r in json.loads((out / "results.json").read_text())["tasks"]}
    g = rows["g_oriented"]
    assert g["status"] == "ok" and g["model"]["oriented"] and g["model"]["scoring"] == "single_strand"
    assert g["kmer"]["strands"] == "forward" and g["kmer"]["dev_mcc"] > 0.8
    m = json.loads((out / "tasks" / "g_oriented" / "model" / "metrics.json").read_text())
    assert m["orientation"]["oriented"] and "rc_conjoin" in m["dev"]  # both reported; the run scores one
    cfg = (out / "tasks" / "g_oriented" / "model" / "config.yaml").read_text()
    assert "rc_augment: 0.0" in cfg and "rc_conjoin: false" in cfg
    a = rows["a_gue"]
    assert not a["model"]["oriented"] and a["model"]["scoring"] == "rc_conjoin" and a["kmer"]["strands"] == "both"
    assert "g_oriented (oriented)" in (out / "results.md").read_text()


@pytest.mark.parametrize("setting", ["symmetric", "oriented", "sideways"])
def test_orientation_setting(tmp_path, capsys, setting):
    """data.orientation symmetric keeps the reverse-complement options as set (no probe), oriented turns them off
    without a probe; another value is one line naming the key."""
    tr = write_csv(tmp_path / "train.csv", make_oriented_rows(48, seed=1))
    dv = write_csv(tmp_path / "dev.csv", make_oriented_rows(16, seed=2))
    sets = [kv for kv in TINY_CLS if not kv.startswith("train.max_steps")] + ["train.max_steps=2",
                                                                               f"data.orientation={setting}"]
    code = main(["classify", "train", "--train", tr, "--val", dv, "--out", str(tmp_path / "run"),
                 *[x for kv in sets for x in ("--set", kv)]])
    if setting == "sideways":
        assert code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "data.orientation" in err[0]
        return
    assert code == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    cfg = (tmp_path / "run" / "config.yaml").read_text()
    if setting == "symmetric":
        assert m["orientation"] is None and "rc_augment: 0.5" in cfg and "rc_conjoin: true" in cfg
    else:
        assert m["orientation"] == {"setting": "oriented", "oriented": True, "probe": None}
        assert "rc_augment: 0.0" in cfg and "rc_conjoin: false" in cfg


def test_baseline_none_skips_the_kmer_grid(tmp_path, capsys):
    suite = tmp_path / "suite"
    _gue_task(suite / "a_gue")
    out = tmp_path / "run"
    assert main(_args(suite, out, ) + ["--baseline", "none"]) == 0
    row = json.loads((out / "results.json").read_text())["tasks"][0]
    assert row["status"] == "ok" and row["kmer"] is None and not (out / "tasks" / "a_gue" / "kmer.json").exists()
    assert "not run" in (out / "results.md").read_text() and (out / "plots" / "a_gue.png").is_file()
    capsys.readouterr()
    assert main(_args(suite, tmp_path / "run2") + ["--baseline", "lasso"]) == 2
    assert "--baseline lasso" in capsys.readouterr().err

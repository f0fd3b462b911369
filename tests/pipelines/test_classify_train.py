"""`seqssm classify train / eval / predict / embed` end to end with a tiny model through the real entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from classify_helpers import TINY_CLS, make_rows, write_csv, write_fasta
from seqssm.pipelines.cli import main
from seqssm.pipelines.classify.config import ClassifyJobConfig
from seqssm.pipelines.schemas import SCHEMAS


def _train(tmp_path, name="run", extra=()):
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    tr = write_csv(d / "train.csv", make_rows(64, seed=1))
    dv = write_csv(d / "dev.csv", make_rows(24, seed=2))
    te = write_fasta(d / "test.fa", make_rows(16, seed=3))
    out = tmp_path / name
    args = ["classify", "train", "--train", tr, "--val", dv, "--test", te, "--out", str(out)]
    for kv in list(TINY_CLS) + list(extra):
        args += ["--set", kv]
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("cls"))


def test_run_folder_contents(run):
    assert {p.name for p in run.iterdir()} == {"model", "config.yaml", "metrics.json", "history.json", "curves.png", "logs"}
    assert {p.name for p in (run / "model").iterdir()} >= {"config.yaml", "model.safetensors", "tokenizer.json", "classes.json"}
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "logs" / "metrics.csv").is_file()
    m = json.loads((run / "metrics.json").read_text())
    assert m["steps"] == 12 and m["classes"] == ["0", "1"] and m["seconds"] > 0
    for split in ("dev", "test"):
        for mode in ("rc_conjoin", "single_strand"):
            s = m[split][mode]
            assert -1 <= s["mcc"] <= 1 and 0 <= s["accuracy"] <= 1 and 0 <= s["auroc"] <= 1
            assert sum(s["true_counts"].values()) == s["n"] == np.sum(s["confusion_matrix"])
    assert m["dev"]["rc_conjoin"]["n"] == 24 and m["test"]["single_strand"]["n"] == 16
    # the selected model is the best validation on the monitored metric
    hist = json.loads((run / "history.json").read_text())
    assert m["best_value"] == max(r["val_mcc"] for _, r in hist["val"])
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model"]["num_classes"] == 2 and cfg["model"]["head"] == "classify"


def test_saved_model_reproduces_dev_metrics(run, tmp_path):
    m = json.loads((run / "metrics.json").read_text())
    dev = yaml.safe_load((run / "config.yaml").read_text())["data"]["val"]
    out = tmp_path / "m.json"
    assert main(["classify", "eval", "--model", str(run), "--data", dev, "--rc-conjoin", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["mcc"] == pytest.approx(m["dev"]["rc_conjoin"]["mcc"], abs=1e-6)
    assert got["accuracy"] == pytest.approx(m["dev"]["rc_conjoin"]["accuracy"], abs=1e-6)
    assert got["confusion_matrix"] == m["dev"]["rc_conjoin"]["confusion_matrix"]


def test_predict_streams_in_small_batches_and_matches_one_batch(run, tmp_path):
    fa = write_fasta(tmp_path / "q.fa", make_rows(11, seed=5), labels=False)
    small, big = tmp_path / "small.tsv", tmp_path / "big.tsv"
    assert main(["classify", "predict", "--model", str(run), "--data", fa, "--out", str(small), "--batch-size", "3"]) == 0
    assert main(["classify", "predict", "--model", str(run), "--data", fa, "--out", str(big), "--batch-size", "64"]) == 0
    lines = small.read_text().splitlines()
    assert lines[0].split("\t") == ["id", "predicted", "p_0", "p_1"]
    assert [ln.split("\t")[0] for ln in lines[1:]] == [f"s{i}" for i in range(11)]
    a = np.array([[float(x) for x in ln.split("\t")[2:]] for ln in lines[1:]])
    b = np.array([[float(x) for x in ln.split("\t")[2:]] for ln in big.read_text().splitlines()[1:]])
    np.testing.assert_allclose(a, b, atol=2e-6)  # padding to another length must not change a row's scores
    np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-5)
    assert [ln.split("\t")[1] for ln in lines[1:]] == [str(int(r[1] > r[0])) for r in a]
    assert not list(tmp_path.glob(".*.tmp"))


def test_predict_on_csv_without_labels_uses_line_numbers(run, tmp_path):
    csv = tmp_path / "q.csv"
    csv.write_text("sequence\nACGTACGTTT\n\nGGGCCCAAAT\n")
    out = tmp_path / "p.tsv"
    assert main(["classify", "predict", "--model", str(run), "--data", str(csv), "--out", str(out)]) == 0
    assert [ln.split("\t")[0] for ln in out.read_text().splitlines()[1:]] == ["2", "4"]


def test_embed_shapes(run, tmp_path):
    rows = make_rows(5, seed=7, length=(10, 15))
    fa = write_fasta(tmp_path / "e.fa", rows)
    pooled, per_pos = tmp_path / "p.npy", tmp_path / "q.safetensors"
    assert main(["classify", "embed", "--model", str(run), "--data", fa, "--out", str(pooled), "--batch-size", "2"]) == 0
    assert np.load(pooled).shape == (5, 16)
    assert main(["classify", "embed", "--model", str(run), "--data", fa, "--out", str(per_pos), "--per-position"]) == 0
    t = load_file(per_pos)
    longest = max(len(s) for s, _ in rows)
    assert t["embeddings"].shape == (5, longest, 16)
    assert t["lengths"].tolist() == [len(s) for s, _ in rows]
    short = int(np.argmin(t["lengths"]))
    assert torch.all(t["embeddings"][short, t["lengths"][short]:] == 0)
    # mean pooling of the per-position rows gives the pooled embedding
    k = int(t["lengths"][0])
    np.testing.assert_allclose(t["embeddings"][0, :k].mean(0).numpy(), np.load(pooled)[0], atol=1e-5)


def test_two_identical_runs_give_identical_metrics(run, tmp_path):
    again = _train(tmp_path)
    a = json.loads((run / "metrics.json").read_text())
    b = json.loads((again / "metrics.json").read_text())
    for m in (a, b):
        m.pop("seconds"), m.pop("train_seconds"), m.pop("timing")
    assert a == b


def test_yaml_schema_and_print_config(capsys):
    assert SCHEMAS["classify"] is ClassifyJobConfig
    assert main(["classify", "train", "--print-config", "--train", "a.csv", "--set", "model.layer=bimamba"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["data"]["train"] == "a.csv" and cfg["model"]["layer"] == "bimamba" and cfg["model"]["vocab_size"] == 10


def test_truncation_left_trains_on_sequences_over_max_length(tmp_path):
    out = _train(tmp_path, extra=["data.max_length=16", "data.truncation=left", "train.max_steps=2", "train.val_every=2"])
    assert json.loads((out / "metrics.json").read_text())["steps"] == 2


def test_dev_rows_seen_in_train_are_also_scored_apart(tmp_path):
    rows = make_rows(40, seed=11)
    tr = write_csv(tmp_path / "train.csv", rows)
    dv = write_csv(tmp_path / "dev.csv", rows[:6] + make_rows(10, seed=12))  # 6 exact duplicates of train rows
    out = tmp_path / "run"
    args = ["classify", "train", "--train", tr, "--val", dv, "--out", str(out)]
    for kv in TINY_CLS + ["train.max_steps=2", "train.val_every=2"]:
        args += ["--set", kv]
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["dev_duplicates_of_train"] == 6
    assert m["dev"]["rc_conjoin"]["n"] == 16 and m["dev_unique"]["rc_conjoin"]["n"] == 10
    assert "test" not in m


def test_predict_reads_at_most_one_batch_ahead(run, tmp_path, monkeypatch):
    """Bounded memory for any input size: predict never holds more than one batch of records. The reader is
    counted, and every model call checks how far reading has run ahead of the rows already written."""
    from seqssm.domains.dna import DNAPlugin
    from seqssm.pipelines.classify import infer

    n, batch = 2000, 16
    fa = write_fasta(tmp_path / "many.fa", make_rows(n, seed=9), labels=False)
    read, written, ahead = [0], [0], []
    real_iter, real_logits = DNAPlugin.iter_records, infer.batch_logits

    def counting_iter(data, *args):
        for rec in real_iter(data, *args):
            read[0] += 1
            yield rec

    def watching_logits(model, plugin, tokenizer, ids, mask, conjoin):
        ahead.append(read[0] - written[0])
        written[0] += ids.shape[0]
        return real_logits(model, plugin, tokenizer, ids, mask, conjoin)

    monkeypatch.setattr(DNAPlugin, "iter_records", staticmethod(counting_iter))  # the reader predict streams from
    monkeypatch.setattr(infer, "batch_logits", watching_logits)
    out = tmp_path / "many.tsv"
    assert main(["classify", "predict", "--model", str(run), "--data", fa, "--out", str(out),
                 "--batch-size", str(batch)]) == 0
    assert read[0] == n and written[0] == n
    assert max(ahead) <= batch + 1  # the batch in hand, plus at most the record that told the batch was full
    assert len(out.read_text().splitlines()) == n + 1


def test_rc_equivariant_classifier_scores_both_strands_alike(tmp_path):
    """Caduceus-PS through the real job: the model is RC-invariant by construction, so conjoining the two
    strands changes nothing, and the saved config carries the tokenizer's complement map."""
    from seqssm.domains.dna.tokenizer import COMPLEMENT_IDS

    run = _train(tmp_path, "rcps", extra=["model.strand.rc_equivariant=true"])
    m = json.loads((run / "metrics.json").read_text())
    for split in ("dev", "test"):
        on, off = m[split]["rc_conjoin"], m[split]["single_strand"]
        assert on["confusion_matrix"] == off["confusion_matrix"]
        assert on["auroc"] == pytest.approx(off["auroc"], abs=1e-6)
    saved = yaml.safe_load((run / "model" / "config.yaml").read_text())
    assert saved["strand"]["rc_equivariant"] is True and saved["strand"]["rc_complement"] == COMPLEMENT_IDS.tolist()

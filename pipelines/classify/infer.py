"""Inference of `seqssm classify`: batching, metrics, and eval / predict / embed of a trained run.

Dimension names used in this file:
    n sequences · b batch · l sequence length (padded to the longest row of the batch) · d model width · c classes

No Lightning here: a trained run is a plain model folder plus the job's config, so evaluating or predicting needs
torch and the run's domain plugin only (files are read and tokenized by the plugin named in data.domain).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

import seqssm
from seqssm import domains
from seqssm.atomic import atomic_open
from seqssm.domains import DomainInputError
from seqssm.model import pool
from seqssm.pipelines.classify.config import ClassifyJobConfig
from seqssm.pipelines.jobconfig import UsageError


class ClassifyCollate:
    """Batch of (sequence, label) -> {"input_ids" (b, l), "attention_mask" (b, l), "labels" (b,)}.

    Pads to the longest row of the batch, not to max_length (domains.dna.Collate pads to max_length when given
    one, which would run the scan over hundreds of padding positions on short promoters). Strings are cut
    before encoding; one character is one token in the domains' tokenizers, so that equals cutting the ids.
    """

    def __init__(self, tokenizer, max_length: int, truncation: str):
        self.tokenizer, self.max_length, self.truncation = tokenizer, max_length, truncation

    def cut(self, seqs: list[str]) -> list[str]:
        m = self.max_length
        if self.truncation == "error":
            for r, s in enumerate(seqs):
                if len(s) > m:
                    raise DomainInputError(f"sequence {r}: length {len(s)} > max_length {m} (truncation='error')")
            return seqs
        return [s[:m] if self.truncation == "right" else s[-m:] for s in seqs]

    def encode(self, seqs: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.tokenizer.encode_batch(self.cut(seqs))[:2]
        return ids, mask

    def __call__(self, batch: list[tuple[str, int]]) -> dict[str, torch.Tensor]:
        ids, mask = self.encode([s for s, _ in batch])
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([y for _, y in batch])}


# ------------------------------------------------------------------------------------------------- metrics


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> dict:
    """logits (n, c), labels (n,) -> accuracy, MCC, macro F1, macro one-vs-rest AUROC, loss, counts, confusion."""
    from torchmetrics.functional.classification import (
        multiclass_accuracy,
        multiclass_auroc,
        multiclass_confusion_matrix,
        multiclass_f1_score,
        multiclass_matthews_corrcoef,
    )

    c = len(classes)
    logits, labels = logits.float(), labels.long()
    preds = logits.argmax(-1)
    probs = logits.softmax(-1)
    mcc = float(multiclass_matthews_corrcoef(preds, labels, c))
    if len(torch.unique(preds)) < 2 or len(torch.unique(labels)) < 2:
        # MCC is 0/0 here; torchmetrics returns a small non-zero value for it, which would credit a constant
        # predictor with skill. 0 is the usual convention (scikit-learn's too).
        mcc = 0.0
    return {
        "n": int(labels.numel()),
        "loss": float(torch.nn.functional.cross_entropy(logits, labels)),
        "accuracy": float(multiclass_accuracy(preds, labels, c, average="micro")),
        "mcc": mcc,
        "f1_macro": float(multiclass_f1_score(preds, labels, c, average="macro")),
        "auroc": float(multiclass_auroc(probs, labels, c, average="macro")),
        "true_counts": {k: int(v) for k, v in zip(classes, torch.bincount(labels, minlength=c))},
        "predicted_counts": {k: int(v) for k, v in zip(classes, torch.bincount(preds, minlength=c))},
        "confusion_matrix": multiclass_confusion_matrix(preds, labels, c).tolist(),  # rows true, columns predicted
    }


# --------------------------------------------------------------------------------------------- trained runs


@dataclass
class TrainedRun:
    model: torch.nn.Module
    tokenizer: object  # the domain's tokenizer, as saved with the model
    classes: list[str]
    job: ClassifyJobConfig
    collate: ClassifyCollate
    plugin: object  # the domain plugin (seqssm.domains.load(job.data.domain))


def load_run(path: str | os.PathLike, option: str = "--model") -> TrainedRun:
    """A run folder of `seqssm classify train` (RUN, or RUN/model)."""
    run = Path(path)
    if run.name == "model" and (run.parent / "config.yaml").is_file():
        run = run.parent
    mdir = run / "model"
    for need in (run / "config.yaml", mdir / "config.yaml", mdir / "tokenizer.json", mdir / "classes.json"):
        if not need.is_file():
            missing = need.relative_to(run)
            raise UsageError(f"{option} {run}: not a run folder of 'seqssm classify train' (no {missing})")
    job = seqssm.load_config(ClassifyJobConfig, str(run / "config.yaml"))
    model = seqssm.load_pretrained(str(mdir)).eval()
    if model.config.head != "classify":
        raise UsageError(f"{option} {run}: head is {model.config.head!r}, not 'classify'")
    plugin = domains.load(job.data.domain)
    tok = plugin.load_tokenizer(mdir / "tokenizer.json")
    classes = json.loads((mdir / "classes.json").read_text())
    return TrainedRun(model, tok, classes, job, ClassifyCollate(tok, job.data.max_length, job.data.truncation), plugin)


@torch.no_grad()
def batch_logits(model, plugin, tokenizer, ids: torch.Tensor, mask: torch.Tensor, conjoin: bool) -> torch.Tensor:
    """(b, l) ids and mask -> (b, c) logits, averaged over both strands when `conjoin` (the plugin's
    rc_conjoin; only stranded domains have one)."""
    return plugin.rc_conjoin(model, ids, mask, tokenizer) if conjoin else model(ids, mask)


@torch.no_grad()
def dataset_logits(model, plugin, collate: ClassifyCollate, ds, batch_size: int, conjoin: bool):
    """Logits (n, c) and labels (n,) of a whole labelled dataset, in file order."""
    model.eval()
    out, ys = [], []
    for i in range(0, len(ds), batch_size):
        chunk = [ds[j] for j in range(i, min(len(ds), i + batch_size))]
        batch = collate(chunk)
        out.append(batch_logits(model, plugin, collate.tokenizer, batch["input_ids"], batch["attention_mask"],
                                conjoin))
        ys.append(batch["labels"])
    return torch.cat(out), torch.cat(ys)


@torch.no_grad()
def dataset_logits_both(model, plugin, collate: ClassifyCollate, ds, batch_size: int):
    """Logits of both strands in one pass: forward (n, c), reverse-complement (n, c) and labels (n,).

    Each batch goes through the model once as 2b rows (the sequences, then their reverse complements; right
    padding is kept, so one mask serves both halves), which costs one pass per split instead of two, and both
    the single-strand and the conjoined metrics come from it (conjoined = the mean of the two logits)."""
    model.eval()
    fwd, rev, ys = [], [], []
    for i in range(0, len(ds), batch_size):
        batch = collate([ds[j] for j in range(i, min(len(ds), i + batch_size))])
        ids, mask = batch["input_ids"], batch["attention_mask"]  # (b, l)
        rc = collate.tokenizer.reverse_complement_ids(ids, mask)
        both = model(torch.cat([ids, rc]), torch.cat([mask, mask]))  # (2b, c)
        fwd.append(both[: len(ids)])
        rev.append(both[len(ids):])
        ys.append(batch["labels"])
    return torch.cat(fwd), torch.cat(rev), torch.cat(ys)


def evaluate(model, plugin, collate, ds, classes: list[str], batch_size: int, conjoin: bool) -> dict:
    """classification_metrics of `model` on a labelled dataset `ds` (sequences, labels, classes)."""
    logits, labels = dataset_logits(model, plugin, collate, ds, batch_size, conjoin)
    return classification_metrics(logits, labels, classes)


def _batches(records: Iterator, batch_size: int) -> Iterator[list]:
    batch = []
    for r in records:
        batch.append(r)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _check_out(out: Path) -> None:
    """The output goes through seqssm.atomic (temporary file, then rename): check its place first."""
    if out.is_dir():
        raise UsageError(f"--out {out}: is a folder")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: folder {out.parent} does not exist")


def predict_tsv(run: TrainedRun, data, out, batch_size: int, conjoin: bool) -> int:
    """Stream `data` in batches to a TSV (id, predicted label, one probability per class); returns the row count.

    Memory is bounded by one batch whatever the input size; the TSV appears only once every row is written.
    """
    out = Path(out)
    records = run.plugin.iter_records(data, "--data", run.job.data.sequence_column, run.job.data.label_column)
    _check_out(out)
    n = 0
    with atomic_open(out, "w", encoding="utf-8", newline="") as fh:
        fh.write("\t".join(["id", "predicted"] + [f"p_{c}" for c in run.classes]) + "\n")
        for batch in _batches(records, batch_size):
            ids, mask = run.collate.encode([s for _, s, _ in batch])
            probs = batch_logits(run.model, run.plugin, run.tokenizer, ids, mask, conjoin).softmax(-1)  # (b, c)
            for (rid, _, _), p in zip(batch, probs.tolist()):
                best = max(range(len(p)), key=p.__getitem__)
                fh.write("\t".join([rid, run.classes[best]] + [f"{x:.6f}" for x in p]) + "\n")
            n += len(batch)
    return n


@torch.no_grad()
def embed(run: TrainedRun, data, out, batch_size: int, per_position: bool) -> tuple[int, ...]:
    """Write pooled (n, d) or per-position (n, l, d) embeddings (final-norm hidden states) to .safetensors or .npy.

    Per-position rows are zero-padded to the longest sequence; safetensors also stores `lengths` (n,).
    Returns the shape of the embeddings.
    """
    out = Path(out)
    if out.suffix not in (".safetensors", ".npy"):
        raise UsageError(f"--out {out}: must end in .safetensors or .npy")
    model = run.model.eval()
    rows, lengths, ids_out = [], [], []
    records = run.plugin.iter_records(data, "--data", run.job.data.sequence_column, run.job.data.label_column)
    for batch in _batches(records, batch_size):
        ids, mask = run.collate.encode([s for _, s, _ in batch])
        hidden = model.hidden_states(ids, mask)  # (b, l, d), padding kept out of non-causal mixers
        lengths += mask.sum(1).tolist()
        ids_out += [rid for rid, _, _ in batch]
        rows += list(hidden) if per_position else list(pool(hidden, mask, model.config.pooling))
    if per_position:
        width = max(lengths)
        emb = torch.zeros(len(rows), width, rows[0].shape[-1])  # (n, l, d)
        for i, (h, k) in enumerate(zip(rows, lengths)):
            emb[i, :k] = h[:k]
    else:
        emb = torch.stack(rows)  # (n, d)
    _check_out(out)
    with atomic_open(out, "wb") as fh:
        if out.suffix == ".npy":
            import numpy as np

            np.save(fh, emb.numpy())
        else:
            from safetensors.torch import save

            meta = {"ids": json.dumps(ids_out), "per_position": str(per_position)}
            fh.write(save({"embeddings": emb.contiguous(), "lengths": torch.tensor(lengths)}, metadata=meta))
    return tuple(emb.shape)

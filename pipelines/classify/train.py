"""`seqssm classify train`: sequence classification (DNA by default; any `seqssm.domains` plugin) with a seqssm
model.

Dimension names used in this file:
    b batch · l sequence length (padded to the longest row of the batch) · c classes

Training: the domain plugin's labelled files (DNA: CSV/TSV or FASTA `>id label=X`) -> its tokenizer ->
right-padded batches -> optional random reverse complement of each row (data.rc_augment, stranded domains) ->
seqssm.build_model(head "classify") -> cross-entropy. AdamW with linear warm-up and cosine decay
(training.lr_schedule) over the whole run. The dev split is
scored every train.val_every steps; the weights with the best `train.monitor` are kept in memory and become the
saved model, and train.patience validations without improvement stop the run early.

At the end the selected model is scored on dev (and on the dev sequences that do not occur in train, when some
do) and test, each with reverse-complement conjoining on and off.

Run folder (`--out`): model/ (save_pretrained + tokenizer.json + classes.json), config.yaml (the resolved job),
metrics.json, history.json, curves.png, logs/metrics.csv. Written in a staging folder and moved into place.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

import seqssm
from seqssm import domains
from seqssm.config import validate_tree
from seqssm.domains.dna import dedup_against
from seqssm.pipelines.classify.config import ClassifyJobConfig
from seqssm.pipelines.classify.infer import ClassifyCollate, classification_metrics, evaluate
from seqssm.pipelines.jobconfig import UsageError
from seqssm.pipelines.rundir import atomic_write_json, check_out_dir, publish, staging_dir
from seqssm.pipelines.training import (
    make_trainer,
    TimeBudget, fit_and_validate, init_model, moe_aux_loss, optimizers, plot_curves,
)

ARTIFACTS = ("model", "config.yaml", "metrics.json", "history.json", "curves.png", "logs")


class ClassifyTask(L.LightningModule):
    """Cross-entropy around a seqssm SequenceClassifier; keeps the best weights on the monitored metric."""

    def __init__(self, model, job: ClassifyJobConfig, classes: list[str], total_steps: int, plugin):
        super().__init__()
        self.model, self.job, self.classes, self.total_steps = model, job, classes, total_steps
        self.budget = TimeBudget(job.train.max_minutes)
        self.rc = plugin.random_reverse_complement(job.data.rc_augment, job.train.seed) if plugin.strands else None
        self.history: dict[str, list] = {"train": [], "val": []}
        self.best_value, self.best_step, self.best_state, self.bad = None, 0, None, 0
        self._val_logits, self._val_labels = [], []
        self.val_seconds, self._t0 = 0.0, 0.0

    def training_step(self, batch, batch_idx):
        ids, mask = batch["input_ids"], batch["attention_mask"]  # (b, l) each
        if self.rc is not None and self.job.data.rc_augment > 0:
            ids = self.rc(ids, mask)
        loss = torch.nn.functional.cross_entropy(self.model(ids, mask), batch["labels"])  # logits (b, c)
        self.history["train"].append([self.global_step + 1, float(loss.detach())])
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss + moe_aux_loss(self, self.model)

    def on_validation_epoch_start(self):
        self._val_logits, self._val_labels = [], []
        self._t0 = time.perf_counter()

    def validation_step(self, batch, batch_idx):
        self._val_logits.append(self.model(batch["input_ids"], batch["attention_mask"]).detach())
        self._val_labels.append(batch["labels"])

    def on_validation_epoch_end(self):
        m = classification_metrics(torch.cat(self._val_logits), torch.cat(self._val_labels), self.classes)
        row = {"val_loss": m["loss"], "val_acc": m["accuracy"], "val_mcc": m["mcc"], "val_f1": m["f1_macro"],
               "val_auroc": m["auroc"]}
        self.history["val"].append([int(self.global_step), row])
        for k, v in row.items():
            self.log(k, v, prog_bar=k in ("val_mcc", "val_loss"))
        value = row[self.job.train.monitor]
        sign = -1.0 if self.job.train.monitor == "val_loss" else 1.0
        if self.best_value is None or sign * value > sign * self.best_value:
            self.best_value, self.best_step, self.bad = value, int(self.global_step), 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.bad += 1
            if self.job.train.patience and self.bad >= self.job.train.patience:
                self.trainer.should_stop = True
        self.val_seconds += time.perf_counter() - self._t0

    def configure_optimizers(self):
        return optimizers(self.model, self.job.train, self.total_steps, self.budget)


def _scores(model, plugin, collate, ds, classes, batch_size) -> dict:
    """Metrics with both strands conjoined and on the given strand (the given strand only without strands)."""
    modes = (("rc_conjoin", True), ("single_strand", False)) if plugin.strands else (("single_strand", False),)
    return {name: evaluate(model, plugin, collate, ds, classes, batch_size, conjoin) for name, conjoin in modes}


def train_classifier(job: ClassifyJobConfig, overwrite: bool = False) -> dict:
    """Train as `job` says and write the run folder `job.out_dir`; returns the metrics dict."""
    validate_tree(job)
    plugin = domains.load(job.data.domain)
    tok = plugin.tokenizer()
    if job.model.strand.rc_equivariant:  # Caduceus-PS needs the tokenizer's complement map; saved with the model
        strand = dataclasses.replace(job.model.strand, rc_complement=tok.complement_ids.tolist())
        job = dataclasses.replace(job, model=dataclasses.replace(job.model, strand=strand))
        validate_tree(job)
    d, t = job.data, job.train
    if not d.train or not d.val:
        raise UsageError("data.train and data.val are required: pass --train FILE --val FILE")

    def read(path, option, classes=None):
        return plugin.read_labelled(path, option, d.max_length, d.truncation, classes, d.sequence_column,
                                    d.label_column)

    train = read(d.train, "--train")
    val = read(d.val, "--val", train.classes)
    test = read(d.test, "--test", train.classes) if d.test else None
    out = check_out_dir(job.out_dir, overwrite)
    resolved = {k: str(Path(getattr(d, k)).resolve()) if getattr(d, k) else "" for k in ("train", "val", "test")}
    model_cfg = dataclasses.replace(job.model, num_classes=train.num_classes)
    job = dataclasses.replace(job, model=model_cfg, data=dataclasses.replace(d, **resolved))

    steps_per_epoch = math.ceil(len(train) / d.batch_size)
    total = t.max_steps or t.max_epochs * steps_per_epoch
    if t.threads:
        torch.set_num_threads(t.threads)
    collate = ClassifyCollate(tok, d.max_length, d.truncation)
    with staging_dir(out) as stage:
        L.seed_everything(t.seed, workers=True, verbose=False)
        model = seqssm.build_model(job.model)
        init_model(model, t.init_from)
        task = ClassifyTask(model, job, train.classes, total, plugin)
        train_dl = DataLoader(train, batch_size=d.batch_size, shuffle=True, collate_fn=collate,
                              generator=torch.Generator().manual_seed(t.seed), num_workers=d.num_workers)
        val_dl = DataLoader(val, batch_size=d.eval_batch_size, collate_fn=collate, num_workers=d.num_workers)
        trainer = make_trainer(
            accelerator=t.accelerator, devices=t.devices, precision=t.precision,
            max_steps=total, max_epochs=-1 if t.max_steps else t.max_epochs,
            val_check_interval=min(t.val_every, total), check_val_every_n_epoch=None, num_sanity_val_steps=0,
            gradient_clip_val=t.grad_clip if t.grad_clip > 0 else None, gradient_clip_algorithm="norm",
            log_every_n_steps=min(t.log_every, total), logger=CSVLogger(save_dir=str(stage), name="", version="logs"),
            enable_checkpointing=False, enable_progress_bar=t.progress_bar, enable_model_summary=t.progress_bar,
            deterministic="warn" if t.deterministic else False, default_root_dir=str(stage),
            **task.budget.trainer_kwargs(),
        )
        seconds = fit_and_validate(trainer, task, train_dl, val_dl)
        model.load_state_dict(task.best_state)  # the selected model, not the last one
        model.cpu().eval()

        eb = d.eval_batch_size
        dup = dedup_against(train.sequences, val.sequences)
        metrics = {
            "classes": train.classes,
            "n_train": len(train),
            "parameters": sum(p.numel() for p in model.parameters()),
            "init_from": t.init_from or None,
            "steps": int(trainer.global_step),
            "epochs": round(trainer.global_step / steps_per_epoch, 3),
            "seconds": round(seconds, 3),
            "train_seconds": round(seconds - task.val_seconds, 3),
            "monitor": t.monitor,
            "best_step": task.best_step,
            "best_value": task.best_value,
            "dev": _scores(model, plugin, collate, val, train.classes, eb),
            "dev_duplicates_of_train": dup.n_duplicates,
        }
        if dup.n_duplicates:
            keep = dup.unique_dev
            unique = type(val)([val.sequences[i] for i in keep], [val.labels[i] for i in keep], val.classes,
                               f"{val.source} (not in train)")
            metrics["dev_unique"] = _scores(model, plugin, collate, unique, train.classes, eb) if len(unique) else None
        if test is not None:
            metrics["test"] = _scores(model, plugin, collate, test, train.classes, eb)

        model.save_pretrained(stage / "model", extra_files={"tokenizer.json": tok.to_json(),
                                                            "classes.json": json.dumps(train.classes)})
        seqssm.save_config(job, stage / "config.yaml")
        atomic_write_json(stage / "metrics.json", metrics)
        atomic_write_json(stage / "history.json", task.history)
        plot_curves(task.history, stage / "curves.png", f"{Path(d.train).name}: {task.history['train'][-1][0]} steps",
                    metrics=("val_mcc", "val_acc", "val_f1", "val_auroc"), monitor=t.monitor)
        publish(stage, out, ARTIFACTS)
    return metrics

"""`seqssm classify train`: sequence classification (DNA by default; any `seqssm.domains` plugin) with a seqssm
model.

Dimension names used in this file:
    b batch · l sequence length (padded to the longest row of the batch) · c classes

Training: the domain plugin's labelled files (DNA: CSV/TSV or FASTA `>id label=X`) -> its tokenizer ->
right-padded batches -> optional random reverse complement of each row (data.rc_augment, stranded domains) ->
seqssm.build_model(head "classify") -> cross-entropy. AdamW with linear warm-up and cosine decay
(training.lr_schedule) over the whole run. The dev split is
scored every train.val_every steps; the weights with the best `train.monitor` are kept in memory and become the
saved model, and train.patience validations without improvement stop a run that has no time budget early.

At the end the selected model is scored on dev (and on the dev sequences that do not occur in train, when some
do) and test, each with reverse-complement conjoining on and off: one pass per split, both strands of a batch
in one forward call (infer.dataset_logits_both), the dev-unique numbers taken from the dev logits.

Wall-clock budget (train.max_minutes = M): the whole job — reading the data, training, the last validation, the
final scoring and writing the run folder — is meant to end within M minutes. The clock starts when the job
starts; training stops as soon as the time left is less than the predicted cost of what still has to run after
it (`EvalReserve`: the last validation plus the final scoring, predicted from the measured time per sequence of
the validations so far, or of training before the first validation, with a safety factor), and the cosine
schedule follows the clock to that moment.

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
from seqssm.pipelines.classify.infer import (
    ClassifyCollate, classification_metrics, dataset_logits, dataset_logits_both,
)
from seqssm.pipelines.jobconfig import UsageError
from seqssm.pipelines.rundir import atomic_write_json, check_out_dir, publish, staging_dir
from seqssm.pipelines.training import (
    ReserveAfterTraining, TimeBudget, fit_and_validate, init_model, make_trainer, moe_aux_loss, optimizers,
    plot_curves, training_seconds_left,
)

ARTIFACTS = ("model", "config.yaml", "metrics.json", "history.json", "curves.png", "logs")


class EvalReserve(ReserveAfterTraining):
    """What follows training in `classify train`: one more dev validation (single strand) plus the final scoring
    (dev and test, both strands: twice the rows); the units are sequences."""

    def __init__(self, n_dev: int, n_test: int, strands: bool, safety: float = 1.5, fixed: float = 5.0):
        super().__init__(n_dev + (2 if strands else 1) * (n_dev + n_test), safety, fixed)

    # the per-unit rates under the names of this job's unit
    val_seq_seconds = property(lambda self: self.val_unit_seconds,
                               lambda self, v: setattr(self, "val_unit_seconds", v))
    train_seq_seconds = property(lambda self: self.train_unit_seconds,
                                 lambda self, v: setattr(self, "train_unit_seconds", v))


class ClassifyTask(L.LightningModule):
    """Cross-entropy around a seqssm SequenceClassifier; keeps the best weights on the monitored metric."""

    def __init__(self, model, job: ClassifyJobConfig, classes: list[str], total_steps: int, plugin,
                 job_start: float | None = None, reserve: EvalReserve | None = None):
        super().__init__()
        self.model, self.job, self.classes, self.total_steps = model, job, classes, total_steps
        self.budget = TimeBudget(job.train.max_minutes)
        # the job's clock (the budget covers the whole job) and what must still run after training
        self.job_start = time.perf_counter() if job_start is None else job_start
        self.reserve = reserve
        self._step_t0, self._train_rows, self._train_time, self._steps_seen = 0.0, 0, 0.0, 0
        self.val_rows = 0
        self.rc = plugin.random_reverse_complement(job.data.rc_augment, job.train.seed) if plugin.strands else None
        self.history: dict[str, list] = {"train": [], "val": []}
        self.best_value, self.best_step, self.best_state, self.bad = None, 0, None, 0
        self._val_logits, self._val_labels = [], []
        self.val_seconds, self._t0 = 0.0, 0.0

    def on_train_batch_start(self, batch, batch_idx):
        self._step_t0 = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        """The wall-clock budget: stop when the time left no longer covers what runs after training."""
        self._steps_seen += 1
        if self._steps_seen > 1:  # the first step pays for start-up (kernel compilation, allocation): not a rate
            self._train_time += time.perf_counter() - self._step_t0
            self._train_rows += len(batch["labels"])
        if not self.budget.seconds or self.reserve is None:
            return
        now = time.perf_counter()
        if not self._train_rows and self.reserve.val_seq_seconds is None:  # no rate yet: only the hard limit
            if now - self.job_start >= self.budget.seconds:
                self.trainer.should_stop = True
            return
        if self._train_rows:
            self.reserve.train_seq_seconds = self._train_time / self._train_rows
        if training_seconds_left(self.budget, now - self.job_start, self.reserve) <= 0:
            self.trainer.should_stop = True

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
        self.val_rows += len(batch["labels"])

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
            # with a time budget the run keeps going: the cosine schedule anneals to the end of the budget, and
            # dev loss was still falling when dev MCC (noisy on a few hundred rows) had stopped rising (GUE
            # mouse_0, docs/dna.md); the best checkpoint on dev is still the one kept
            if self.job.train.patience and not self.budget.seconds and self.bad >= self.job.train.patience:
                self.trainer.should_stop = True
        self.val_seconds += time.perf_counter() - self._t0
        if self.reserve is not None and self.val_rows:
            self.reserve.val_seq_seconds = self.val_seconds / self.val_rows

    def configure_optimizers(self):
        return optimizers(self.model, self.job.train, self.total_steps, self.budget)


def _time_steps(job: ClassifyJobConfig, batch: dict, steps: int = 2) -> float:
    """Seconds of one training step (forward, backward, AdamW) of a freshly built model of `job.model` on
    `batch`, the median of `steps` timed steps after one untimed warm-up step (kernel compilation, allocator)."""
    model = seqssm.build_model(job.model)
    opt = torch.optim.AdamW(model.parameters(), lr=0.0)  # lr 0: timing only, nothing learned or kept
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        loss.backward()
        opt.step()
        opt.zero_grad()
        if i:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def choose_width(job: ClassifyJobConfig, t_max: float, steps_per_epoch: int, seconds_left,
                 log=print) -> tuple[int, int, dict]:
    """train.target_epochs with a time budget: the largest model — width first (the configured d_model, else
    lower multiples of 16, not below 32), then depth (n_layer down to 2) — whose predicted training time covers
    target_epochs passes over the training set. Returns (d_model, n_layer, what was measured and chosen).

    `t_max`: the seconds of one training step of the configured model (_time_steps). Smaller models are predicted
    from it as proportional to d_model · n_layer. `seconds_left(step_seconds)`: the training time the budget leaves
    a model with that step time (the final scoring of a smaller model is cheaper too). Measured on this project's CPU (one thread, batch 64, 300 bp,
    4 layers): 7.6k / 3.9k / 1.7k training tokens per second at d_model 32 / 64 / 128, so the real saving of a
    narrower model is at least the linear one and the prediction errs on the side of fitting the budget. The
    reason to shrink at all: on a small budget and a small task, passes over the data matter more than width (a
    model that has seen the training set once or twice has not converged; early stopping on dev guards against
    the other side, overfitting)."""
    d_max, l_max = job.model.d_model, job.model.n_layer
    need = job.train.target_epochs * steps_per_epoch
    info = {"configured_d_model": d_max, "configured_n_layer": l_max, "step_seconds_at_configured": round(t_max, 4),
            "steps_needed": need}
    even = 2 if job.model.strand.rc_equivariant else 1

    def cost(d, n):
        return (d / d_max) * (n / l_max) * t_max

    def fits(d, n):
        return cost(d, n) * need <= seconds_left(cost(d, n))

    d, n = d_max, l_max
    while d > 32 and not fits(d, n):
        d = max(32, (d - 1) // 16 * 16)  # the next multiple of 16 below
    while n > 2 and not fits(d, n):
        n -= 1
    d, n = min(d, d_max) - d % even, min(n, l_max)
    left = seconds_left(cost(d, n))
    info.update(d_model=d, n_layer=n, train_seconds_left=round(left, 1), predicted_steps=int(left / cost(d, n)))
    log(f"seqssm classify train: d_model {d}, n_layer {n} (a step of d_model {d_max}, {l_max} layers took "
        f"{t_max:.2f} s; {need:g} steps for {job.train.target_epochs:g} epochs in {left:.0f} s of training)")
    return d, n, info


def _scores(model, plugin, collate, ds, classes, batch_size, subset=None) -> dict:
    """Metrics with both strands conjoined and on the given strand (the given strand only without strands),
    from one pass over `ds`; `subset` (row indices) also scores those rows alone, from the same logits."""
    if plugin.strands:
        fwd, rev, y = dataset_logits_both(model, plugin, collate, ds, batch_size)
        modes = {"rc_conjoin": (fwd + rev) / 2, "single_strand": fwd}
    else:
        fwd, y = dataset_logits(model, plugin, collate, ds, batch_size, False)
        modes = {"single_strand": fwd}
    out = {name: classification_metrics(lg, y, classes) for name, lg in modes.items()}
    if subset is None:
        return out
    idx = torch.as_tensor(subset, dtype=torch.long)
    return out, ({name: classification_metrics(lg[idx], y[idx], classes) for name, lg in modes.items()}
                 if len(idx) else None)


def decide_orientation(setting: str, train, val, log=print) -> dict:
    """data.orientation "oriented", or "auto": the k-mer probe on dev (pipelines/kmer.py) says whether the task's
    label belongs to the given strand (then training without reverse complements and scoring one strand wins)."""
    if setting == "oriented":
        return {"setting": setting, "oriented": True, "probe": None}
    from seqssm.pipelines.kmer import orientation_probe

    probe = orientation_probe(train, val)
    log(f"seqssm classify train: orientation probe (k-mer models, dev log-loss): {probe['dev_loss_forward']:.4f} on "
        f"the given strand, {probe['dev_loss_both']:.4f} both strands pooled (difference "
        f"{probe['loss_gain_forward']:+.4f} ± {probe['stderr']:.4f}) -> "
        f"{'oriented: no reverse complements' if probe['oriented'] else 'strand-symmetric'} ({probe['seconds']} s)")
    return {"setting": setting, "oriented": probe["oriented"], "probe": probe}


def train_classifier(job: ClassifyJobConfig, overwrite: bool = False) -> dict:
    """Train as `job` says and write the run folder `job.out_dir`; returns the metrics dict."""
    job_start = time.perf_counter()  # train.max_minutes covers the whole job from here
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

    orientation = None
    if plugin.strands and d.orientation != "symmetric":
        orientation = decide_orientation(d.orientation, train, val)
        if orientation["oriented"]:  # the label belongs to the given strand: no reverse complements anywhere
            job = dataclasses.replace(job, data=dataclasses.replace(job.data, rc_augment=0.0),
                                      eval=dataclasses.replace(job.eval, rc_conjoin=False))
            d = job.data

    steps_per_epoch = math.ceil(len(train) / d.batch_size)
    total = t.max_steps or t.max_epochs * steps_per_epoch
    if t.threads:
        torch.set_num_threads(t.threads)
    collate = ClassifyCollate(tok, d.max_length, d.truncation)
    reserve = EvalReserve(len(val), len(test) if test is not None else 0, plugin.strands)
    sizing = None
    if t.target_epochs and t.max_minutes and not t.init_from:  # a pretrained backbone fixes its own width
        torch.manual_seed(t.seed)
        probe = collate([train[i] for i in torch.randperm(len(train))[: d.batch_size].tolist()])
        t_max = _time_steps(job, probe)

        def seconds_left(step_seconds: float) -> float:  # the budget after the scoring of a model this fast
            reserve.train_seq_seconds = step_seconds / len(probe["labels"])
            return 60 * t.max_minutes - (time.perf_counter() - job_start) - reserve.seconds()

        width, depth, sizing = choose_width(job, t_max, steps_per_epoch, seconds_left)
        job = dataclasses.replace(job, model=dataclasses.replace(job.model, d_model=width, n_layer=depth))
        reserve.train_seq_seconds = None
    if not t.val_every:
        t = dataclasses.replace(t, val_every=max(1, round(steps_per_epoch / t.val_per_epoch)))
        job = dataclasses.replace(job, train=t)
    with staging_dir(out) as stage:
        L.seed_everything(t.seed, workers=True, verbose=False)
        model = seqssm.build_model(job.model)
        init_model(model, t.init_from)
        task = ClassifyTask(model, job, train.classes, total, plugin, job_start, reserve)
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
        )  # no Lightning max_time: ClassifyTask stops the fit itself, leaving time for the final scoring
        seconds = fit_and_validate(trainer, task, train_dl, val_dl)
        model.load_state_dict(task.best_state)  # the selected model, not the last one
        model.cpu().eval()

        eb = d.eval_batch_size
        dup = dedup_against(train.sequences, val.sequences)
        t_eval = time.perf_counter()
        dev_scores, dev_unique = _scores(model, plugin, collate, val, train.classes, eb, dup.unique_dev)
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
            "sizing": sizing,
            "orientation": orientation,
            "dev": dev_scores,
            "dev_duplicates_of_train": dup.n_duplicates,
        }
        if dup.n_duplicates:
            metrics["dev_unique"] = dev_unique
        if test is not None:
            metrics["test"] = _scores(model, plugin, collate, test, train.classes, eb)
            metrics["test_duplicates_of_train"] = dedup_against(train.sequences, test.sequences).n_duplicates
        # wall-clock seconds (not reproducible run to run, unlike everything above)
        metrics["timing"] = {"final_scoring": round(time.perf_counter() - t_eval, 3),
                             "reserved_after_training": round(reserve.seconds(), 3)}
        if orientation and orientation["probe"]:  # seconds are not reproducible: with the other timings
            metrics["timing"]["orientation_probe"] = orientation["probe"].pop("seconds")

        model.save_pretrained(stage / "model", extra_files={"tokenizer.json": tok.to_json(),
                                                            "classes.json": json.dumps(train.classes)})
        seqssm.save_config(job, stage / "config.yaml")
        atomic_write_json(stage / "metrics.json", metrics)
        atomic_write_json(stage / "history.json", task.history)
        plot_curves(task.history, stage / "curves.png", f"{Path(d.train).name}: {task.history['train'][-1][0]} steps",
                    metrics=("val_mcc", "val_acc", "val_f1", "val_auroc"), monitor=t.monitor)
        publish(stage, out, ARTIFACTS)
    metrics["timing"]["job"] = round(time.perf_counter() - job_start, 3)  # the whole job, files written
    atomic_write_json(out / "metrics.json", metrics)
    return metrics

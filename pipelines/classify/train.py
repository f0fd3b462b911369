"""`seqssm classify train | eval | predict | embed`: DNA sequence classification with a seqssm model.

Dimension names used in this file:
    b batch · l sequence length (padded to the longest row of the batch) · c classes

Training: labelled CSV (`sequence,label`) or FASTA (`>id label=X`) -> NucleotideTokenizer -> right-padded batches
-> optional random reverse complement of each row (data.rc_augment) -> seqssm.build_model(head "classify") ->
cross-entropy. AdamW with linear warm-up and cosine decay (lm.lr_lambda) over the whole run. The dev split is
scored every train.val_every steps; the weights with the best `train.monitor` are kept in memory and become the
saved model, and train.patience validations without improvement stop the run early.

At the end the selected model is scored on dev (and on the dev sequences that do not occur in train, when some
do) and test, each with reverse-complement conjoining on and off.

Run folder (`--out`): model/ (save_pretrained + tokenizer.json + classes.json), config.yaml (the resolved job),
metrics.json, history.json, curves.png, logs/metrics.csv. Written in a staging folder and moved into place.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from seqssm.pipelines.config import ClassifyJobConfig, UsageError, validate_tree
from seqssm.pipelines import jobcli
from seqssm.pipelines.jobcli import add_train_parser, fit_and_validate, print_resolved
from seqssm.pipelines.runio import atomic_write_json, check_out_dir, publish, staging_dir

ARTIFACTS = ("model", "config.yaml", "metrics.json", "history.json", "curves.png", "logs")
DEFAULT_CONFIG = "classify_dna"


def _task_class():
    import lightning as L

    from seqssm.domains.dna import RandomReverseComplement
    from seqssm.pipelines.classify_io import classification_metrics
    from seqssm.pipelines.jobcli import TimeBudget
    from seqssm.pipelines.lm import moe_aux_loss

    class ClassifyTask(L.LightningModule):
        """Cross-entropy around a seqssm SequenceClassifier; keeps the best weights on the monitored metric."""

        def __init__(self, model, job: ClassifyJobConfig, classes: list[str], total_steps: int):
            super().__init__()
            self.model, self.job, self.classes, self.total_steps = model, job, classes, total_steps
            self.budget = TimeBudget(job.train.max_minutes)
            self.rc = RandomReverseComplement(job.data.rc_augment, seed=job.train.seed)
            self.history: dict[str, list] = {"train": [], "val": []}
            self.best_value, self.best_step, self.best_state, self.bad = None, 0, None, 0
            self._val_logits, self._val_labels = [], []
            self.val_seconds, self._t0 = 0.0, 0.0

        def training_step(self, batch, batch_idx):
            ids, mask = batch["input_ids"], batch["attention_mask"]  # (b, l) each
            if self.job.data.rc_augment > 0:
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
            return jobcli.optimizers(self.model, self.job.train, self.total_steps, self.budget)

    return ClassifyTask


def _plot_curves(history: dict, path: Path, title: str, monitor: str) -> None:
    """Training loss per step (and its running mean) beside the validation metrics against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    steps = np.array([s for s, _ in history["train"]], dtype=float)
    loss = np.array([v for _, v in history["train"]], dtype=float)
    a.plot(steps, loss, lw=0.8, alpha=0.5, label="train (per step)")
    k = max(1, len(loss) // 50)
    if k > 1:
        a.plot(steps[k - 1 :], np.convolve(loss, np.ones(k) / k, mode="valid"), lw=1.6, label=f"train (mean of {k})")
    vs = [s for s, _ in history["val"]]
    a.plot(vs, [r["val_loss"] for _, r in history["val"]], "o-", label="dev")
    a.set(xlabel="optimizer step", ylabel="cross-entropy (nats)", title=title)
    for key in ("val_mcc", "val_acc", "val_f1", "val_auroc"):
        b.plot(vs, [r[key] for _, r in history["val"]], "o-", lw=2.2 if key == monitor else 1.0, label=key)
    b.set(xlabel="optimizer step", ylabel="dev metric", title="dev split (single strand)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def _scores(model, collate, ds, classes, batch_size) -> dict:
    from seqssm.pipelines.classify_io import evaluate

    return {name: evaluate(model, collate, ds, classes, batch_size, conjoin)
            for name, conjoin in (("rc_conjoin", True), ("single_strand", False))}


def train_classifier(job: ClassifyJobConfig, overwrite: bool = False) -> dict:
    """Train as `job` says and write the run folder `job.out_dir`; returns the metrics dict."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    import seqssm
    from seqssm.domains.dna import LabelledSequences, NucleotideTokenizer, dedup_against
    from seqssm.pipelines.classify_io import ClassifyCollate, load_labelled

    if job.model.rc_equivariant:  # Caduceus-PS needs the tokenizer's complement map; it is saved with the model
        job = dataclasses.replace(job, model=dataclasses.replace(
            job.model, rc_complement=NucleotideTokenizer().complement_ids.tolist()))
    validate_tree(job)
    d, t = job.data, job.train
    if not d.train or not d.val:
        raise UsageError("data.train and data.val are required: pass --train FILE --val FILE")
    train = load_labelled(d.train, "--train", d.max_length, d.truncation)
    val = load_labelled(d.val, "--val", d.max_length, d.truncation, classes=train.classes)
    test = load_labelled(d.test, "--test", d.max_length, d.truncation, classes=train.classes) if d.test else None
    out = check_out_dir(job.out_dir, overwrite)
    resolved = {k: str(Path(getattr(d, k)).resolve()) if getattr(d, k) else "" for k in ("train", "val", "test")}
    model_cfg = dataclasses.replace(job.model, num_classes=train.num_classes)
    job = dataclasses.replace(job, model=model_cfg, data=dataclasses.replace(d, **resolved))

    steps_per_epoch = math.ceil(len(train) / d.batch_size)
    total = t.max_steps or t.max_epochs * steps_per_epoch
    if t.threads:
        torch.set_num_threads(t.threads)
    tok = NucleotideTokenizer()
    collate = ClassifyCollate(tok, d.max_length, d.truncation)
    with staging_dir(out) as stage:
        L.seed_everything(t.seed, workers=True, verbose=False)
        model = seqssm.build_model(job.model)
        jobcli.init_model(model, t.init_from)
        task = _task_class()(model, job, train.classes, total)
        train_dl = DataLoader(train, batch_size=d.batch_size, shuffle=True, collate_fn=collate,
                              generator=torch.Generator().manual_seed(t.seed), num_workers=d.num_workers)
        val_dl = DataLoader(val, batch_size=d.eval_batch_size, collate_fn=collate, num_workers=d.num_workers)
        trainer = L.Trainer(
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
        dup = dedup_against(train, val)
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
            "dev": _scores(model, collate, val, train.classes, eb),
            "dev_duplicates_of_train": dup.n_duplicates,
        }
        if dup.n_duplicates:
            keep = dup.unique_dev
            unique = LabelledSequences([val.sequences[i] for i in keep], [val.labels[i] for i in keep], val.classes,
                                       f"{val.source} (not in train)")
            metrics["dev_unique"] = _scores(model, collate, unique, train.classes, eb) if len(unique) else None
        if test is not None:
            metrics["test"] = _scores(model, collate, test, train.classes, eb)

        model.save_pretrained(stage / "model", extra_files={"tokenizer.json": tok.to_json(),
                                                            "classes.json": json.dumps(train.classes)})
        seqssm.save_config(job, stage / "config.yaml")
        atomic_write_json(stage / "metrics.json", metrics)
        atomic_write_json(stage / "history.json", task.history)
        _plot_curves(task.history, stage / "curves.png", f"{Path(d.train).name}: {task.history['train'][-1][0]} steps",
                     t.monitor)
        publish(stage, out, ARTIFACTS)
    return metrics


# ---------------------------------------------------------------------------------------------- command line


def load_job(config: str | None, overrides=(), train=None, val=None, test=None, out=None) -> ClassifyJobConfig:
    from seqssm.pipelines.jobcli import load_job as load

    inputs = {"data.train": train, "data.val": val, "data.test": test, "out_dir": out}
    return load(ClassifyJobConfig, config, DEFAULT_CONFIG, overrides, inputs)


def _line(name: str, m: dict) -> str:
    return f"{name}: MCC {m['mcc']:.4f}  accuracy {m['accuracy']:.4f}  F1 {m['f1_macro']:.4f}  AUROC {m['auroc']:.4f}"


def _cmd_train(args: argparse.Namespace) -> int:
    job = load_job(args.config, args.set, args.train, args.val, args.test, args.out)
    if args.print_config:
        return print_resolved(job)
    m = train_classifier(job, overwrite=args.overwrite)
    print(f"seqssm classify train: {m['steps']} steps ({m['epochs']} epochs) in {m['seconds']:.1f} s; "
          f"best {m['monitor']} {m['best_value']:.4f} at step {m['best_step']}; run folder {job.out_dir}")
    for split in ("dev", "dev_unique", "test"):
        if m.get(split):
            for mode, v in m[split].items():
                print("  " + _line(f"{split} ({mode})", v))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from seqssm.pipelines.classify_io import evaluate, load_labelled, load_run
    from seqssm.pipelines.runio import atomic_write_json as write

    run = load_run(args.model)
    d = run.job.data
    ds = load_labelled(args.data, "--data", d.max_length, d.truncation, classes=run.classes)
    m = evaluate(run.model, run.collate, ds, run.classes, args.batch_size or d.eval_batch_size, args.rc_conjoin)
    m.update(data=str(Path(args.data).resolve()), rc_conjoin=args.rc_conjoin)
    print(_line(f"{args.data} ({'rc_conjoin' if args.rc_conjoin else 'single_strand'})", m) + f"  n {m['n']}")
    if args.out:
        write(args.out, m)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from seqssm.pipelines.classify_io import load_run, predict_tsv

    run = load_run(args.model)
    conjoin = run.job.eval.rc_conjoin and not args.no_rc_conjoin  # the run's eval.rc_conjoin unless turned off
    n = predict_tsv(run, args.data, args.out, args.batch_size or run.job.data.eval_batch_size, conjoin)
    print(f"seqssm classify predict: {n} sequences -> {args.out}")
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    from seqssm.pipelines.classify_io import embed, load_run

    run = load_run(args.model)
    shape = embed(run, args.data, args.out, args.batch_size or run.job.data.eval_batch_size, args.per_position)
    print(f"seqssm classify embed: {shape} -> {args.out}")
    return 0


def register(subparsers) -> None:
    cl = subparsers.add_parser("classify", help="DNA sequence classification: train, eval, predict, embed")
    sub = cl.add_subparsers(dest="classify_command", metavar="ACTION")
    sub.required = True

    add_train_parser(sub, "train a classifier on labelled CSV/FASTA; writes a run folder", DEFAULT_CONFIG,
                     "model.n_layer=6", [
                         ("--train", "training CSV (sequence,label) or FASTA (>id label=X); sets data.train"),
                         ("--val", "dev split, for model selection; sets data.val"),
                         ("--test", "test split, scored once at the end; sets data.test")], _cmd_train)

    def common(p, data_help):
        p.add_argument("--model", required=True, help="run folder of 'seqssm classify train'")
        p.add_argument("--data", required=True, help=data_help)
        p.add_argument("--batch-size", type=int, default=0, help="sequences per batch (default: data.eval_batch_size)")

    ev = sub.add_parser("eval", help="metrics of a trained run on a labelled CSV/FASTA")
    common(ev, "labelled CSV or FASTA")
    ev.add_argument("--rc-conjoin", action="store_true", help="average the logits of both strands")
    ev.add_argument("--out", help="also write the metrics to this JSON file")
    ev.set_defaults(func=_cmd_eval)

    pr = sub.add_parser("predict", help="predicted label and class probabilities per sequence, as TSV")
    common(pr, "FASTA or CSV (a label column is not needed)")
    pr.add_argument("--out", required=True, help="TSV to write (id, predicted, p_<class> ...)")
    pr.add_argument("--no-rc-conjoin", action="store_true",
                    help="score the given strand only (default: eval.rc_conjoin of the run)")
    pr.set_defaults(func=_cmd_predict)

    em = sub.add_parser("embed", help="pooled (or per-position) embeddings to .safetensors or .npy")
    common(em, "FASTA or CSV")
    em.add_argument("--out", required=True, help="EMB.safetensors or EMB.npy")
    em.add_argument("--per-position", action="store_true", help="(n, l, d) zero-padded instead of pooled (n, d)")
    em.set_defaults(func=_cmd_embed)

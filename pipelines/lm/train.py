"""`seqssm lm train`: a byte-level language model (the MambaByte setting) on any file.

Dimension names: b batch · l sequence length (data.seq_len) · v vocabulary (256 bytes).

Data: the file's bytes through np.memmap (never read whole; seqssm.domains.bytes). The last `data.val_fraction`
of the file is held out; validation reads it as contiguous, non-overlapping windows of l+1 bytes (stride l, so every held-out byte
after the first is a target once). Training draws windows of l+1 bytes at random offsets in the rest; window i
of the run comes from numpy's generator seeded with (train.seed, i), so the draw is the same whatever the number
of workers. Loss: cross-entropy in nats; bits per byte = nats / ln 2.

The model is `seqssm.build_model(cfg.model)`; the LightningModule here only wraps it (the model knows nothing
of Lightning). Optimiser AdamW over model.param_groups(weight_decay), linear warm-up then cosine decay to
lr * min_lr_ratio, gradient-norm clipping.

Run folder (`--out`): model/ (save_pretrained), config.yaml (the resolved job config), metrics.json,
history.json (train loss at every step, val loss at every validation), curves.png, logs/metrics.csv (CSVLogger).
All written in a staging folder and moved into place at the end.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

import seqssm
from seqssm.config import validate_tree
from seqssm.domains.bytes import ByteFile, TrainWindows, ValWindows
from seqssm.pipelines.jobconfig import UsageError
from seqssm.pipelines.lm.config import LMJobConfig
from seqssm.pipelines.rundir import atomic_write_json, check_out_dir, publish, staging_dir
from seqssm.pipelines.training import (
    make_trainer,
    LN2, TimeBudget, fit_and_validate, init_model, moe_aux_loss, optimizers, plot_curves,
)

ARTIFACTS = ("model", "config.yaml", "metrics.json", "history.json", "curves.png", "logs")


class ByteLMTask(L.LightningModule):
    """Next-byte prediction around a seqssm model; keeps the loss history for metrics and curves."""

    def __init__(self, model: torch.nn.Module, train_cfg):
        super().__init__()
        self.model = model
        self.train_cfg = train_cfg
        self.budget = TimeBudget(train_cfg.max_minutes)
        self.history: dict[str, list] = {"train": [], "val": []}
        self._val_sum = 0.0
        self._val_count = 0
        self.val_seconds = 0.0
        self._val_t0 = 0.0

    def _loss(self, batch: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        x, y = batch[:, :-1], batch[:, 1:]  # (b, l) each
        logits = self.model(x)  # (b, l, v) float32
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), reduction=reduction
        )

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.history["train"].append([self.global_step + 1, float(loss.detach())])
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        self.log("train_bpb", loss.detach() / LN2, on_step=True, on_epoch=False)
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss + moe_aux_loss(self, self.model)

    def on_validation_epoch_start(self):
        self._val_sum, self._val_count = 0.0, 0
        self._val_t0 = time.perf_counter()

    def validation_step(self, batch, batch_idx):
        loss_sum = self._loss(batch, reduction="sum")
        self._val_sum += float(loss_sum)
        self._val_count += batch[:, 1:].numel()

    def on_validation_epoch_end(self):
        val_loss = self._val_sum / max(1, self._val_count)
        self.history["val"].append([int(self.global_step), val_loss])
        self.log("val_loss", val_loss, prog_bar=True)
        self.log("val_bpb", val_loss / LN2, prog_bar=True)
        self.val_seconds += time.perf_counter() - self._val_t0

    def configure_optimizers(self):
        return optimizers(self.model, self.train_cfg, self.train_cfg.max_steps, self.budget)


def prepare_job(job: LMJobConfig) -> ByteFile:
    """Validate the job's values and open its data; raises UsageError naming the key or file."""
    validate_tree(job)
    if not job.data.path:
        raise UsageError("data.path is empty: pass --data FILE (or --set data.path=FILE)")
    return ByteFile(job.data.path, job.data.seq_len, job.data.val_fraction)


def train_lm(job: LMJobConfig, overwrite: bool = False) -> dict:
    """Train a byte LM as `job` says and write the run folder `job.out_dir`; returns the metrics dict."""
    data = prepare_job(job)
    out = check_out_dir(job.out_dir, overwrite)
    d, t = job.data, job.train
    job = dataclasses.replace(job, data=dataclasses.replace(d, path=str(Path(d.path).resolve())))

    if t.threads:
        torch.set_num_threads(t.threads)
    with staging_dir(out) as stage:
        L.seed_everything(t.seed, workers=True, verbose=False)
        model = seqssm.build_model(job.model)
        init_model(model, t.init_from)
        task = ByteLMTask(model, t)
        train_dl = DataLoader(
            TrainWindows(data, t.max_steps * d.batch_size, t.seed),
            batch_size=d.batch_size,
            shuffle=False,
            num_workers=d.num_workers,
            persistent_workers=d.num_workers > 0,
        )
        val_dl = DataLoader(ValWindows(data, d.val_max_windows), batch_size=d.batch_size, num_workers=d.num_workers)
        trainer = make_trainer(
            accelerator=t.accelerator,
            devices=t.devices,
            precision=t.precision,
            max_steps=t.max_steps,
            max_epochs=-1,
            val_check_interval=min(t.val_every, t.max_steps),
            num_sanity_val_steps=0,
            gradient_clip_val=t.grad_clip if t.grad_clip > 0 else None,
            gradient_clip_algorithm="norm",
            log_every_n_steps=min(t.log_every, t.max_steps),
            logger=CSVLogger(save_dir=str(stage), name="", version="logs"),
            enable_checkpointing=False,
            enable_progress_bar=t.progress_bar,
            enable_model_summary=t.progress_bar,
            deterministic="warn" if t.deterministic else False,
            default_root_dir=str(stage),
            **task.budget.trainer_kwargs(),
        )
        seconds = fit_and_validate(trainer, task, train_dl, val_dl)

        steps = int(trainer.global_step)
        train_losses = [loss for _, loss in task.history["train"]]
        last = train_losses[-min(len(train_losses), t.log_every) :]
        train_seconds = max(1e-9, seconds - task.val_seconds)
        tokens = steps * d.batch_size * d.seq_len
        final_val = task.history["val"][-1][1]
        metrics = {
            "data": job.data.path,
            "data_bytes": data.size,
            "train_bytes": data.split,
            "val_bytes_scored": len(val_dl.dataset) * d.seq_len,
            "parameters": sum(p.numel() for p in model.parameters()),
            "init_from": t.init_from or None,
            "steps": steps,
            "seconds": round(seconds, 3),
            "train_seconds": round(train_seconds, 3),
            "tokens_per_second": round(tokens / train_seconds, 1),
            "final_train_loss": float(np.mean(last)),  # nats, mean over the last log_every steps
            "final_train_bits_per_byte": float(np.mean(last)) / LN2,
            "val_loss": final_val,  # nats
            "val_bits_per_byte": final_val / LN2,
        }

        model.cpu().save_pretrained(stage / "model")
        seqssm.save_config(job, stage / "config.yaml")
        atomic_write_json(stage / "metrics.json", metrics)
        atomic_write_json(stage / "history.json", task.history)
        plot_curves(task.history, stage / "curves.png", f"{Path(job.data.path).name}: byte LM, {steps} steps")
        publish(stage, out, ARTIFACTS)
    return metrics

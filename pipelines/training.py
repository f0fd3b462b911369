"""The training toolkit shared by the Lightning jobs (`lm train`, `classify train`, `audio train`, `pretrain`):
the wall-clock budget, AdamW with the one learning-rate schedule, the MoE auxiliary loss, initialisation from a
pretrained backbone, the one construction of a Lightning Trainer (its start-up chatter goes to the run's log,
not the console), fitting with a final validation, and the loss-curve plot.

Dimension names: none (scalars and histories only).
"""

from __future__ import annotations

import logging
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from seqssm.checkpoint import CheckpointError, load_backbone_weights, load_into
from seqssm.pipelines.rundir import save_figure

LN2 = math.log(2.0)


class TimeBudget:
    """train.max_minutes as a clock: 0 means no budget. The clock starts at its first reading, which is the
    scheduler's construction in configure_optimizers, right before the first step."""

    def __init__(self, minutes: float):
        self.seconds = 60.0 * minutes
        self.start: float | None = None
        # the seconds of training the schedule spreads itself over; a job that keeps time for work after
        # training (classify: the final scoring) lowers it as it learns how long that work takes
        self.train_seconds: float | None = None

    def fraction(self) -> float:
        """The share of the training time spent (0 without a budget)."""
        if not self.seconds:
            return 0.0
        if self.start is None:
            self.start = time.perf_counter()
        return (time.perf_counter() - self.start) / (self.train_seconds or self.seconds)

    def stop_in(self, seconds: float) -> None:
        """Training will stop `seconds` from now: the schedule's clock reaches its end then."""
        if self.start is not None:
            self.train_seconds = max(1.0, time.perf_counter() - self.start + seconds)

    def trainer_kwargs(self) -> dict:
        """Lightning stops the fit at the budget (and runs the usual end-of-fit hooks)."""
        return {"max_time": {"seconds": self.seconds}} if self.seconds else {}


class ReserveAfterTraining:
    """How long a budgeted job still needs once training stops (its final scoring and writing files), so that
    train.max_minutes covers the whole job: `units` (rows, or tokens) at the seconds per unit measured in the
    validations, or, before the first one, a third of training's (a forward pass without gradients costs about a
    third of a training step), times `safety`, plus `fixed` seconds for the files."""

    def __init__(self, units: float, safety: float = 1.5, fixed: float = 5.0):
        self.units, self.safety, self.fixed = units, safety, fixed
        self.val_unit_seconds: float | None = None
        self.train_unit_seconds: float | None = None

    def seconds(self) -> float:
        per = self.val_unit_seconds
        if per is None:
            per = (self.train_unit_seconds or 0.0) / 3
        return self.safety * per * self.units + self.fixed


def training_seconds_left(budget: TimeBudget, elapsed: float, reserve: ReserveAfterTraining) -> float:
    """Seconds training may still run when `elapsed` seconds of the job's budget are spent and `reserve` must
    follow; the cosine schedule is pointed at that moment, so the learning rate has come down when it stops."""
    left = budget.seconds - elapsed - reserve.seconds()
    budget.stop_in(left)
    return left


def lr_schedule(warmup_steps: int, total_steps: int, min_lr_ratio: float, budget: TimeBudget | None = None):
    """The multiplier of the base lr at optimizer step s: linear warm-up, then cosine decay to min_lr_ratio at
    total_steps (SGDR, Loshchilov & Hutter 2017, eq. 5, one cycle). With a time budget, the cosine runs at the
    larger of the step's and the clock's progress, so the learning rate has come down by the time the budget is
    spent, however fast the machine is."""

    def cosine(step: float) -> float:
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def f(step: int) -> float:
        spent = budget.fraction() if budget is not None else 0.0  # the first reading starts the clock
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if not spent:
            return cosine(step)
        return cosine(max(step, warmup_steps + spent * (total_steps - warmup_steps)))

    return f


def optimizers(model, train_cfg, total_steps: int, budget: TimeBudget) -> dict:
    """What a task's configure_optimizers returns: AdamW over model.param_groups (no decay on A_log, D, norms,
    biases, embeddings) and the per-step lr_schedule."""
    t = train_cfg
    opt = torch.optim.AdamW(model.param_groups(t.weight_decay), lr=t.lr, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(t.warmup_steps, total_steps, t.min_lr_ratio, budget))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}


def moe_aux_loss(task, model) -> "torch.Tensor | float":
    """The MoE load-balancing loss to add to a training loss (0 without MoE layers); logs it and the tokens the
    experts' capacity dropped this step, so that no token is dropped silently."""
    if not model.moe_layers():
        return 0.0
    aux = model.aux_loss()
    task.log("moe_aux_loss", aux.detach(), on_step=True, on_epoch=False)
    task.log("moe_dropped_tokens", float(sum(m.last_dropped for m in model.moe_layers())), on_step=True,
             on_epoch=False)
    return aux


def init_model(model, init_from: str) -> None:
    """train.init_from: start the backbone from a saved model (fine-tuning), or from a training checkpoint of a
    run that has not finished (`seqssm pretrain`'s RUN/checkpoints/step-N.ckpt); nothing when empty."""
    if not init_from:
        return
    path = Path(init_from)
    if path.is_file() and path.suffix == ".ckpt":
        load_backbone_from_checkpoint(model, path)
    else:
        load_backbone_weights(model, init_from)


def load_backbone_from_checkpoint(model, path: Path) -> int:
    """The `backbone.*` weights of a Lightning training checkpoint whose module holds the model as `.model` (every
    seqssm job) into `model`'s backbone; one-line CheckpointError for a file that is not one, or other shapes.
    Returns the number of tensors copied."""
    try:  # our own checkpoints: they hold the optimizer's and loops' state as well (not weights-only)
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        state = ckpt["state_dict"]
    except Exception as err:  # a truncated zip, garbage bytes, another kind of file: torch raises several types
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"train.init_from {path}: not a readable training checkpoint ({reason})") from None
    prefix = "model.backbone."
    source = {k[len(prefix):]: t for k, t in state.items() if k.startswith(prefix)}
    if not source:
        raise CheckpointError(f"train.init_from {path}: the checkpoint holds no {prefix}* weights")
    load_into(model.backbone, source, str(path))
    return len(source)


RUN_LOG = "lightning.log"  # in the run's logs/ folder, beside metrics.csv
_LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")
_LIGHTNING_PACKAGES = ("lightning", "lightning_fabric", "pytorch_lightning", "lightning_utilities")


class _RunLog(logging.Handler):
    """Lightning's log records go to the current run's log file; only errors also reach the console.

    Lightning prints GPU/TPU availability, a "litlogger" tip, the model summary and why the fit stopped through
    its loggers at INFO on every job; a user needs none of it to read the result, but the run keeps it. The file
    is opened per record (the run folder is renamed into place when the job ends) and only while its folder
    exists: a record after the job has published its folder is dropped, never written into a new folder.
    """

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.path: Path | None = None
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            sys.stderr.write(f"{record.getMessage()}\n")
        if self.path is None or not self.path.parent.is_dir():
            return
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(self.format(record) + "\n")
        except OSError:
            self.handleError(record)


_run_log = _RunLog()
_show_warning = warnings.showwarning


def _show_warning_quietly(message, category, filename, lineno, file=None, line=None):
    """Lightning's own warnings (a logging interval longer than an epoch, dataloader workers) are advice about
    Lightning settings the job chose; they join the run's log. Every other warning is shown as usual."""
    path = str(filename).replace("\\", "/")
    ours = category.__module__.startswith("lightning") or any(f"/{pkg}/" in path for pkg in _LIGHTNING_PACKAGES)
    if ours and _run_log.path is not None:
        _run_log.emit(logging.LogRecord("py.warnings", logging.WARNING, str(filename), lineno,
                                        f"{category.__name__}: {message}", None, None))
        return
    _show_warning(message, category, filename, lineno, file, line)


def _route_lightning_output(log_dir: Path | None) -> None:
    """Send Lightning's log records (and its warnings) to `log_dir`/lightning.log from now on."""
    for name in _LIGHTNING_LOGGERS:
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            if type(h) is logging.StreamHandler:  # the console handler Lightning adds when it is imported
                lg.removeHandler(h)
        if _run_log not in lg.handlers:
            lg.addHandler(_run_log)
        lg.propagate = False
        lg.setLevel(logging.INFO)
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        _run_log.path = log_dir / RUN_LOG
    warnings.showwarning = _show_warning_quietly


def make_trainer(**kwargs):
    """The one place a job builds its `lightning.Trainer` (same arguments). Lightning's start-up lines, model
    summary and advice go to RUN_LOG in the log folder of the trainer's first logger; the progress bar, and the
    job's own lines (final numbers, the run folder), stay on the console."""
    import lightning as L

    logger = kwargs.get("logger")
    first = logger[0] if isinstance(logger, (list, tuple)) and logger else logger
    log_dir = getattr(first, "log_dir", None) if first not in (None, False, True) else None
    _route_lightning_output(Path(log_dir) if log_dir else None)
    return L.Trainer(**kwargs)


def step_trainer(t, stage: Path, budget: TimeBudget):
    """make_trainer for a job counted in optimizer steps (a TrainConfig `t`): train.max_steps steps (or the time
    budget), validation every train.val_every global steps, CSV logs in stage/logs, no checkpoints."""
    from lightning.pytorch.loggers import CSVLogger

    return make_trainer(
        accelerator=t.accelerator, devices=t.devices, precision=t.precision, max_steps=t.max_steps,
        max_epochs=-1, val_check_interval=min(t.val_every, t.max_steps), check_val_every_n_epoch=None,
        num_sanity_val_steps=0, gradient_clip_val=t.grad_clip if t.grad_clip > 0 else None,
        gradient_clip_algorithm="norm", log_every_n_steps=min(t.log_every, t.max_steps),
        logger=CSVLogger(save_dir=str(stage), name="", version="logs"), enable_checkpointing=False,
        enable_progress_bar=t.progress_bar, enable_model_summary=t.progress_bar,
        deterministic="warn" if t.deterministic else False, default_root_dir=str(stage),
        **budget.trainer_kwargs(),
    )


def fit_and_validate(trainer, task, train_dl, val_dl) -> float:
    """trainer.fit, then one more validation unless the last one already ran at the final step (the task keeps
    history["val"] as [step, value] pairs). Returns the wall-clock seconds."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
        trainer.fit(task, train_dataloaders=train_dl, val_dataloaders=val_dl)
        if not task.history["val"] or task.history["val"][-1][0] != trainer.global_step:
            trainer.validate(task, dataloaders=val_dl, verbose=False)
    return time.perf_counter() - t0


def _series(pairs) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([s for s, _ in pairs], dtype=float), np.array([v for _, v in pairs], dtype=float))


def plot_curves(history: dict, path: Path, title: str, unit: str = "byte", metrics: tuple[str, ...] = (),
                monitor: str = "", loss_name: str = "") -> None:
    """The loss curves of a run, as PNG. history: {"train": [[step, nats]], "val": [[step, nats or row]]}.

    Without `metrics`: train and validation loss in bits per `unit` against step, the whole run and a zoom on its
    last 80 %; with `loss_name` (a loss that is not a cross-entropy) that loss as it is, labelled so. With `metrics`
    (validation rows are dicts holding "val_loss" and those keys): the training cross-entropy in nats beside the
    validation metrics, `monitor` drawn bold.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    steps, loss = _series(history["train"])
    scale = 1.0 if metrics or loss_name else 1.0 / LN2
    loss = loss * scale
    k = max(1, len(loss) // 50)
    vs = np.array([s for s, _ in history["val"]], dtype=float)
    if metrics:
        vloss = np.array([r["val_loss"] for _, r in history["val"]], dtype=float)
    else:
        vloss = np.array([v for _, v in history["val"]], dtype=float) * scale
    panels = (axes[0],) if metrics else axes
    for ax, zoom in zip(panels, (False, True)):
        ax.plot(steps, loss, lw=0.8, alpha=0.5, label="train (per step)")
        if k > 1:
            ax.plot(steps[k - 1 :], np.convolve(loss, np.ones(k) / k, mode="valid"), lw=1.6, label=f"train (mean of {k})")
        if len(vs):
            ax.plot(vs, vloss, "o-", lw=1.6, label="dev" if metrics else "validation")
        if zoom and len(steps) > 5:
            start = steps[0] + 0.2 * (steps[-1] - steps[0])
            tail = np.concatenate([loss[steps >= start], vloss[vs >= start]])
            lo, hi = np.percentile(tail, 1), np.percentile(tail, 99)
            pad = 0.1 * (hi - lo) + 1e-3
            ax.set_xlim(start, steps[-1])
            ax.set_ylim(lo - pad, hi + pad)
            ax.set_title("last 80 % of the run", fontsize=9)
        else:
            ax.set_title(title, fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("cross-entropy (nats)" if metrics else loss_name or f"loss (bits per {unit})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if metrics:
        b = axes[1]
        for key in metrics:
            b.plot(vs, [r[key] for _, r in history["val"]], "o-", lw=2.2 if key == monitor else 1.0, label=key)
        b.set(xlabel="optimizer step", ylabel="dev metric", title="dev split (single strand)")
        b.grid(alpha=0.3)
        b.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)

"""Pieces shared by the training jobs (`lm train`, `classify train`, `audio train`): the common arguments of a
train action, loading the job config, `--print-config`, the learning-rate schedule with an optional wall-clock
budget, and fitting with a final validation."""

from __future__ import annotations

import sys
import time
import warnings
from typing import Callable, Sequence


def add_train_parser(sub, help: str, default_config: str, set_example: str, inputs: Sequence[tuple[str, str]],
                     func: Callable) -> None:
    """A `train` action: --config, --set, the job's own input options (flag, help), --out, --overwrite and
    --print-config."""
    tr = sub.add_parser("train", help=help)
    tr.add_argument("--config", help=f"job YAML, or a shipped config name (default: {default_config})")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=f"override, e.g. {set_example}")
    for flag, text in inputs:
        tr.add_argument(flag, help=text)
    tr.add_argument("--out", help="run folder; sets out_dir")
    tr.add_argument("--overwrite", action="store_true", help="replace this job's files in a non-empty run folder")
    tr.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    tr.set_defaults(func=func)


def load_job(schema, config: str | None, default_config: str, overrides=(), inputs: dict | None = None):
    """The job config: a shipped config name or YAML path (default_config when None), `--set` overrides, then
    the command line's inputs {dotted key: value} (None values are left as the config has them)."""
    import seqssm
    from seqssm.pipelines.lm import resolve_config_path

    job = seqssm.load_config(schema, str(resolve_config_path(config or default_config)), list(overrides or ()))
    for key, value in (inputs or {}).items():
        if value is not None:
            *parents, leaf = key.split(".")
            node = job
            for name in parents:
                node = getattr(node, name)
            setattr(node, leaf, value)
    return job


def print_resolved(job) -> int:
    """Validate a job config and print it as YAML (the `--print-config` action); returns exit status 0."""
    from omegaconf import OmegaConf

    from seqssm.config import validate_tree

    validate_tree(job)
    sys.stdout.write(OmegaConf.to_yaml(OmegaConf.structured(job)))
    return 0


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


class TimeBudget:
    """train.max_minutes as a clock: 0 means no budget. The clock starts at its first reading, which is the
    scheduler's construction in configure_optimizers, right before the first step."""

    def __init__(self, minutes: float):
        self.seconds = 60.0 * minutes
        self.start: float | None = None

    def fraction(self) -> float:
        """The share of the budget spent (0 without a budget)."""
        if not self.seconds:
            return 0.0
        if self.start is None:
            self.start = time.perf_counter()
        return (time.perf_counter() - self.start) / self.seconds

    def trainer_kwargs(self) -> dict:
        """Lightning stops the fit at the budget (and runs the usual end-of-fit hooks)."""
        return {"max_time": {"seconds": self.seconds}} if self.seconds else {}


def lr_schedule(train_cfg, total_steps: int, budget: TimeBudget):
    """The multiplier of the base lr at optimizer step s: linear warm-up, then cosine decay to min_lr_ratio at
    total_steps. With a time budget, the cosine runs at the larger of the step's and the clock's progress, so the
    learning rate has come down by the time the budget is spent, however fast the machine is."""
    from seqssm.pipelines.lm import lr_lambda

    t = train_cfg
    by_step = lr_lambda(t.warmup_steps, total_steps, t.min_lr_ratio)

    def f(step: int) -> float:
        spent = budget.fraction()
        if step < t.warmup_steps or not budget.seconds:
            return by_step(step)
        return by_step(max(step, t.warmup_steps + spent * (total_steps - t.warmup_steps)))

    return f


def init_model(model, init_from: str) -> None:
    """train.init_from: start the backbone from a saved model (fine-tuning); nothing when empty."""
    if init_from:
        from seqssm.checkpoint import load_backbone_weights

        load_backbone_weights(model, init_from)


def optimizers(model, train_cfg, total_steps: int, budget: TimeBudget) -> dict:
    """What a task's configure_optimizers returns: AdamW over model.param_groups (no decay on A_log, D, norms,
    biases, embeddings) and the per-step lr_schedule."""
    import torch

    t = train_cfg
    opt = torch.optim.AdamW(model.param_groups(t.weight_decay), lr=t.lr, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(t, total_steps, budget))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

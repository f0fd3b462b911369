"""What every job's config shares, and how a job config is loaded from the command line.

Each job is one dataclass tree (its schema sits beside the job: pipelines/<job>/config.py) loaded with
`seqssm.load_config(schema, yaml_path, overrides)`: the YAML and the `--set key=value` overrides are merged onto
`OmegaConf.structured(schema)`, so an unknown key or a value of the wrong type is a one-line `seqssm.ConfigError`
naming the key. Value checks that the type system cannot express live in each dataclass's `validate(prefix)`
(through `seqssm.config.require`), which load_config calls on every node of the tree.

Here: UsageError, the common TrainConfig, the shipped-config lookup (`--config NAME`), `load_job`,
`--print-config` and the common arguments of a `train` action.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Callable, Sequence

from omegaconf import OmegaConf

import seqssm
from seqssm.config import require, validate_tree


class UsageError(ValueError):
    """A mistake in the user's input (path, option, config value). The CLI prints it as one line, exit status 2."""


PRECISIONS = ("32-true", "32", "64-true", "64", "bf16-mixed", "bf16-true", "16-mixed", "16-true")
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")


@dataclass
class TrainConfig:
    """The Lightning training section shared by `lm train`, `classify train`, `audio train` and `pretrain`."""

    max_steps: int = 300
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 20
    min_lr_ratio: float = 0.1  # the cosine schedule decays to lr * min_lr_ratio at max_steps
    grad_clip: float = 1.0  # clip the global gradient norm at this value (0: no clipping)
    precision: str = "32-true"
    seed: int = 0
    val_every: int = 100  # validate every val_every optimizer steps (and always once at the end)
    log_every: int = 10
    accelerator: str = "cpu"
    devices: int = 1
    deterministic: bool = True  # deterministic algorithms where torch has them (warn where it has not)
    progress_bar: bool = True
    threads: int = 0  # torch CPU threads (0: torch's default); 1 is far steadier on a CPU shared with other jobs
    # wall-clock budget (0: none): training stops after max_minutes, and the cosine schedule follows the larger of
    # step and clock progress, so the learning rate has decayed when the budget is spent. Timing makes such a run
    # non-reproducible step for step; leave it 0 for exact reruns.
    max_minutes: float = 0.0
    # fine-tuning: a model or run folder (e.g. of `seqssm pretrain`) whose backbone weights start this run
    init_from: str = ""

    def validate(self, prefix: str = "") -> None:
        p = prefix
        require(self.max_steps >= 1, p + "max_steps", self.max_steps, "must be >= 1")
        require(self.lr > 0, p + "lr", self.lr, "must be > 0")
        require(self.weight_decay >= 0, p + "weight_decay", self.weight_decay, "must be >= 0")
        require(self.warmup_steps >= 0, p + "warmup_steps", self.warmup_steps, "must be >= 0")
        require(0 <= self.min_lr_ratio <= 1, p + "min_lr_ratio", self.min_lr_ratio, "must be in [0, 1]")
        require(self.grad_clip >= 0, p + "grad_clip", self.grad_clip, "must be >= 0 (0: no clipping)")
        require(self.precision in PRECISIONS, p + "precision", self.precision, f"must be one of {', '.join(PRECISIONS)}")
        require(self.val_every >= 1, p + "val_every", self.val_every, "must be >= 1")
        require(self.log_every >= 1, p + "log_every", self.log_every, "must be >= 1")
        require(self.accelerator in ACCELERATORS, p + "accelerator", self.accelerator,
                f"must be one of {', '.join(ACCELERATORS)}")
        require(self.devices >= 1, p + "devices", self.devices, "must be >= 1")
        require(self.threads >= 0, p + "threads", self.threads, "must be >= 0 (0: torch's default)")
        require(self.max_minutes >= 0, p + "max_minutes", self.max_minutes, "must be >= 0 (0: no budget)")


def check_batching(cfg, p: str) -> None:
    """batch_size, eval_batch_size and num_workers of a data config."""
    require(cfg.batch_size >= 1, p + "batch_size", cfg.batch_size, "must be >= 1")
    require(cfg.eval_batch_size >= 1, p + "eval_batch_size", cfg.eval_batch_size, "must be >= 1")
    require(cfg.num_workers >= 0, p + "num_workers", cfg.num_workers, "must be >= 0")


# ------------------------------------------------------------------------------------------ command line


def packaged_config(name: str) -> Path:
    """A YAML shipped in seqssm.configs (configs/ in the source tree)."""
    return Path(str(files("seqssm.configs") / name))


def resolve_config_path(arg: str) -> Path:
    """--config: a path, or the name of a shipped config ("lm_bytes" or "lm_bytes.yaml")."""
    p = Path(arg)
    if p.is_file():
        return p
    if os.sep not in arg:
        shipped = packaged_config(arg if arg.endswith(".yaml") else f"{arg}.yaml")
        if shipped.is_file():
            return shipped
    if p.exists():
        raise UsageError(f"--config {arg}: not a regular file")
    raise UsageError(f"--config {arg}: no such file")


def load_job(schema, config: str | None, default_config: str, overrides=(), inputs: dict | None = None):
    """The job config: a shipped config name or YAML path (default_config when None), `--set` overrides, then
    the command line's inputs {dotted key: value} (None values are left as the config has them)."""
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
    validate_tree(job)
    sys.stdout.write(OmegaConf.to_yaml(OmegaConf.structured(job)))
    return 0


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

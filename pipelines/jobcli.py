"""Pieces shared by the training jobs (`lm train`, `classify train`, `audio train`): the common arguments of a
train action, loading the job config, `--print-config`, and fitting with a final validation."""

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

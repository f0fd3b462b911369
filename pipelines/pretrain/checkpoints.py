"""Crash-safe checkpoints of `seqssm pretrain`: Lightning's full checkpoint (weights, optimizer, scheduler, loop
counters) written to a temporary file, fsynced and renamed into place; the newest that loads is resumed from."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import torch

from seqssm import ModelConfig
from seqssm.pipelines.jobconfig import UsageError


def write_checkpoint(trainer, folder: Path, step: int, keep: int) -> Path:
    """trainer.save_checkpoint to a temporary file, fsync, rename into place; then drop all but the newest.
    Every process calls it (saving is collective); process 0 writes, renames and cleans up."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:08d}.ckpt"
    tmp = folder / f".tmp-{final.name}"
    trainer.save_checkpoint(str(tmp))
    if trainer.global_rank != 0:
        trainer.strategy.barrier()
        return final
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)
    for old in sorted(folder.glob("step-*.ckpt"))[:-keep]:
        old.unlink()
    trainer.strategy.barrier()
    return final


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint in `folder` that loads; corrupt or partial ones are skipped with a warning."""
    for path in sorted(folder.glob("step-*.ckpt"), reverse=True):
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
            if "state_dict" in ckpt and "global_step" in ckpt:
                return path
            reason = "keys missing"
        except Exception as err:  # a truncated zip, garbage bytes: torch raises several types
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        warnings.warn(f"{path}: unreadable checkpoint ({reason}); trying an older one", stacklevel=2)
    return None


def _dotted(tree: dict, prefix: str = "") -> dict:
    """{"ssm": {"d_state": 4}} -> {"ssm.d_state": 4}."""
    out = {}
    for k, v in tree.items():
        out.update(_dotted(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def check_same_model(path: Path, model_cfg) -> None:
    """One-line error when the checkpoint at `path` was written for another model config (before any compute)."""
    saved = torch.load(path, map_location="cpu", weights_only=False).get("seqssm_model_config")
    if saved is None:
        return  # written before configs were stored: Lightning's own state-dict check still applies
    saved = _dotted(ModelConfig.upgrade(saved))  # a checkpoint of the flat layout compares key for key too
    here = _dotted(dataclasses.asdict(model_cfg))
    diff = [k for k in here if saved.get(k) != here[k]] + sorted(set(saved) - set(here))
    if diff:
        k = diff[0]
        raise UsageError(f"{path}: a checkpoint of another model config (model.{k} is {saved.get(k)!r} there, "
                         f"{here.get(k)!r} here); resume with the killed run's --config and --set, or use a new --out")

"""Checkpoint folders (config.yaml + model.safetensors, replaced atomically) and mamba_ssm weight import.

Dimension names: d model width · e inner width · n state size · k conv width · r dt_rank · v vocabulary.

A folder is written complete under a temporary sibling name and renamed into place, so a crash never leaves a
half-written checkpoint where a good one was. Tied tensors (lm_head = embedding) are stored once, since
safetensors refuses shared storage; the aliases are listed in the file's metadata.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from seqssm._version import __version__
from seqssm.atomic import current_umask
from seqssm.config import ModelConfig, load_config, save_config
from seqssm.registry import HEADS

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint folder, file or state dict that cannot be loaded; one line naming the file or key."""


def _dedupe(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Keep the first name of tensors that share storage; return (tensors, {alias: kept name})."""
    kept: dict[tuple, str] = {}
    tensors, aliases = {}, {}
    for name, t in state_dict.items():
        key = (t.device, t.data_ptr(), t.dtype, tuple(t.shape), t.stride())
        if t.numel() and key in kept:
            aliases[name] = kept[key]
            continue
        kept[key] = name
        tensors[name] = t.detach().contiguous()
    return tensors, aliases


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _replace_dir(src: Path, target: Path) -> None:
    """Move the finished folder `src` to `target`; an existing `target` is removed only after the move."""
    if target.exists() and not target.is_dir():
        raise CheckpointError(f"{target}: exists and is not a folder")
    if not target.exists():
        os.replace(src, target)
        return
    backup = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(target, backup)
    try:
        os.replace(src, target)
    except BaseException:
        os.replace(backup, target)  # put the old checkpoint back
        raise
    shutil.rmtree(backup, ignore_errors=True)


def load_into(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str, aliases=None) -> None:
    """Strictly load `tensors` into `model`; one-line CheckpointError naming `source` and the offending keys."""
    tensors = dict(tensors)
    for alias, name in (aliases or {}).items():
        if alias not in tensors and name in tensors:
            tensors[alias] = tensors[name]
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]

    def listing(keys):
        return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

    if missing:
        raise CheckpointError(f"{source}: missing keys: {listing(missing)}")
    if unexpected:
        raise CheckpointError(f"{source}: unexpected keys: {listing(unexpected)}")
    for k, t in tensors.items():
        if tuple(t.shape) != tuple(expected[k].shape):
            raise CheckpointError(
                f"{source}: {k} has shape {tuple(t.shape)}, the config expects {tuple(expected[k].shape)}"
            )
    model.load_state_dict(tensors, strict=True)


def _read_weights(path: Path, map_location) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    device = str(map_location) if map_location is not None else "cpu"
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        aliases = json.loads(meta.get("tied", "{}"))
    except Exception as err:  # safetensors raises its own error type (and OSError); report both the same way
        raise CheckpointError(f"{path}: not a readable safetensors file ({_first_line(err)})") from None
    return tensors, aliases


def _load(cls, directory, map_location="cpu"):
    folder = Path(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: checkpoint folder not found")
    cfg_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for p in (cfg_path, weights_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: file not found")
    cfg = load_config(ModelConfig, cfg_path)  # ConfigError naming the file and key
    head_cls = HEADS.get(cfg.head)
    if cls is not None and not issubclass(head_cls, cls):
        raise CheckpointError(
            f"{cfg_path}: head {cfg.head!r} builds {head_cls.__name__}, not {cls.__name__}; use seqssm.load_pretrained"
        )
    model = head_cls(cfg)
    tensors, aliases = _read_weights(weights_path, map_location)
    load_into(model, tensors, str(weights_path), aliases)
    return model.to(map_location) if map_location is not None else model


def load_backbone_weights(model: torch.nn.Module, directory) -> int:
    """Start `model` from the backbone of a saved model of any head (fine-tuning from pretraining): every
    `backbone.*` tensor is copied; the head keeps its own initialisation. The two backbones must have the same
    shapes (width, depth, mixers, vocabulary); a mismatch is a one-line CheckpointError naming the tensor.
    `directory` is a model folder or a run folder holding model/. Returns the number of tensors copied."""
    folder = Path(directory)
    if (folder / "model" / WEIGHTS_NAME).is_file():
        folder = folder / "model"
    path = folder / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found (init from a model folder or a run folder)")
    tensors, aliases = _read_weights(path, "cpu")
    for alias, name in aliases.items():
        tensors.setdefault(alias, tensors.get(name))
    source = {k[len("backbone."):]: t for k, t in tensors.items() if k.startswith("backbone.") and t is not None}
    backbone = model.backbone
    load_into(backbone, source, str(path))
    return len(source)


class PretrainedMixin:
    """save_pretrained / from_pretrained for a model with a `.config` (ModelConfig)."""

    def save_pretrained(self, directory, extra_files: dict[str, str | bytes] | None = None) -> Path:
        """Write config.yaml, model.safetensors and `extra_files` ({name: text or bytes}, e.g. tokenizer.json)
        into a temporary sibling folder, then rename it to `directory` (replacing an old one)."""
        target = Path(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            save_config(self.config, tmp / CONFIG_NAME)
            tensors, aliases = _dedupe(self.state_dict())
            meta = {"format": "pt", "seqssm_version": __version__, "tied": json.dumps(aliases)}
            save_file({k: t.cpu() for k, t in tensors.items()}, str(tmp / WEIGHTS_NAME), metadata=meta)
            for name, data in (extra_files or {}).items():
                if Path(name).name != name or name in (CONFIG_NAME, WEIGHTS_NAME):
                    raise CheckpointError(f"extra_files: {name!r} must be a plain file name other than the weights")
                (tmp / name).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
            os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp creates 0700
            _replace_dir(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    @classmethod
    def from_pretrained(cls, directory, map_location="cpu"):
        """Load a folder written by save_pretrained; errors are one line naming the file."""
        return _load(cls, directory, map_location)


def load_pretrained(directory, map_location="cpu"):
    """Load any checkpoint folder as the model class its config.yaml names (cfg.head)."""
    return _load(None, directory, map_location)


def load_mamba_ssm_state_dict(state_dict: dict[str, torch.Tensor], cfg: ModelConfig):
    """A MambaLM holding the weights of a mamba_ssm MambaLMHeadModel state dict (same parameter names).

    mamba_ssm stores the padded vocabulary; an unpadded embedding / lm_head (vocab_size rows) is zero-padded.
    With tie_embeddings, lm_head.weight may be absent, and if present must equal the embedding.
    """
    from seqssm.model import MambaLM  # here, not at the top: model.py imports this module

    if not isinstance(state_dict, dict):
        raise CheckpointError(f"state_dict: expected a dict of tensors, got {type(state_dict).__name__}")
    model = MambaLM(cfg)
    sd = {k: v for k, v in state_dict.items()}
    v_pad = cfg.padded_vocab_size
    for key in ("backbone.embedding.weight", "lm_head.weight"):
        t = sd.get(key)
        if t is not None and t.dim() == 2 and t.shape[0] == cfg.vocab_size < v_pad:
            sd[key] = torch.cat([t, t.new_zeros(v_pad - t.shape[0], t.shape[1])])
    if cfg.tie_embeddings and "backbone.embedding.weight" in sd:
        emb = sd["backbone.embedding.weight"]
        head = sd.get("lm_head.weight")
        if head is not None and (head.shape != emb.shape or not torch.equal(head, emb)):
            raise CheckpointError("lm_head.weight: differs from backbone.embedding.weight but cfg.tie_embeddings is True")
        sd["lm_head.weight"] = emb
    load_into(model, sd, "mamba_ssm state_dict")
    return model


__all__ = [
    "load_backbone_weights",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "CheckpointError",
    "PretrainedMixin",
    "load_into",
    "load_mamba_ssm_state_dict",
    "load_pretrained",
]

"""Typed configuration: the model and generation dataclasses, YAML loading with overrides, atomic saving.

Dimension names used in comments: d model width · e inner width (expand·d) · n state size · k conv width · v vocab.

Configs are plain dataclasses. `load_config` merges a YAML file and dotlist overrides onto the schema through
OmegaConf (which rejects unknown keys and wrong types) and returns a real dataclass instance; every failure is a
one-line `ConfigError` that names the key and the file, so a typo in a 200-line YAML is found at once.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seqssm.atomic import atomic_write_text

SCAN_BACKENDS = ("auto", "reference", "chunked", "cpu")
POOLINGS = ("mean", "max", "last")
DT_INITS = ("random", "constant")


class ConfigError(ValueError):
    """A bad configuration value, key or file; the message is one line naming the key (and the file)."""


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


@dataclass
class ModelConfig:
    """Architecture of a Mamba model (defaults follow mamba_ssm's `Mamba` block, paper section 3.4)."""

    d_model: int = 256
    n_layer: int = 4
    vocab_size: int = 256
    layer: str = "mamba"  # mixer name in seqssm.registry.LAYERS
    bidirectional_weight_tie: bool = False  # layer "bimamba": one Mamba for both directions
    d_state: int = 16  # n: the SSM state size per channel (paper section 3.2, N)
    d_conv: int = 4  # k: width of the short causal convolution before the SSM
    expand: int = 2  # e = expand · d
    dt_rank: Optional[int] = None  # rank of the Δ projection; None -> ceil(d_model / 16) (paper section 3.6)
    dt_min: float = 0.001
    dt_max: float = 0.1
    dt_init: str = "random"
    dt_scale: float = 1.0
    dt_init_floor: float = 1e-4
    conv_bias: bool = True
    bias: bool = False
    norm_eps: float = 1e-5
    rms_norm: bool = True
    residual_in_fp32: bool = True
    tie_embeddings: bool = True
    pad_vocab_size_multiple: int = 8
    scan_backend: str = "auto"
    head: str = "lm"  # head name in seqssm.registry.HEADS
    num_classes: int = 2
    pooling: str = "mean"
    # layer zoo: hybrid stacks (mamba_ssm's attn_layer_idx) and MoE-Mamba interleaving (Pióro et al. 2024)
    attn_layer_idx: List[int] = field(default_factory=list)  # block indices whose mixer is "attention"
    n_heads: Optional[int] = None  # attention heads h; None -> max(1, d_model // 64)
    rope_base: float = 10000.0  # RoPE base θ (Su et al. 2021, eq. 15)
    mamba2_headdim: int = 64  # p: Mamba-2 head dim (Dao & Gu 2024, section 7.1); heads = d_inner / p
    ngroups: int = 1  # g: Mamba-2 groups of B/C (section 7.2, like GQA)
    moe_layer_idx: List[int] = field(default_factory=list)  # blocks followed by a switch MoE feed-forward
    n_experts: int = 4
    moe_d_ff: Optional[int] = None  # hidden width of each expert; None -> 4 * d_model
    capacity_factor: float = 1.25  # Switch Transformer: tokens per expert = ceil(cf * tokens / n_experts)
    moe_aux_weight: float = 0.01  # α of the load-balancing loss (Switch Transformer eq. 4)
    # multi-scale (SaShiMi, Goel et al. 2022) backbone: pool by these factors, outer stage first; [] = one flat
    # stack. With pooling, n_layer is the number of blocks in each of the 2·len(pool_factors) + 1 stage segments
    pool_factors: List[int] = field(default_factory=list)
    pool_expand: int = 2  # width multiplier at each pooling (stage s has width d_model · pool_expand^s)
    stage_layers: List[str] = field(default_factory=list)  # mixer per stage, outer first; [] = `layer` everywhere
    s4d_kernel: str = "fft"  # layer s4d, parallel pass: "fft" (convolution with the SSM kernel) or "scan"
    # reverse-complement equivariance by parameter sharing (Caduceus-PS): two halves of d_model/2 channels share
    # every weight, the second on the reverse-complement strand; rc_complement maps each token id to its
    # complement (the DNA pipeline fills it from the tokenizer)
    rc_equivariant: bool = False
    rc_complement: List[int] = field(default_factory=list)

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def resolved_n_heads(self) -> int:
        return self.n_heads if self.n_heads is not None else max(1, self.d_model // 64)

    @property
    def resolved_moe_d_ff(self) -> int:
        return self.moe_d_ff if self.moe_d_ff is not None else 4 * self.d_model

    @property
    def resolved_dt_rank(self) -> int:
        return self.dt_rank if self.dt_rank is not None else math.ceil(self.d_model / 16)

    @property
    def padded_vocab_size(self) -> int:
        m = self.pad_vocab_size_multiple
        return ((self.vocab_size + m - 1) // m) * m

    def validate(self, prefix: str = "") -> None:
        """Raise ConfigError naming the first bad key (with `prefix`, e.g. "model.", for nested configs)."""
        p = prefix
        for key in ("d_model", "n_layer", "vocab_size", "d_state", "d_conv", "expand", "pad_vocab_size_multiple"):
            _check(getattr(self, key) > 0, p + key, f"must be > 0, got {getattr(self, key)}")
        _check(self.dt_rank is None or self.dt_rank > 0, p + "dt_rank", f"must be > 0 or null, got {self.dt_rank}")
        _check(self.dt_min > 0, p + "dt_min", f"must be > 0, got {self.dt_min}")
        _check(self.dt_max >= self.dt_min, p + "dt_max", f"must be >= dt_min ({self.dt_min}), got {self.dt_max}")
        _check(self.dt_init in DT_INITS, p + "dt_init", f"must be one of {', '.join(DT_INITS)}, got {self.dt_init!r}")
        _check(self.dt_scale > 0, p + "dt_scale", f"must be > 0, got {self.dt_scale}")
        _check(self.dt_init_floor >= 0, p + "dt_init_floor", f"must be >= 0, got {self.dt_init_floor}")
        _check(self.norm_eps > 0, p + "norm_eps", f"must be > 0, got {self.norm_eps}")
        _check(
            self.scan_backend in SCAN_BACKENDS,
            p + "scan_backend",
            f"must be one of {', '.join(SCAN_BACKENDS)}, got {self.scan_backend!r}",
        )
        _check(self.num_classes > 0, p + "num_classes", f"must be > 0, got {self.num_classes}")
        _check(self.pooling in POOLINGS, p + "pooling", f"must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        for key in ("attn_layer_idx", "moe_layer_idx"):
            idx = list(getattr(self, key))
            bad = [i for i in idx if not 0 <= i < self.n_layer]
            _check(not bad, p + key, f"indices must be in [0, n_layer={self.n_layer}), got {bad}")
            _check(len(set(idx)) == len(idx), p + key, f"indices must be distinct, got {idx}")
        _check(self.n_heads is None or self.n_heads > 0, p + "n_heads", f"must be > 0 or null, got {self.n_heads}")
        _check(self.rope_base > 1, p + "rope_base", f"must be > 1, got {self.rope_base}")
        for key in ("mamba2_headdim", "ngroups", "n_experts"):
            _check(getattr(self, key) > 0, p + key, f"must be > 0, got {getattr(self, key)}")
        _check(self.moe_d_ff is None or self.moe_d_ff > 0, p + "moe_d_ff", f"must be > 0 or null, got {self.moe_d_ff}")
        _check(self.capacity_factor > 0, p + "capacity_factor", f"must be > 0, got {self.capacity_factor}")
        _check(self.moe_aux_weight >= 0, p + "moe_aux_weight", f"must be >= 0, got {self.moe_aux_weight}")
        _check(self.s4d_kernel in ("fft", "scan"), p + "s4d_kernel", f"must be fft or scan, got {self.s4d_kernel!r}")
        if self.rc_equivariant:
            self._validate_rc(p)
        pools = list(self.pool_factors)
        _check(all(f >= 2 for f in pools), p + "pool_factors", f"each factor must be >= 2, got {pools}")
        _check(self.pool_expand >= 1, p + "pool_expand", f"must be >= 1, got {self.pool_expand}")
        stages = list(self.stage_layers)
        _check(not stages or len(stages) == len(pools) + 1, p + "stage_layers",
               f"needs one mixer per stage (len(pool_factors) + 1 = {len(pools) + 1}) or none, got {stages}")
        if pools:  # per-index options count blocks of one flat stack: they have no meaning across stages
            for key in ("attn_layer_idx", "moe_layer_idx"):
                _check(not getattr(self, key), p + key, "is not supported with pool_factors (use stage_layers)")


    def _validate_rc(self, p: str) -> None:
        comp = list(self.rc_complement)
        _check(self.d_model % 2 == 0, p + "d_model", f"must be even with rc_equivariant (two halves), got {self.d_model}")
        _check(self.head == "classify", p + "head",
               f"rc_equivariant reads both strands (bidirectional): needs head classify, got {self.head!r}")
        _check(self.pooling in ("mean", "max"), p + "pooling",
               f"rc_equivariant needs an order-free pooling (mean or max), got {self.pooling!r}")
        # empty: a domain pipeline fills it from its tokenizer before building the model (the model refuses it empty)
        _check(not comp or len(comp) == self.vocab_size and sorted(comp) == list(range(self.vocab_size))
               and all(comp[c] == i for i, c in enumerate(comp)), p + "rc_complement",
               f"must map each of the {self.vocab_size} token ids to its complement (an involution), got {comp}")
        for key in ("pool_factors", "moe_layer_idx"):
            _check(not getattr(self, key), p + key, "is not supported with rc_equivariant")


@dataclass
class GenerateConfig:
    """Sampling settings for `MambaLM.generate` (temperature 0 means greedy)."""

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k filter
    top_p: float = 1.0  # 1.0: no nucleus filter
    seed: int = 0

    def validate(self, prefix: str = "") -> None:
        p = prefix
        _check(self.max_new_tokens >= 0, p + "max_new_tokens", f"must be >= 0, got {self.max_new_tokens}")
        _check(self.temperature >= 0, p + "temperature", f"must be >= 0, got {self.temperature}")
        _check(self.top_k >= 0, p + "top_k", f"must be >= 0, got {self.top_k}")
        _check(0 < self.top_p <= 1, p + "top_p", f"must be in (0, 1], got {self.top_p}")


def validate_tree(obj: Any, prefix: str = "") -> None:
    """Call `validate(prefix)` on every dataclass in a nested config that defines it, so keys carry full paths."""
    if not dataclasses.is_dataclass(obj):
        return
    if hasattr(obj, "validate"):
        obj.validate(prefix)
    for f in dataclasses.fields(obj):
        validate_tree(getattr(obj, f.name), f"{prefix}{f.name}.")


def _explain(err: OmegaConfBaseException, source: str) -> ConfigError:
    """Turn OmegaConf's multi-line exception into one line: source, key, reason."""
    key = getattr(err, "full_key", None) or getattr(err, "key", None) or "?"
    reason = str(getattr(err, "msg", None) or err).strip().splitlines()[0]
    if type(err).__name__ == "ConfigKeyError":
        reason = f"unknown key ({reason})"
    return ConfigError(f"{source}: {key}: {reason}")


def load_config(schema_cls: type, path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> Any:
    """Merge a YAML file and dotlist overrides ("model.d_model=64") onto the schema; return a dataclass instance.

    Raises ConfigError (one line, naming the key and the file) for a missing or malformed file, an unknown key, a
    value of the wrong type, or a value that fails the schema's `validate`.
    """
    if isinstance(overrides, str):
        raise ConfigError(f"overrides: expected a list of 'key=value' strings, got the string {overrides!r}")
    merged = OmegaConf.structured(schema_cls)
    source = "config"
    if path is not None:
        source = str(path)
        if not Path(path).is_file():
            raise ConfigError(f"{source}: config file not found")
        try:
            loaded = OmegaConf.load(path)
        except (yaml.YAMLError, OmegaConfBaseException, UnicodeDecodeError) as err:
            mark = getattr(err, "problem_mark", None)
            first = str(getattr(err, "problem", None) or err).strip().splitlines()[0]
            first += f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{source}: not valid YAML ({first})") from None
        if loaded is None or (isinstance(loaded, DictConfig) and len(loaded) == 0):
            loaded = OmegaConf.create({})
        if not isinstance(loaded, DictConfig):
            raise ConfigError(f"{source}: expected a mapping at the top level, got a list")
        try:
            merged = OmegaConf.merge(merged, loaded)
        except OmegaConfBaseException as err:
            raise _explain(err, source) from None
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as err:
            raise _explain(err, f"override {item!r}") from None
    try:
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise _explain(err, source) from None
    try:
        validate_tree(obj)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    return obj


def save_config(obj: Any, path: str | os.PathLike) -> None:
    """Write a dataclass (or DictConfig / dict) as YAML atomically: a temp file in the same folder, then os.replace."""
    if dataclasses.is_dataclass(obj) or isinstance(obj, dict):
        cfg = OmegaConf.structured(obj) if dataclasses.is_dataclass(obj) else OmegaConf.create(obj)
    elif isinstance(obj, DictConfig):
        cfg = obj
    else:
        raise ConfigError(f"obj: expected a dataclass, dict or DictConfig, got {type(obj).__name__}")
    atomic_write_text(path, OmegaConf.to_yaml(cfg, resolve=True))


__all__ = ["ConfigError", "GenerateConfig", "ModelConfig", "load_config", "save_config"]

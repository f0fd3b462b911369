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
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seqssm.atomic import atomic_write_text
from seqssm.kernels import BACKENDS

SCAN_BACKENDS = BACKENDS  # the kernels' own vocabulary (the same tuple, not a copy)
POOLINGS = ("mean", "max", "last")
DT_INITS = ("random", "constant")


class ConfigError(ValueError):
    """A bad configuration value, key or file; the message is one line naming the key (and the file)."""


def require(ok: bool, key: str, value, what: str) -> None:
    """The one value check of every config (core and jobs): ConfigError `key: what, got value` unless ok."""
    if not ok:
        raise ConfigError(f"{key}: {what}, got {value!r}")


def _positive(cfg, p: str, *keys: str) -> None:
    for key in keys:
        require(getattr(cfg, key) > 0, p + key, getattr(cfg, key), "must be > 0")


@dataclass
class SSMConfig:
    """The selective SSM of the Mamba, bimamba and S4D mixers (defaults follow mamba_ssm's `Mamba` block, paper
    section 3.4); also the state size, conv width and Δ range of Mamba-2."""

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
    s4d_kernel: str = "fft"  # layer s4d, parallel pass: "fft" (convolution with the SSM kernel) or "scan"
    bidirectional_weight_tie: bool = False  # layer "bimamba": one Mamba for both directions

    def validate(self, prefix: str = "") -> None:
        p = prefix
        _positive(self, p, "d_state", "d_conv", "expand")
        require(self.dt_rank is None or self.dt_rank > 0, p + "dt_rank", self.dt_rank, "must be > 0 or null")
        require(self.dt_min > 0, p + "dt_min", self.dt_min, "must be > 0")
        require(self.dt_max >= self.dt_min, p + "dt_max", self.dt_max, f"must be >= dt_min ({self.dt_min})")
        require(self.dt_init in DT_INITS, p + "dt_init", self.dt_init, f"must be one of {', '.join(DT_INITS)}")
        require(self.dt_scale > 0, p + "dt_scale", self.dt_scale, "must be > 0")
        require(self.dt_init_floor >= 0, p + "dt_init_floor", self.dt_init_floor, "must be >= 0")
        require(self.s4d_kernel in ("fft", "scan"), p + "s4d_kernel", self.s4d_kernel, "must be fft or scan")


POSITIONS = ("rope", "alibi", "none")  # how attention sees position: AttentionConfig.position


@dataclass
class AttentionConfig:
    """Causal attention blocks: a hybrid stack (mamba_ssm's attn_layer_idx) or layer "attention" everywhere."""

    layer_idx: List[int] = field(default_factory=list)  # block indices whose mixer is "attention"
    n_heads: Optional[int] = None  # attention heads h; None -> max(1, d_model // 64)
    rope_base: float = 10000.0  # RoPE base θ (Su et al. 2021, eq. 15)
    position: str = "rope"  # rope (rotary), alibi (linear distance bias, Press et al. 2022) or none (NoPE)

    def validate(self, prefix: str = "") -> None:
        require(self.n_heads is None or self.n_heads > 0, prefix + "n_heads", self.n_heads, "must be > 0 or null")
        require(self.rope_base > 1, prefix + "rope_base", self.rope_base, "must be > 1")
        require(self.position in POSITIONS, prefix + "position", self.position,
                f"must be one of {', '.join(POSITIONS)}")


@dataclass
class Mamba2Config:
    """Mamba-2 (SSD, Dao & Gu 2024): heads = d_inner / headdim."""

    headdim: int = 64  # p: Mamba-2 head dim (section 7.1)
    ngroups: int = 1  # g: groups of B/C (section 7.2, like GQA)

    def validate(self, prefix: str = "") -> None:
        _positive(self, prefix, "headdim", "ngroups")


@dataclass
class MoEConfig:
    """Switch mixture-of-experts feed-forward after some blocks (MoE-Mamba, Pióro et al. 2024)."""

    layer_idx: List[int] = field(default_factory=list)  # blocks followed by a switch MoE feed-forward
    n_experts: int = 4
    d_ff: Optional[int] = None  # hidden width of each expert; None -> 4 * d_model
    capacity_factor: float = 1.25  # Switch Transformer: tokens per expert = ceil(cf * tokens / n_experts)
    aux_weight: float = 0.01  # α of the load-balancing loss (Switch Transformer eq. 4)

    def validate(self, prefix: str = "") -> None:
        p = prefix
        _positive(self, p, "n_experts")
        require(self.d_ff is None or self.d_ff > 0, p + "d_ff", self.d_ff, "must be > 0 or null")
        require(self.capacity_factor > 0, p + "capacity_factor", self.capacity_factor, "must be > 0")
        require(self.aux_weight >= 0, p + "aux_weight", self.aux_weight, "must be >= 0")


@dataclass
class MultiScaleConfig:
    """The multi-scale (SaShiMi, Goel et al. 2022) backbone: pool by these factors, outer stage first; [] = one flat
    stack. With pooling, n_layer is the number of blocks in each of the 2·len(pool_factors) + 1 stage segments."""

    pool_factors: List[int] = field(default_factory=list)
    pool_expand: int = 2  # width multiplier at each pooling (stage s has width d_model · pool_expand^s)
    stage_layers: List[str] = field(default_factory=list)  # mixer per stage, outer first; [] = `layer` everywhere

    def validate(self, prefix: str = "") -> None:
        p, pools, stages = prefix, list(self.pool_factors), list(self.stage_layers)
        require(all(f >= 2 for f in pools), p + "pool_factors", pools, "each factor must be >= 2")
        require(self.pool_expand >= 1, p + "pool_expand", self.pool_expand, "must be >= 1")
        require(not stages or len(stages) == len(pools) + 1, p + "stage_layers", stages,
                f"needs one mixer per stage (len(pool_factors) + 1 = {len(pools) + 1}) or none")


@dataclass
class StrandConfig:
    """DNA strand handling: reverse-complement equivariance by parameter sharing (Caduceus-PS, Schiff et al. 2024):
    two halves of d_model/2 channels share every weight, the second on the reverse-complement strand;
    rc_complement maps each token id to its complement (the DNA pipeline fills it from the tokenizer)."""

    rc_equivariant: bool = False
    rc_complement: List[int] = field(default_factory=list)


# The flat ModelConfig of seqssm before the grouping (checkpoints and run folders written then): key -> (group,
# key in the group). `ModelConfig.upgrade` moves such keys into their groups when a file is loaded.
LEGACY_KEYS = {
    **{k: ("ssm", k) for k in ("d_state", "d_conv", "expand", "dt_rank", "dt_min", "dt_max", "dt_init", "dt_scale",
                               "dt_init_floor", "conv_bias", "s4d_kernel", "bidirectional_weight_tie")},
    "attn_layer_idx": ("attention", "layer_idx"), "n_heads": ("attention", "n_heads"),
    "rope_base": ("attention", "rope_base"),
    "mamba2_headdim": ("mamba2", "headdim"), "ngroups": ("mamba2", "ngroups"),
    "moe_layer_idx": ("moe", "layer_idx"), "n_experts": ("moe", "n_experts"), "moe_d_ff": ("moe", "d_ff"),
    "capacity_factor": ("moe", "capacity_factor"), "moe_aux_weight": ("moe", "aux_weight"),
    **{k: ("multiscale", k) for k in ("pool_factors", "pool_expand", "stage_layers")},
    **{k: ("strand", k) for k in ("rc_equivariant", "rc_complement")},
}


@dataclass
class ModelConfig:
    """Architecture of a model: the backbone's size, mixer and head here, each mixer family's options in its own
    group (YAML mirrors the nesting: `ssm: {d_state: 16, ...}`). scan_backend stays at the top: it names the
    kernels' backend for every mixer."""

    d_model: int = 256
    n_layer: int = 4
    vocab_size: int = 256
    layer: str = "mamba"  # mixer name in seqssm.registry.LAYERS
    bias: bool = False  # biases of the mixers' linear projections
    norm_eps: float = 1e-5
    rms_norm: bool = True
    residual_in_fp32: bool = True
    tie_embeddings: bool = True
    pad_vocab_size_multiple: int = 8
    scan_backend: str = "auto"
    head: str = "lm"  # head name in seqssm.registry.HEADS
    num_classes: int = 2
    pooling: str = "mean"
    ssm: SSMConfig = field(default_factory=SSMConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    mamba2: Mamba2Config = field(default_factory=Mamba2Config)
    moe: MoEConfig = field(default_factory=MoEConfig)
    multiscale: MultiScaleConfig = field(default_factory=MultiScaleConfig)
    strand: StrandConfig = field(default_factory=StrandConfig)

    @property
    def d_inner(self) -> int:
        return self.ssm.expand * self.d_model

    @property
    def resolved_n_heads(self) -> int:
        return self.attention.n_heads if self.attention.n_heads is not None else max(1, self.d_model // 64)

    @property
    def resolved_moe_d_ff(self) -> int:
        return self.moe.d_ff if self.moe.d_ff is not None else 4 * self.d_model

    @property
    def resolved_dt_rank(self) -> int:
        return self.ssm.dt_rank if self.ssm.dt_rank is not None else math.ceil(self.d_model / 16)

    @property
    def padded_vocab_size(self) -> int:
        m = self.pad_vocab_size_multiple
        return ((self.vocab_size + m - 1) // m) * m

    @classmethod
    def upgrade(cls, raw: dict) -> dict:
        """A config mapping as read from a file, with the keys of the flat layout (LEGACY_KEYS) moved into their
        groups; ConfigError when a key is given both ways."""
        out = {k: v for k, v in raw.items() if k not in LEGACY_KEYS}
        for key, value in raw.items():
            if key in LEGACY_KEYS:
                group, name = LEGACY_KEYS[key]
                node = out.setdefault(group, {})
                if not isinstance(node, dict) or name in node:
                    raise ConfigError(f"{key}: given both flat and as {group}.{name}")
                node[name] = value
        return out

    @classmethod
    def from_flat(cls, **kwargs) -> "ModelConfig":
        """A ModelConfig from keyword arguments in the flat layout (d_state=4, moe_layer_idx=[1], ...) or grouped."""
        nested = cls.upgrade(kwargs)
        for name, value in nested.items():
            if isinstance(value, dict):
                nested[name] = _GROUPS[name](**value)
        return cls(**nested)

    def validate(self, prefix: str = "") -> None:
        """Raise ConfigError naming the first bad key (with `prefix`, e.g. "model.", for nested configs)."""
        p = prefix
        _positive(self, p, "d_model", "n_layer", "vocab_size", "pad_vocab_size_multiple")
        require(self.norm_eps > 0, p + "norm_eps", self.norm_eps, "must be > 0")
        require(self.scan_backend in SCAN_BACKENDS, p + "scan_backend", self.scan_backend,
                f"must be one of {', '.join(SCAN_BACKENDS)}")
        require(self.num_classes > 0, p + "num_classes", self.num_classes, "must be > 0")
        require(self.pooling in POOLINGS, p + "pooling", self.pooling, f"must be one of {', '.join(POOLINGS)}")
        for name in _GROUPS:  # build_model calls validate() alone: the groups are checked from here too
            group = getattr(self, name)
            if hasattr(group, "validate"):
                group.validate(f"{p}{name}.")
        for key in ("attention", "moe"):
            idx = list(getattr(self, key).layer_idx)
            bad = [i for i in idx if not 0 <= i < self.n_layer]
            require(not bad, f"{p}{key}.layer_idx", idx, f"indices must be in [0, n_layer={self.n_layer})")
            require(len(set(idx)) == len(idx), f"{p}{key}.layer_idx", idx, "indices must be distinct")
        if self.strand.rc_equivariant:
            self._validate_rc(p)
        if self.multiscale.pool_factors:  # per-index options count blocks of one flat stack: no meaning across stages
            for key in ("attention", "moe"):
                require(not getattr(self, key).layer_idx, f"{p}{key}.layer_idx", getattr(self, key).layer_idx,
                        "is not supported with multiscale.pool_factors (use multiscale.stage_layers)")

    def _validate_rc(self, p: str) -> None:
        comp = list(self.strand.rc_complement)
        require(self.d_model % 2 == 0, p + "d_model", self.d_model, "must be even with rc_equivariant (two halves)")
        require(self.head == "classify", p + "head", self.head,
                "rc_equivariant reads both strands (bidirectional): needs head classify")
        require(self.pooling in ("mean", "max"), p + "pooling", self.pooling,
                "rc_equivariant needs an order-free pooling (mean or max)")
        # empty: a domain pipeline fills it from its tokenizer before building the model (the model refuses it empty)
        require(not comp or len(comp) == self.vocab_size and sorted(comp) == list(range(self.vocab_size))
                and all(comp[c] == i for i, c in enumerate(comp)), p + "strand.rc_complement", comp,
                f"must map each of the {self.vocab_size} token ids to its complement (an involution)")
        require(not self.multiscale.pool_factors, p + "multiscale.pool_factors", self.multiscale.pool_factors,
                "is not supported with rc_equivariant")
        require(not self.moe.layer_idx, p + "moe.layer_idx", self.moe.layer_idx, "is not supported with rc_equivariant")


_GROUPS = {"ssm": SSMConfig, "attention": AttentionConfig, "mamba2": Mamba2Config, "moe": MoEConfig,
           "multiscale": MultiScaleConfig, "strand": StrandConfig}


@dataclass
class GenerateConfig:
    """Sampling settings for `MambaLM.generate` (temperature 0 means greedy)."""

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k filter
    top_p: float = 1.0  # 1.0: no nucleus filter
    seed: int = 0

    def validate(self, prefix: str = "", as_options: bool = False) -> None:
        """The one check of the sampling options (generate(), `lm sample`, `audio generate`): ConfigError naming
        the key, or with `as_options` the command-line option (top_p -> --top-p)."""

        def name(key: str) -> str:
            return "--" + key.replace("_", "-") if as_options else prefix + key

        whole = lambda x: isinstance(x, int) and not isinstance(x, bool)  # noqa: E731
        require(whole(self.max_new_tokens) and self.max_new_tokens >= 0, name("max_new_tokens"),
                self.max_new_tokens, "must be an int >= 0")
        require(self.temperature >= 0, name("temperature"), self.temperature, "must be >= 0 (0: greedy)")
        require(whole(self.top_k) and self.top_k >= 0, name("top_k"), self.top_k,
                "must be an int >= 0 (0: no top-k filter)")
        require(0 < self.top_p <= 1, name("top_p"), self.top_p, "must be in (0, 1]")


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


def _upgrade(schema_cls: type, raw):
    """Apply `upgrade(raw) -> raw` of every schema node that defines one (an older file layout, e.g. the flat
    ModelConfig), top down, so that files written by older versions still load."""
    if not (dataclasses.is_dataclass(schema_cls) and isinstance(raw, dict)):
        return raw
    if hasattr(schema_cls, "upgrade"):
        raw = schema_cls.upgrade(raw)
    hints = typing.get_type_hints(schema_cls)
    return {k: _upgrade(hints[k], v) if k in hints else v for k, v in raw.items()}


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
            loaded = OmegaConf.create(_upgrade(schema_cls, OmegaConf.to_container(loaded)))
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
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
        raise ConfigError(f"{_culprit(str(err), source, overrides)}: {err}") from None
    return obj


def _culprit(message: str, source: str, overrides: Sequence[str]) -> str:
    """Who set the key a validation message starts with ("train.max_steps: ..."): the last override of that key
    (or of a parent of it), else the file. Blaming the shipped YAML for a value the user typed sends them to the
    wrong place."""
    key = message.split(":", 1)[0].strip()
    for item in reversed(list(overrides)):
        k = item.split("=", 1)[0].strip()
        if key == k or key.startswith((k + ".", k + "[")):
            return f"override {item!r}"
    return source


def save_config(obj: Any, path: str | os.PathLike) -> None:
    """Write a dataclass (or DictConfig / dict) as YAML atomically: a temp file in the same folder, then os.replace."""
    if dataclasses.is_dataclass(obj) or isinstance(obj, dict):
        cfg = OmegaConf.structured(obj) if dataclasses.is_dataclass(obj) else OmegaConf.create(obj)
    elif isinstance(obj, DictConfig):
        cfg = obj
    else:
        raise ConfigError(f"obj: expected a dataclass, dict or DictConfig, got {type(obj).__name__}")
    atomic_write_text(path, OmegaConf.to_yaml(cfg, resolve=True))


__all__ = [
    "AttentionConfig", "ConfigError", "GenerateConfig", "LEGACY_KEYS", "Mamba2Config", "ModelConfig", "MoEConfig",
    "MultiScaleConfig", "SSMConfig", "StrandConfig", "load_config", "require", "save_config",
]

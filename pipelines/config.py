"""Typed configuration of the pipeline jobs.

Each job is one dataclass tree loaded with `seqssm.load_config(schema, yaml_path, overrides)`: the YAML and the
`--set key=value` overrides are merged onto `OmegaConf.structured(schema)`, so an unknown key or a value of the
wrong type is a one-line `seqssm.ConfigError` naming the key. Value checks that the type system cannot express
(a positive length, a fraction in (0, 1)) live in `validate_*` here and raise `UsageError` naming the key.

Shipped YAML files in configs/ are named `<job>_<name>.yaml`; `SCHEMAS` maps the job prefix to its schema so
that every shipped file can be checked against the schema of the command that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seqssm import GenerateConfig, ModelConfig


class UsageError(ValueError):
    """A mistake in the user's input (path, option, config value). The CLI prints it as one line, exit status 2."""


PRECISIONS = ("32-true", "32", "64-true", "64", "bf16-mixed", "bf16-true", "16-mixed", "16-true")
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")


@dataclass
class DataConfig:
    """Where the training bytes come from and how they are cut into windows."""

    path: str = ""  # the file to model; `--data FILE` on the command line sets it
    seq_len: int = 512  # bytes per training window (the model sees seq_len inputs, predicts seq_len targets)
    val_fraction: float = 0.05  # the last val_fraction of the file is held out, as contiguous windows
    val_max_windows: int = 256  # cap on validation windows (0: all of them), taken from the start of the tail
    batch_size: int = 8
    num_workers: int = 0


@dataclass
class TrainConfig:
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


@dataclass
class LMJobConfig:
    """`seqssm lm train`: a byte-level language model (MambaByte setting) on any file."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    out_dir: str = "runs/lm"


# job prefix of a shipped config file name -> the schema of the command that reads it
SCHEMAS = {"lm": LMJobConfig}


def schema_for_file(name: str):
    """The schema for a shipped config file `<job>_<rest>.yaml`, or UsageError."""
    prefix = name.split("_", 1)[0]
    if prefix not in SCHEMAS:
        raise UsageError(f"{name}: no job schema for prefix {prefix!r} (known: {', '.join(sorted(SCHEMAS))})")
    return SCHEMAS[prefix]


def _require(ok: bool, key: str, value, what: str) -> None:
    if not ok:
        raise UsageError(f"{key}={value!r}: {what}")


def _key(prefix: str, name: str) -> str:
    """"generate" + "top_k" -> "generate.top_k"; "--" + "top_k" -> "--top-k" (a command-line option)."""
    return f"--{name.replace('_', '-')}" if prefix == "--" else f"{prefix}.{name}"


def validate_train(t: TrainConfig, prefix: str = "train") -> None:
    _require(t.max_steps >= 1, f"{prefix}.max_steps", t.max_steps, "must be at least 1")
    _require(t.lr > 0, f"{prefix}.lr", t.lr, "must be positive")
    _require(t.weight_decay >= 0, f"{prefix}.weight_decay", t.weight_decay, "must be >= 0")
    _require(t.warmup_steps >= 0, f"{prefix}.warmup_steps", t.warmup_steps, "must be >= 0")
    _require(0 <= t.min_lr_ratio <= 1, f"{prefix}.min_lr_ratio", t.min_lr_ratio, "must be in [0, 1]")
    _require(t.grad_clip >= 0, f"{prefix}.grad_clip", t.grad_clip, "must be >= 0 (0 disables clipping)")
    _require(t.precision in PRECISIONS, f"{prefix}.precision", t.precision, f"must be one of {', '.join(PRECISIONS)}")
    _require(t.val_every >= 1, f"{prefix}.val_every", t.val_every, "must be at least 1")
    _require(t.log_every >= 1, f"{prefix}.log_every", t.log_every, "must be at least 1")
    _require(
        t.accelerator in ACCELERATORS, f"{prefix}.accelerator", t.accelerator, f"must be one of {', '.join(ACCELERATORS)}"
    )
    _require(t.devices >= 1, f"{prefix}.devices", t.devices, "must be at least 1")


def validate_generate(g: GenerateConfig, prefix: str = "generate") -> None:
    _require(g.max_new_tokens >= 0, _key(prefix, "max_new_tokens"), g.max_new_tokens, "must be >= 0")
    _require(g.temperature > 0, _key(prefix, "temperature"), g.temperature, "must be positive")
    _require(g.top_k >= 0, _key(prefix, "top_k"), g.top_k, "must be >= 0 (0: no top-k filter)")
    _require(0 < g.top_p <= 1, _key(prefix, "top_p"), g.top_p, "must be in (0, 1]")


def validate_lm_job(job: LMJobConfig) -> None:
    m, d = job.model, job.data
    _require(m.head == "lm", "model.head", m.head, "the byte language model needs head 'lm'")
    _require(m.vocab_size >= 256, "model.vocab_size", m.vocab_size, "a byte model needs at least 256 tokens")
    _require(d.seq_len >= 2, "data.seq_len", d.seq_len, "must be at least 2")
    _require(0 < d.val_fraction < 1, "data.val_fraction", d.val_fraction, "must be in (0, 1)")
    _require(d.val_max_windows >= 0, "data.val_max_windows", d.val_max_windows, "must be >= 0 (0: all)")
    _require(d.batch_size >= 1, "data.batch_size", d.batch_size, "must be at least 1")
    _require(d.num_workers >= 0, "data.num_workers", d.num_workers, "must be >= 0")
    validate_train(job.train)
    validate_generate(job.generate)

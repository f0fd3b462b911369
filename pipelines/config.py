"""Typed configuration of the pipeline jobs.

Each job is one dataclass tree loaded with `seqssm.load_config(schema, yaml_path, overrides)`: the YAML and the
`--set key=value` overrides are merged onto `OmegaConf.structured(schema)`, so an unknown key or a value of the
wrong type is a one-line `seqssm.ConfigError` naming the key. Value checks that the type system cannot express
(a positive length, a fraction in (0, 1)) live in each dataclass's `validate(prefix)`, which load_config calls
on every node of the tree; they raise `seqssm.ConfigError` naming the key.

Shipped YAML files in configs/ are named `<job>_<name>.yaml`; `SCHEMAS` maps the job prefix to its schema so
that every shipped file can be checked against the schema of the command that reads it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from seqssm import ConfigError, GenerateConfig, ModelConfig
from seqssm.config import validate_tree


class UsageError(ValueError):
    """A mistake in the user's input (path, option, config value). The CLI prints it as one line, exit status 2."""


PRECISIONS = ("32-true", "32", "64-true", "64", "bf16-mixed", "bf16-true", "16-mixed", "16-true")
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")


def _require(ok: bool, key: str, value, what: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {what}, got {value!r}")


@dataclass
class DataConfig:
    """Where the training bytes come from and how they are cut into windows."""

    path: str = ""  # the file to model; `--data FILE` on the command line sets it
    seq_len: int = 512  # bytes per training window (the model sees seq_len inputs, predicts seq_len targets)
    val_fraction: float = 0.05  # the last val_fraction of the file is held out, as contiguous windows
    val_max_windows: int = 256  # cap on validation windows (0: all of them), taken from the start of the tail
    batch_size: int = 8
    num_workers: int = 0

    def validate(self, prefix: str = "") -> None:
        p = prefix
        _require(self.seq_len >= 2, p + "seq_len", self.seq_len, "must be >= 2")
        _require(0 < self.val_fraction < 1, p + "val_fraction", self.val_fraction, "must be in (0, 1)")
        _require(self.val_max_windows >= 0, p + "val_max_windows", self.val_max_windows, "must be >= 0 (0: all)")
        _require(self.batch_size >= 1, p + "batch_size", self.batch_size, "must be >= 1")
        _require(self.num_workers >= 0, p + "num_workers", self.num_workers, "must be >= 0")


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
    threads: int = 0  # torch CPU threads (0: torch's default); 1 is far steadier on a CPU shared with other jobs

    def validate(self, prefix: str = "") -> None:
        p = prefix
        _require(self.max_steps >= 1, p + "max_steps", self.max_steps, "must be >= 1")
        _require(self.lr > 0, p + "lr", self.lr, "must be > 0")
        _require(self.weight_decay >= 0, p + "weight_decay", self.weight_decay, "must be >= 0")
        _require(self.warmup_steps >= 0, p + "warmup_steps", self.warmup_steps, "must be >= 0")
        _require(0 <= self.min_lr_ratio <= 1, p + "min_lr_ratio", self.min_lr_ratio, "must be in [0, 1]")
        _require(self.grad_clip >= 0, p + "grad_clip", self.grad_clip, "must be >= 0 (0: no clipping)")
        _require(self.precision in PRECISIONS, p + "precision", self.precision, f"must be one of {', '.join(PRECISIONS)}")
        _require(self.val_every >= 1, p + "val_every", self.val_every, "must be >= 1")
        _require(self.log_every >= 1, p + "log_every", self.log_every, "must be >= 1")
        _require(
            self.accelerator in ACCELERATORS,
            p + "accelerator",
            self.accelerator,
            f"must be one of {', '.join(ACCELERATORS)}",
        )
        _require(self.devices >= 1, p + "devices", self.devices, "must be >= 1")
        _require(self.threads >= 0, p + "threads", self.threads, "must be >= 0 (0: torch's default)")


@dataclass
class LMJobConfig:
    """`seqssm lm train`: a byte-level language model (MambaByte setting) on any file."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    out_dir: str = "runs/lm"

    def validate(self, prefix: str = "") -> None:
        p = prefix
        _require(self.model.head == "lm", p + "model.head", self.model.head, "the byte language model needs 'lm'")
        _require(self.model.vocab_size >= 256, p + "model.vocab_size", self.model.vocab_size, "a byte model needs >= 256")


TRUNCATIONS = ("error", "right", "left")
MONITORS = ("val_mcc", "val_acc", "val_f1", "val_auroc", "val_loss")


@dataclass
class ClassifyDataConfig:
    """Labelled sequences (CSV `sequence,label` or FASTA with `label=` in the header) and how they are batched."""

    train: str = ""  # `--train FILE`
    val: str = ""  # `--val FILE`: the dev split, for model selection and early stopping
    test: str = ""  # `--test FILE` (optional): scored once at the end with the selected model
    max_length: int = 512  # tokens per sequence at most
    truncation: str = "error"  # longer sequences: "error" (refused, naming the line), "right" keeps the start, "left" the end
    rc_augment: float = 0.5  # probability that a training row is replaced by its reverse complement
    batch_size: int = 64
    eval_batch_size: int = 256
    num_workers: int = 0

    def validate(self, prefix: str = "") -> None:
        p = prefix
        _require(self.max_length >= 1, p + "max_length", self.max_length, "must be >= 1")
        _require(self.truncation in TRUNCATIONS, p + "truncation", self.truncation,
                 f"must be one of {', '.join(TRUNCATIONS)}")
        _require(0 <= self.rc_augment <= 1, p + "rc_augment", self.rc_augment, "must be in [0, 1]")
        _require(self.batch_size >= 1, p + "batch_size", self.batch_size, "must be >= 1")
        _require(self.eval_batch_size >= 1, p + "eval_batch_size", self.eval_batch_size, "must be >= 1")
        _require(self.num_workers >= 0, p + "num_workers", self.num_workers, "must be >= 0")


@dataclass
class ClassifyTrainConfig(TrainConfig):
    """TrainConfig plus epochs and early stopping. max_steps 0: max_epochs decides the length of the run."""

    max_steps: int = 0
    max_epochs: int = 3
    patience: int = 0  # stop after this many validations without improvement of `monitor` (0: never stop early)
    monitor: str = "val_mcc"  # the metric that picks the best model and drives early stopping

    def validate(self, prefix: str = "") -> None:
        p = prefix
        # the inherited checks, with the one rule that differs here (0 steps: let max_epochs decide)
        TrainConfig.validate(dataclasses.replace(self, max_steps=max(1, self.max_steps)), prefix)
        _require(self.max_steps >= 0, p + "max_steps", self.max_steps, "must be >= 0 (0: max_epochs decides)")
        _require(self.max_epochs >= 1, p + "max_epochs", self.max_epochs, "must be >= 1")
        _require(self.patience >= 0, p + "patience", self.patience, "must be >= 0 (0: no early stopping)")
        _require(self.monitor in MONITORS, p + "monitor", self.monitor, f"must be one of {', '.join(MONITORS)}")


@dataclass
class ClassifyEvalConfig:
    rc_conjoin: bool = True  # final metrics (and predict/eval defaults) average the logits of both strands


@dataclass
class ClassifyJobConfig:
    """`seqssm classify train`: a sequence classifier on labelled DNA. model.vocab_size is the tokenizer's
    (10 ids) and model.num_classes is set from the training labels."""

    model: ModelConfig = field(default_factory=lambda: ModelConfig(vocab_size=10, head="classify"))
    data: ClassifyDataConfig = field(default_factory=ClassifyDataConfig)
    train: ClassifyTrainConfig = field(default_factory=ClassifyTrainConfig)
    eval: ClassifyEvalConfig = field(default_factory=ClassifyEvalConfig)
    out_dir: str = "runs/classify"

    def validate(self, prefix: str = "") -> None:
        p = prefix
        _require(self.model.head == "classify", p + "model.head", self.model.head,
                 "a sequence classifier needs 'classify'")
        _require(self.model.vocab_size == 10, p + "model.vocab_size", self.model.vocab_size,
                 "must be 10, the NucleotideTokenizer's vocabulary")


# job prefix of a shipped config file name -> the schema of the command that reads it
SCHEMAS = {"lm": LMJobConfig, "classify": ClassifyJobConfig}


def schema_for_file(name: str):
    """The schema for a shipped config file `<job>_<rest>.yaml`, or UsageError."""
    prefix = name.split("_", 1)[0]
    if prefix not in SCHEMAS:
        raise UsageError(f"{name}: no job schema for prefix {prefix!r} (known: {', '.join(sorted(SCHEMAS))})")
    return SCHEMAS[prefix]


def validate_lm_job(job: LMJobConfig) -> None:
    validate_tree(job)


def validate_generate(g: GenerateConfig) -> None:
    """The sampling options of `seqssm lm sample`, named as command-line options."""
    _require(g.max_new_tokens >= 0, "--max-new-tokens", g.max_new_tokens, "must be >= 0")
    _require(g.temperature >= 0, "--temperature", g.temperature, "must be >= 0 (0: greedy)")
    _require(g.top_k >= 0, "--top-k", g.top_k, "must be >= 0 (0: no top-k filter)")
    _require(0 < g.top_p <= 1, "--top-p", g.top_p, "must be in (0, 1]")

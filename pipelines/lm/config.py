"""The job config of `seqssm lm train` (configs/lm_bytes.yaml mirrors it key for key)."""

from __future__ import annotations

from dataclasses import dataclass, field

from seqssm import GenerateConfig, ModelConfig
from seqssm.config import require
from seqssm.pipelines.jobconfig import TrainConfig, load_job as load_job_config

DEFAULT_CONFIG = "lm_bytes"


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
        require(self.seq_len >= 2, p + "seq_len", self.seq_len, "must be >= 2")
        require(0 < self.val_fraction < 1, p + "val_fraction", self.val_fraction, "must be in (0, 1)")
        require(self.val_max_windows >= 0, p + "val_max_windows", self.val_max_windows, "must be >= 0 (0: all)")
        require(self.batch_size >= 1, p + "batch_size", self.batch_size, "must be >= 1")
        require(self.num_workers >= 0, p + "num_workers", self.num_workers, "must be >= 0")


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
        require(self.model.head == "lm", p + "model.head", self.model.head, "the byte language model needs 'lm'")
        require(self.model.vocab_size >= 256, p + "model.vocab_size", self.model.vocab_size, "a byte model needs >= 256")


def load_job(config: str | None, overrides=(), data: str | None = None, out: str | None = None) -> LMJobConfig:
    """The job from a YAML or shipped config name (default lm_bytes), `--set` overrides, --data and --out."""
    return load_job_config(LMJobConfig, config, DEFAULT_CONFIG, overrides, {"data.path": data, "out_dir": out})

"""The job config of `seqssm audio train` (configs/audio_fsdd.yaml mirrors it key for key)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from seqssm import ModelConfig
from seqssm.config import require
from seqssm.domains.audio.corpus import QUANTIZERS, SPLITS
from seqssm.pipelines.jobconfig import TrainConfig, check_batching, load_job as load_job_config

DEFAULT_CONFIG = "audio_fsdd"


@dataclass
class AudioDataConfig:
    """A folder of audio files, its split into train / val / test by file, and the quantisation (the tokenizer).

    split "fsdd": the Free Spoken Digit Dataset's own rule, takes in test_takes are the test set; speakers in
    heldout_speakers are left out of training and scored apart (a voice never heard). split "files": a seeded
    split of whole files (test_fraction, then val_fraction of the rest). Validation files always come out of the
    training files (val_fraction), so the test set plays no part in training or model selection.
    """

    folder: str = ""  # `--data FOLDER`
    split: str = "fsdd"
    test_takes: List[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])  # split fsdd
    heldout_speakers: List[str] = field(default_factory=list)  # split fsdd: never trained on, scored apart
    test_fraction: float = 0.1  # split files
    val_fraction: float = 0.05  # of the training files
    sample_rate: int = 8000  # every file is resampled to this rate
    quantizer: str = "mulaw"  # mulaw or linear
    bits: int = 8
    scaling: str = "minmax"  # mulaw: minmax (per clip, SaShiMi's convention) or none
    bins: str = "sashimi"  # mulaw: sashimi or round (see seqssm.domains.audio.quantize)
    crop_len: int = 4096  # samples per training crop (shorter clips are padded and masked)
    batch_size: int = 8
    eval_batch_size: int = 16
    num_workers: int = 0

    def validate(self, prefix: str = "") -> None:
        p = prefix
        require(self.split in SPLITS, p + "split", self.split, f"must be one of {', '.join(SPLITS)}")
        require(bool(self.test_takes) and all(t >= 0 for t in self.test_takes), p + "test_takes",
                 list(self.test_takes), "must list one or more take numbers >= 0")
        require(0 < self.test_fraction < 1, p + "test_fraction", self.test_fraction, "must be in (0, 1)")
        require(0 < self.val_fraction < 1, p + "val_fraction", self.val_fraction, "must be in (0, 1)")
        require(self.sample_rate >= 1000, p + "sample_rate", self.sample_rate, "must be >= 1000 Hz")
        require(self.quantizer in QUANTIZERS, p + "quantizer", self.quantizer,
                f"must be one of {', '.join(QUANTIZERS)}")
        require(2 <= self.bits <= 16, p + "bits", self.bits, "must be in [2, 16]")
        require(self.scaling in ("minmax", "none"), p + "scaling", self.scaling, "must be minmax or none")
        require(self.bins in ("sashimi", "round"), p + "bins", self.bins, "must be sashimi or round")
        require(self.crop_len >= 2, p + "crop_len", self.crop_len, "must be >= 2")
        check_batching(self, p)


@dataclass
class AudioJobConfig:
    """`seqssm audio train`: next-sample prediction on quantised waveforms (SaShiMi / Mamba paper section 4.4).
    model.vocab_size must be the quantiser's 2^bits."""

    model: ModelConfig = field(default_factory=lambda: ModelConfig(vocab_size=256))
    data: AudioDataConfig = field(default_factory=AudioDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    out_dir: str = "runs/audio"

    def validate(self, prefix: str = "") -> None:
        p = prefix
        require(self.model.head == "lm", p + "model.head", self.model.head, "next-sample prediction needs 'lm'")
        require(self.model.vocab_size == 1 << self.data.bits, p + "model.vocab_size", self.model.vocab_size,
                 f"must be 2^data.bits = {1 << self.data.bits}")


def load_job(config: str | None, overrides=(), data=None, out=None) -> AudioJobConfig:
    """The job from a YAML or shipped config name (default audio_fsdd), `--set` overrides, --data and --out."""
    return load_job_config(AudioJobConfig, config, DEFAULT_CONFIG, overrides, {"data.folder": data, "out_dir": out})

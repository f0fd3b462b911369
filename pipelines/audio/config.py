"""The job config of `seqssm audio train` (configs/audio_fsdd.yaml mirrors it key for key)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from seqssm import ModelConfig
from seqssm.config import require
from seqssm.domains.audio.classifier import DigitClassifierConfig
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


CONDITIONS = ("digit", "speaker")


@dataclass
class ConditionConfig:
    """Generation conditioned on the digit and the speaker (FSDD names; seqssm.domains.audio.conditional): prefix
    tokens [digit, speaker] selecting a class embedding added at every position. `by` [] trains an unconditional
    model. speakers: filled from the training files when empty (sorted); a condition not in `by` is always "any"."""

    by: List[str] = field(default_factory=list)  # [], [digit], [speaker] or [digit, speaker]
    speakers: List[str] = field(default_factory=list)
    n_digits: int = 10
    drop_prob: float = 0.2  # each given condition is replaced by "any" with this probability in training

    def validate(self, prefix: str = "") -> None:
        p = prefix
        require(all(c in CONDITIONS for c in self.by) and len(set(self.by)) == len(self.by), p + "by",
                list(self.by), f"must list distinct names of {', '.join(CONDITIONS)}")
        require(self.n_digits >= 1, p + "n_digits", self.n_digits, "must be >= 1")
        require(0 <= self.drop_prob < 1, p + "drop_prob", self.drop_prob, "must be in [0, 1)")


UNIT_STAGES = ("none", "vocoder", "planner", "decoder")


@dataclass
class UnitsConfig:
    """The two-stage model (seqssm.domains.audio.units): stage "vocoder" trains the sample-level model given each
    sample's acoustic unit (k-means of 20 ms log-mel frames, fitted on the training clips at the start of the run);
    stage "planner" trains a model over the unit ids of a vocoder run's coder (`coder`: that run's folder), whose
    samples `seqssm audio generate --plan` hands to the vocoder; stage "decoder" trains a frame-level model from the
    units of a coder (and the speaker) to the log-magnitude spectrogram, voiced by Griffin-Lim
    (seqssm.domains.audio.spectral), another renderer of the planner's units. "none": one quantised sample per
    token only."""

    stage: str = "none"  # none, vocoder, planner or decoder
    k: int = 128  # vocoder: units fitted (the planner's vocabulary is k + 1: the units and an end token)
    hop: int = 160  # vocoder: samples per frame (20 ms at 8 kHz)
    n_fft: int = 512
    n_mels: int = 40
    kmeans_iters: int = 30
    drop_prob: float = 0.0  # vocoder: a clip's whole track replaced by "no unit" with this probability (for --guidance)
    speeds: List[float] = field(default_factory=lambda: [1.0])  # planner: its training clips' units at each speed
    coder: str = ""  # planner, decoder: the run (or its model/ folder) whose units it learns; vocoder: read, not fitted
    griffin_lim_iters: int = 64  # decoder: Griffin-Lim iterations when it renders a clip

    def validate(self, prefix: str = "") -> None:
        p = prefix
        require(self.stage in UNIT_STAGES, p + "stage", self.stage, f"must be one of {', '.join(UNIT_STAGES)}")
        require(self.k >= 2, p + "k", self.k, "must be >= 2")
        require(self.hop >= 1, p + "hop", self.hop, "must be >= 1")
        require(self.n_fft >= 2 and self.n_mels >= 1, p + "n_fft", self.n_fft, "n_fft >= 2 and n_mels >= 1 needed")
        require(self.kmeans_iters >= 1, p + "kmeans_iters", self.kmeans_iters, "must be >= 1")
        require(0 <= self.drop_prob < 1, p + "drop_prob", self.drop_prob, "must be in [0, 1)")
        require(self.griffin_lim_iters >= 1, p + "griffin_lim_iters", self.griffin_lim_iters, "must be >= 1")
        require(bool(self.speeds) and all(0.5 <= v <= 2 for v in self.speeds), p + "speeds", list(self.speeds),
                "must list one or more speeds in [0.5, 2]")


@dataclass
class AudioJobConfig:
    """`seqssm audio train`: next-sample prediction on quantised waveforms (SaShiMi / Mamba paper section 4.4).
    model.vocab_size must be the quantiser's 2^bits."""

    model: ModelConfig = field(default_factory=lambda: ModelConfig(vocab_size=256))
    data: AudioDataConfig = field(default_factory=AudioDataConfig)
    condition: ConditionConfig = field(default_factory=ConditionConfig)
    units: UnitsConfig = field(default_factory=UnitsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    out_dir: str = "runs/audio"

    def validate(self, prefix: str = "") -> None:
        p = prefix
        if self.units.stage == "decoder":  # one log-magnitude vector per unit frame, vocabulary checked with the coder
            require(self.model.head == "token", p + "model.head", self.model.head,
                    "units.stage decoder needs 'token' (one output vector per frame)")
            require(self.model.num_classes == self.units.n_fft // 2 + 1, p + "model.num_classes",
                    self.model.num_classes, f"must be units.n_fft / 2 + 1 = {self.units.n_fft // 2 + 1} (the bins)")
        else:
            require(self.model.head == "lm", p + "model.head", self.model.head, "next-sample prediction needs 'lm'")
        if self.units.stage not in ("planner", "decoder"):  # a planner's vocabulary is its coder's units + 1, checked when it is read
            require(self.model.vocab_size == 1 << self.data.bits, p + "model.vocab_size", self.model.vocab_size,
                    f"must be 2^data.bits = {1 << self.data.bits}")
        require(self.units.stage == "none" or bool(self.condition.by), p + "units.stage", self.units.stage,
                "needs condition.by (the two-stage model is asked for a digit and a speaker)")
        require(not self.condition.by or self.data.split == "fsdd", p + "condition.by", list(self.condition.by),
                "needs data.split fsdd (the digit and speaker come from FSDD file names)")


@dataclass
class ClassifierDataConfig:
    folder: str = ""  # `--data FOLDER`: FSDD names {digit}_{speaker}_{take}.wav
    test_takes: List[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])

    def validate(self, prefix: str = "") -> None:
        require(bool(self.test_takes), prefix + "test_takes", list(self.test_takes), "must list one or more takes")


@dataclass
class ClassifierTrainConfig:
    max_epochs: int = 40
    max_minutes: float = 4.0  # wall-clock budget (0: none); the cosine schedule follows the larger of the two
    batch_size: int = 32
    lr: float = 3.0e-3
    weight_decay: float = 1.0e-2
    seed: int = 0
    threads: int = 1  # torch CPU threads (0: torch's default)
    progress: bool = True

    def validate(self, prefix: str = "") -> None:
        p = prefix
        require(self.max_epochs >= 1, p + "max_epochs", self.max_epochs, "must be >= 1")
        require(self.max_minutes >= 0, p + "max_minutes", self.max_minutes, "must be >= 0")
        require(self.batch_size >= 1, p + "batch_size", self.batch_size, "must be >= 1")
        require(self.lr > 0, p + "lr", self.lr, "must be > 0")
        require(self.threads >= 0, p + "threads", self.threads, "must be >= 0")


@dataclass
class ClassifierJobConfig:
    """`seqssm audio classifier`: the digit classifier of the sample-quality metrics."""

    model: DigitClassifierConfig = field(default_factory=DigitClassifierConfig)
    data: ClassifierDataConfig = field(default_factory=ClassifierDataConfig)
    train: ClassifierTrainConfig = field(default_factory=ClassifierTrainConfig)
    out_dir: str = "runs/fsdd_classifier"


def load_job(config: str | None, overrides=(), data=None, out=None) -> AudioJobConfig:
    """The job from a YAML or shipped config name (default audio_fsdd), `--set` overrides, --data and --out."""
    return load_job_config(AudioJobConfig, config, DEFAULT_CONFIG, overrides, {"data.folder": data, "out_dir": out})

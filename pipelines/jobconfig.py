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
import math
from dataclasses import dataclass, field
from typing import List

from seqssm import GenerateConfig, ModelConfig
from seqssm.config import validate_tree
from seqssm.pipelines.config_checks import require as _require
from seqssm.pipelines.eval_config import EVAL_JOBS


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
    # wall-clock budget (0: none): training stops after max_minutes, and the cosine schedule follows the larger of
    # step and clock progress, so the learning rate has decayed when the budget is spent. Timing makes such a run
    # non-reproducible step for step; leave it 0 for exact reruns.
    max_minutes: float = 0.0
    # fine-tuning: a model or run folder (e.g. of `seqssm pretrain`) whose backbone weights start this run
    init_from: str = ""

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
        _require(self.max_minutes >= 0, p + "max_minutes", self.max_minutes, "must be >= 0 (0: no budget)")


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


def _check_batching(cfg, p: str) -> None:
    """batch_size, eval_batch_size and num_workers of a data config."""
    _require(cfg.batch_size >= 1, p + "batch_size", cfg.batch_size, "must be >= 1")
    _require(cfg.eval_batch_size >= 1, p + "eval_batch_size", cfg.eval_batch_size, "must be >= 1")
    _require(cfg.num_workers >= 0, p + "num_workers", cfg.num_workers, "must be >= 0")


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
        _check_batching(self, p)


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


AUDIO_SPLITS = ("fsdd", "files")
QUANTIZERS = ("mulaw", "linear")


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
        _require(self.split in AUDIO_SPLITS, p + "split", self.split, f"must be one of {', '.join(AUDIO_SPLITS)}")
        _require(bool(self.test_takes) and all(t >= 0 for t in self.test_takes), p + "test_takes",
                 list(self.test_takes), "must list one or more take numbers >= 0")
        _require(0 < self.test_fraction < 1, p + "test_fraction", self.test_fraction, "must be in (0, 1)")
        _require(0 < self.val_fraction < 1, p + "val_fraction", self.val_fraction, "must be in (0, 1)")
        _require(self.sample_rate >= 1000, p + "sample_rate", self.sample_rate, "must be >= 1000 Hz")
        _require(self.quantizer in QUANTIZERS, p + "quantizer", self.quantizer, f"must be one of {', '.join(QUANTIZERS)}")
        _require(2 <= self.bits <= 16, p + "bits", self.bits, "must be in [2, 16]")
        _require(self.scaling in ("minmax", "none"), p + "scaling", self.scaling, "must be minmax or none")
        _require(self.bins in ("sashimi", "round"), p + "bins", self.bins, "must be sashimi or round")
        _require(self.crop_len >= 2, p + "crop_len", self.crop_len, "must be >= 2")
        _check_batching(self, p)


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
        _require(self.model.head == "lm", p + "model.head", self.model.head, "next-sample prediction needs 'lm'")
        _require(self.model.vocab_size == 1 << self.data.bits, p + "model.vocab_size", self.model.vocab_size,
                 f"must be 2^data.bits = {1 << self.data.bits}")


PRETRAIN_SOURCES = ("fasta", "bytes", "audio")
SEGMENT_BACKPROP = ("exact", "truncated")  # seqssm.tbptt.MODES


@dataclass
class LengthStage:
    """One stage of the sequence-length warm-up: `steps` optimizer steps on windows of `seq_len` tokens."""

    seq_len: int = 1024
    steps: int = 100


@dataclass
class PretrainDataConfig:
    """Where pretraining windows come from. The last `holdout` of every record (fasta), of the file (bytes) or of
    every audio file (audio) is held out for evaluation; training windows are drawn from the rest, window i of
    step s from a generator seeded by (train.seed, s), so the data position of a run is its step count (resume
    needs nothing else). Audio: every file is resampled to `sample_rate`, mixed to mono and mu-law quantised to
    2^bits levels (min-max scaled per file, SaShiMi's bins: the convention of `seqssm audio`)."""

    source: str = "fasta"  # fasta (pyfaidx, nucleotide tokens), bytes (any file, 256 tokens) or audio (crops)
    path: str = ""  # `--data FILE` (audio: one file or a folder of WAV/FLAC/OGG files)
    holdout: float = 0.1
    max_n_fraction: float = 0.1  # fasta: training windows with more N than this are drawn again
    rc_augment: float = 0.5  # fasta: probability that a training window is read on the reverse strand
    eval_context: int = 1024  # tokens just before the held-out part that warm up the state (not scored)
    eval_segment: int = 65536  # the held-out part is streamed in segments of this length, state carried
    eval_max_tokens: int = 0  # score at most this many held-out tokens during training (0: all); the end: all
    sample_rate: int = 16000  # audio: every file is resampled to this rate
    bits: int = 8  # audio: mu-law levels 2^bits (model.vocab_size must match)

    def validate(self, prefix: str = "") -> None:
        p = prefix
        _require(self.source in PRETRAIN_SOURCES, p + "source", self.source,
                 f"must be one of {', '.join(PRETRAIN_SOURCES)}")
        _require(0 < self.holdout < 1, p + "holdout", self.holdout, "must be in (0, 1)")
        _require(0 <= self.max_n_fraction <= 1, p + "max_n_fraction", self.max_n_fraction, "must be in [0, 1]")
        _require(0 <= self.rc_augment <= 1, p + "rc_augment", self.rc_augment, "must be in [0, 1]")
        _require(self.eval_context >= 0, p + "eval_context", self.eval_context, "must be >= 0")
        _require(self.eval_segment >= 1, p + "eval_segment", self.eval_segment, "must be >= 1")
        _require(self.eval_max_tokens >= 0, p + "eval_max_tokens", self.eval_max_tokens, "must be >= 0 (0: all)")
        _require(self.sample_rate >= 1, p + "sample_rate", self.sample_rate, "must be >= 1")
        _require(1 <= self.bits <= 16, p + "bits", self.bits, "must be in [1, 16]")


@dataclass
class PretrainScheduleConfig:
    """HyenaDNA-style length warm-up at a constant number of tokens per batch, and truncated backpropagation
    through time: a window longer than segment_len is trained in segments with the recurrent state carried
    forward exactly (and the gradient cut at segment boundaries), so memory is bounded by one segment."""

    stages: List[LengthStage] = field(default_factory=lambda: [LengthStage(1024, 100)])
    tokens_per_batch: int = 8192  # batch size at a stage = tokens_per_batch // seq_len (at least 1)
    segment_len: int = 0  # 0: each window in one piece
    segment_backprop: str = "exact"  # exact: the full pass's gradients (2 forwards); truncated: cut at boundaries

    def validate(self, prefix: str = "") -> None:
        p = prefix
        _require(len(self.stages) >= 1, p + "stages", len(self.stages), "needs at least one stage")
        for i, st in enumerate(self.stages):
            _require(st.seq_len >= 2, f"{p}stages[{i}].seq_len", st.seq_len, "must be >= 2")
            _require(st.steps >= 1, f"{p}stages[{i}].steps", st.steps, "must be >= 1")
        _require(self.tokens_per_batch >= 2, p + "tokens_per_batch", self.tokens_per_batch, "must be >= 2")
        _require(self.segment_len >= 0, p + "segment_len", self.segment_len, "must be >= 0 (0: no segments)")
        _require(self.segment_backprop in SEGMENT_BACKPROP, p + "segment_backprop", self.segment_backprop,
                 f"must be one of {', '.join(SEGMENT_BACKPROP)}")

    @property
    def total_steps(self) -> int:
        return sum(st.steps for st in self.stages)

    def stage_at(self, step: int) -> LengthStage:
        """The stage that optimizer step `step` (0-based) belongs to (the last one past the end)."""
        for st in self.stages:
            if step < st.steps:
                return st
            step -= st.steps
        return self.stages[-1]

    def batch_size(self, stage: LengthStage) -> int:
        return max(1, self.tokens_per_batch // stage.seq_len)


@dataclass
class PretrainTrainConfig(TrainConfig):
    """TrainConfig plus crash-safe checkpoints. The schedule's stages decide the number of steps (max_steps 0)."""

    max_steps: int = 0
    checkpoint_every: int = 100  # optimizer steps between checkpoints (and one at the end)
    keep_checkpoints: int = 2  # the newest ones kept; older ones are deleted once a newer one is safely written
    activation_checkpointing: bool = False  # recompute each block's activations in backward (memory for time)
    tensorboard: bool = True  # also log to TensorBoard (RUN/logs/tensorboard; needs tensorboardX) besides CSV

    def validate(self, prefix: str = "") -> None:
        TrainConfig.validate(dataclasses.replace(self, max_steps=1), prefix)
        _require(self.max_steps == 0, prefix + "max_steps", self.max_steps,
                 "must be 0: the number of steps is the sum of schedule.stages[*].steps")
        _require(self.checkpoint_every >= 1, prefix + "checkpoint_every", self.checkpoint_every, "must be >= 1")
        _require(self.keep_checkpoints >= 1, prefix + "keep_checkpoints", self.keep_checkpoints, "must be >= 1")


OBJECTIVES = ("causal", "masked")


@dataclass
class PretrainObjectiveConfig:
    """causal: next-token prediction. masked (BERT / Caduceus, for bidirectional models such as layer bimamba):
    a `mask_fraction` of the positions is chosen; of those 80% become [MASK], 10% a random base, 10% stay; the
    loss is on the chosen positions. FASTA only (the nucleotide vocabulary has a [MASK] token)."""

    kind: str = "causal"
    mask_fraction: float = 0.15

    def validate(self, prefix: str = "") -> None:
        _require(self.kind in OBJECTIVES, prefix + "kind", self.kind, f"must be one of {', '.join(OBJECTIVES)}")
        _require(0 < self.mask_fraction < 1, prefix + "mask_fraction", self.mask_fraction, "must be in (0, 1)")


@dataclass
class PretrainJobConfig:
    """`seqssm pretrain`: a language model on long sequences (a genome, audio files, any file of bytes), causal or
    masked."""

    model: ModelConfig = field(default_factory=lambda: ModelConfig(vocab_size=10))
    data: PretrainDataConfig = field(default_factory=PretrainDataConfig)
    schedule: PretrainScheduleConfig = field(default_factory=PretrainScheduleConfig)
    objective: PretrainObjectiveConfig = field(default_factory=PretrainObjectiveConfig)
    train: PretrainTrainConfig = field(default_factory=PretrainTrainConfig)
    out_dir: str = "runs/pretrain"

    def validate(self, prefix: str = "") -> None:
        p = prefix
        _require(self.model.head == "lm", p + "model.head", self.model.head, "pretraining needs 'lm' (token logits)")
        if self.objective.kind == "masked":
            _require(self.data.source == "fasta", p + "data.source", self.data.source,
                     "the masked objective needs fasta (a [MASK] token)")
            _require(self.model.layer == "bimamba", p + "model.layer", self.model.layer,
                     "the masked objective needs a bidirectional mixer (bimamba)")
            _require(self.schedule.segment_len == 0, p + "schedule.segment_len", self.schedule.segment_len,
                     "must be 0 for the masked objective (a bidirectional model has no carried state)")
        else:
            _require(self.model.layer != "bimamba", p + "model.layer", self.model.layer,
                     "bimamba sees the future: use objective.kind masked, or a causal mixer")
        group = math.prod(self.model.pool_factors or [1])
        if self.schedule.segment_len and group > 1:  # mid-group, the multi-scale model runs decoding steps
            _require(self.schedule.segment_len % group == 0, p + "schedule.segment_len", self.schedule.segment_len,
                     f"must be a multiple of the product of model.pool_factors ({group})")
        bits_ok = 1 <= self.data.bits <= 16  # else data.validate names the bad field
        want = {"fasta": 10, "bytes": 256, "audio": 1 << self.data.bits if bits_ok else None}.get(self.data.source)
        if want is not None:
            _require(self.model.vocab_size == want, p + "model.vocab_size", self.model.vocab_size,
                     f"must be {want} for data.source {self.data.source}")



# job prefix of a shipped config file name -> the schema of the command that reads it; the longest prefix wins,
# so eval_induction_heads.yaml is read by the induction-heads job
SCHEMAS = {"lm": LMJobConfig, "classify": ClassifyJobConfig, "audio": AudioJobConfig, "pretrain": PretrainJobConfig}
SCHEMAS.update({f"eval_{task.replace('-', '_')}": cls for task, cls in EVAL_JOBS.items()})


def schema_for_file(name: str):
    """The schema for a shipped config file `<job>_<rest>.yaml` (or `<job>.yaml`), or UsageError."""
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    found = [k for k in SCHEMAS if stem == k or stem.startswith(k + "_")]
    if not found:
        prefix = stem.split("_", 1)[0]
        raise UsageError(f"{name}: no job schema for prefix {prefix!r} (known: {', '.join(sorted(SCHEMAS))})")
    return SCHEMAS[max(found, key=len)]


def validate_lm_job(job: LMJobConfig) -> None:
    validate_tree(job)


def validate_generate(g: GenerateConfig) -> None:
    """The sampling options of `seqssm lm sample`, named as command-line options."""
    _require(g.max_new_tokens >= 0, "--max-new-tokens", g.max_new_tokens, "must be >= 0")
    _require(g.temperature >= 0, "--temperature", g.temperature, "must be >= 0 (0: greedy)")
    _require(g.top_k >= 0, "--top-k", g.top_k, "must be >= 0 (0: no top-k filter)")
    _require(0 < g.top_p <= 1, "--top-p", g.top_p, "must be in (0, 1]")

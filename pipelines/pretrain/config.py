"""The job config of `seqssm pretrain` (configs/pretrain_ecoli.yaml mirrors it key for key)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import List

from seqssm import ModelConfig
from seqssm import domains
from seqssm.config import require
from seqssm.pipelines.jobconfig import TrainConfig, load_job as load_job_config

DEFAULT_CONFIG = "pretrain_ecoli"
SEGMENT_BACKPROP = ("exact", "truncated")  # seqssm.tbptt.MODES
UNITS = {"fasta": "nucleotide", "bytes": "byte", "audio": "sample"}


def unit_of(source: str) -> str:
    """What one token of data.source is, for the curves' axis and the report (a third-party source: "token")."""
    return UNITS.get(source, "token")


@dataclass
class LengthStage:
    """One stage of the sequence-length warm-up: `steps` optimizer steps on windows of `seq_len` tokens."""

    seq_len: int = 1024
    steps: int = 100


@dataclass
class GenomeSource:
    """One genome of a multi-genome corpus (data.genomes): a FASTA (plain or .gz), a short name, and its share of
    the training windows (weights are normalised over the genomes)."""

    name: str = ""
    path: str = ""
    weight: float = 1.0


@dataclass
class PretrainDataConfig:
    """Where pretraining windows come from. The last `holdout` of every record (fasta), of the file (bytes) or of
    every audio file (audio) is held out for evaluation; training windows are drawn from the rest, window i of
    step s from a generator seeded by (train.seed, s), so the data position of a run is its step count (resume
    needs nothing else). Audio: every file is resampled to `sample_rate`, mixed to mono and mu-law quantised to
    2^bits levels (min-max scaled per file, SaShiMi's bins: the convention of `seqssm audio`)."""

    # the domain plugin that reads the data (seqssm.domains.by_source): fasta (dna: pyfaidx, nucleotide tokens),
    # bytes (any file, 256 tokens), audio (mu-law crops), or an installed plugin's own source
    source: str = "fasta"
    path: str = ""  # `--data FILE` (audio: one file or a folder of WAV/FLAC/OGG files)
    holdout: float = 0.1
    max_n_fraction: float = 0.1  # fasta: training windows with more N than this are drawn again
    rc_augment: float = 0.5  # fasta: probability that a training window is read on the reverse strand
    eval_context: int = 1024  # tokens just before the held-out part that warm up the state (not scored)
    eval_segment: int = 65536  # the held-out part is streamed in segments of this length, state carried
    eval_max_tokens: int = 0  # score at most this many held-out tokens during training (0: all); the end: all
    sample_rate: int = 16000  # audio: every file is resampled to this rate
    bits: int = 8  # audio: mu-law levels 2^bits (model.vocab_size must match)
    # fasta: several genomes instead of `path`, each with its sampling weight (both strands, every record's tail held
    # out, as for one genome)
    genomes: List[GenomeSource] = field(default_factory=list)

    def validate(self, prefix: str = "") -> None:
        p = prefix
        if self.genomes:
            require(self.source == "fasta", p + "source", self.source, "must be fasta with data.genomes")
            require(not self.path, p + "path", self.path, "must be empty with data.genomes (--data names one file)")
            for i, g in enumerate(self.genomes):
                require(bool(g.name) and "/" not in g.name, f"{p}genomes[{i}].name", g.name,
                        "must be non-empty, without '/'")
                require(bool(g.path), f"{p}genomes[{i}].path", g.path, "must name a FASTA file")
                require(g.weight > 0, f"{p}genomes[{i}].weight", g.weight, "must be > 0")
            names = [g.name for g in self.genomes]
            require(len(set(names)) == len(names), p + "genomes", names, "names must be unique")
        known = domains.sources()
        require(self.source in known, p + "source", self.source,
                f"must be the source of an installed domain ({', '.join(known)})")
        require(0 < self.holdout < 1, p + "holdout", self.holdout, "must be in (0, 1)")
        require(0 <= self.max_n_fraction <= 1, p + "max_n_fraction", self.max_n_fraction, "must be in [0, 1]")
        require(0 <= self.rc_augment <= 1, p + "rc_augment", self.rc_augment, "must be in [0, 1]")
        require(self.eval_context >= 0, p + "eval_context", self.eval_context, "must be >= 0")
        require(self.eval_segment >= 1, p + "eval_segment", self.eval_segment, "must be >= 1")
        require(self.eval_max_tokens >= 0, p + "eval_max_tokens", self.eval_max_tokens, "must be >= 0 (0: all)")
        require(self.sample_rate >= 1, p + "sample_rate", self.sample_rate, "must be >= 1")
        require(1 <= self.bits <= 16, p + "bits", self.bits, "must be in [1, 16]")


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
        require(len(self.stages) >= 1, p + "stages", len(self.stages), "needs at least one stage")
        for i, st in enumerate(self.stages):
            require(st.seq_len >= 2, f"{p}stages[{i}].seq_len", st.seq_len, "must be >= 2")
            require(st.steps >= 1, f"{p}stages[{i}].steps", st.steps, "must be >= 1")
        require(self.tokens_per_batch >= 2, p + "tokens_per_batch", self.tokens_per_batch, "must be >= 2")
        require(self.segment_len >= 0, p + "segment_len", self.segment_len, "must be >= 0 (0: no segments)")
        require(self.segment_backprop in SEGMENT_BACKPROP, p + "segment_backprop", self.segment_backprop,
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
        require(self.max_steps == 0, prefix + "max_steps", self.max_steps,
                "must be 0: the number of steps is the sum of schedule.stages[*].steps (for a short run set "
                "e.g. schedule.stages=[{seq_len: 256, steps: 2}])")
        require(self.checkpoint_every >= 1, prefix + "checkpoint_every", self.checkpoint_every, "must be >= 1")
        require(self.keep_checkpoints >= 1, prefix + "keep_checkpoints", self.keep_checkpoints, "must be >= 1")


OBJECTIVES = ("causal", "masked")


@dataclass
class PretrainObjectiveConfig:
    """causal: next-token prediction. masked (BERT / Caduceus, for bidirectional models such as layer bimamba):
    a `mask_fraction` of the positions is chosen; of those 80% become [MASK], 10% a random base, 10% stay; the
    loss is on the chosen positions. FASTA only (the nucleotide vocabulary has a [MASK] token)."""

    kind: str = "causal"
    mask_fraction: float = 0.15

    def validate(self, prefix: str = "") -> None:
        require(self.kind in OBJECTIVES, prefix + "kind", self.kind, f"must be one of {', '.join(OBJECTIVES)}")
        require(0 < self.mask_fraction < 1, prefix + "mask_fraction", self.mask_fraction, "must be in (0, 1)")


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
        require(self.model.head == "lm", p + "model.head", self.model.head, "pretraining needs 'lm' (token logits)")
        if self.objective.kind == "masked":
            require(self.data.source == "fasta", p + "data.source", self.data.source,
                    "the masked objective needs fasta (a [MASK] token)")
            require(self.model.layer == "bimamba", p + "model.layer", self.model.layer,
                    "the masked objective needs a bidirectional mixer (bimamba)")
            require(self.schedule.segment_len == 0, p + "schedule.segment_len", self.schedule.segment_len,
                    "must be 0 for the masked objective (a bidirectional model has no carried state)")
        else:
            require(self.model.layer != "bimamba", p + "model.layer", self.model.layer,
                    "bimamba sees the future: use objective.kind masked, or a causal mixer")
        group = math.prod(self.model.multiscale.pool_factors or [1])
        if self.schedule.segment_len and group > 1:  # mid-group, the multi-scale model runs decoding steps
            require(self.schedule.segment_len % group == 0, p + "schedule.segment_len", self.schedule.segment_len,
                    f"must be a multiple of the product of model.multiscale.pool_factors ({group})")
        if self.data.source in domains.sources() and 1 <= self.data.bits <= 16:  # else data.validate names it
            want = domains.by_source(self.data.source).vocab_size(self.data)
            require(self.model.vocab_size == want, p + "model.vocab_size", self.model.vocab_size,
                    f"must be {want} for data.source {self.data.source}")


def load_job(config: str | None, overrides=(), data=None, out=None) -> PretrainJobConfig:
    """The job from a YAML or shipped config name (default pretrain_ecoli), `--set` overrides, --data and --out."""
    return load_job_config(PretrainJobConfig, config, DEFAULT_CONFIG, overrides, {"data.path": data, "out_dir": out})

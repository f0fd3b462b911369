"""The job config of `seqssm classify train` (configs/classify_dna.yaml mirrors it key for key)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from seqssm import ModelConfig
from seqssm import domains
from seqssm.config import require
from seqssm.pipelines.jobconfig import TrainConfig, load_job as load_job_config, check_batching

DEFAULT_CONFIG = "classify_dna"
TRUNCATIONS = ("error", "right", "left")
ORIENTATIONS = ("auto", "symmetric", "oriented")
MONITORS = ("val_mcc", "val_acc", "val_f1", "val_auroc", "val_loss")


@dataclass
class ClassifyDataConfig:
    """Labelled sequences of a domain (DNA: CSV/TSV with a header naming the sequence and label columns, or FASTA
    with `label=` in the header) and how they are batched."""

    domain: str = "dna"  # the `seqssm.domains` plugin that reads the files and tokenizes
    train: str = ""  # `--train FILE`
    val: str = ""  # `--val FILE`: the dev split, for model selection and early stopping
    test: str = ""  # `--test FILE` (optional): scored once at the end with the selected model
    sequence_column: str = "sequence"  # CSV/TSV header names (case-insensitive)
    label_column: str = "label"
    max_length: int = 512  # tokens per sequence at most
    truncation: str = "error"  # longer sequences: "error" (refused, naming the line), "right" keeps the start, "left" the end
    rc_augment: float = 0.5  # probability that a training row is replaced by its reverse complement (stranded domains)
    # symmetric: rc_augment and eval.rc_conjoin as set; oriented: the label belongs to the given strand (promoters),
    # so neither (rc_augment 0, one strand scored); auto: a k-mer probe on dev decides (stranded domains only)
    orientation: str = "auto"
    batch_size: int = 32
    eval_batch_size: int = 128
    num_workers: int = 0

    def validate(self, prefix: str = "") -> None:
        p = prefix
        require(self.domain in domains.available(), p + "domain", self.domain,
                f"must be an installed domain ({', '.join(domains.available())})")
        require(self.max_length >= 1, p + "max_length", self.max_length, "must be >= 1")
        require(self.truncation in TRUNCATIONS, p + "truncation", self.truncation,
                f"must be one of {', '.join(TRUNCATIONS)}")
        require(0 <= self.rc_augment <= 1, p + "rc_augment", self.rc_augment, "must be in [0, 1]")
        require(self.orientation in ORIENTATIONS, p + "orientation", self.orientation,
                f"must be one of {', '.join(ORIENTATIONS)}")
        check_batching(self, p)


@dataclass
class ClassifyTrainConfig(TrainConfig):
    """TrainConfig plus epochs and early stopping. max_steps 0: max_epochs decides the length of the run."""

    max_steps: int = 0
    max_epochs: int = 30
    # stop after this many validations without improvement of `monitor` (0: never stop early); runs without a
    # time budget only (with max_minutes the budget ends the run, the schedule annealing to its end)
    patience: int = 6
    monitor: str = "val_mcc"  # the metric that picks the best model and drives early stopping
    val_every: int = 0  # validate every val_every steps; 0: val_per_epoch times per pass over the training set
    val_per_epoch: float = 2.0
    # with max_minutes: the model is made narrower (d_model in steps of 16, not below 32), then shallower (n_layer
    # down to 2), until a timed training step says the budget covers this many passes over the training set
    # (0: the model as configured)
    target_epochs: float = 4.0

    def validate(self, prefix: str = "") -> None:
        p = prefix
        # the inherited checks, with the one rule that differs here (0 steps: let max_epochs decide)
        TrainConfig.validate(dataclasses.replace(self, max_steps=max(1, self.max_steps),
                                                 val_every=max(1, self.val_every)), prefix)
        require(self.val_every >= 0, p + "val_every", self.val_every, "must be >= 0 (0: val_per_epoch decides)")
        require(self.max_steps >= 0, p + "max_steps", self.max_steps, "must be >= 0 (0: max_epochs decides)")
        require(self.max_epochs >= 1, p + "max_epochs", self.max_epochs, "must be >= 1")
        require(self.patience >= 0, p + "patience", self.patience, "must be >= 0 (0: no early stopping)")
        require(self.monitor in MONITORS, p + "monitor", self.monitor, f"must be one of {', '.join(MONITORS)}")
        require(self.val_every > 0 or self.val_per_epoch > 0, p + "val_per_epoch", self.val_per_epoch,
                "must be > 0 when val_every is 0")
        require(self.target_epochs >= 0, p + "target_epochs", self.target_epochs, "must be >= 0 (0: off)")


@dataclass
class ClassifyEvalConfig:
    rc_conjoin: bool = True  # final metrics (and predict/eval defaults) average the logits of both strands


@dataclass
class ClassifyJobConfig:
    """`seqssm classify train`: a sequence classifier on a domain's labelled sequences. model.vocab_size is the
    domain tokenizer's (10 ids for DNA) and model.num_classes is set from the training labels."""

    model: ModelConfig = field(default_factory=lambda: ModelConfig(vocab_size=10, head="classify"))
    data: ClassifyDataConfig = field(default_factory=ClassifyDataConfig)
    train: ClassifyTrainConfig = field(default_factory=ClassifyTrainConfig)
    eval: ClassifyEvalConfig = field(default_factory=ClassifyEvalConfig)
    out_dir: str = "runs/classify"

    def validate(self, prefix: str = "") -> None:
        p = prefix
        require(self.model.head == "classify", p + "model.head", self.model.head,
                "a sequence classifier needs 'classify'")
        if self.data.domain not in domains.available():
            return  # data.validate names it
        plugin = domains.load(self.data.domain)
        vocab = plugin.tokenizer().vocab_size
        require(self.model.vocab_size == vocab, p + "model.vocab_size", self.model.vocab_size,
                f"must be {vocab}, the vocabulary of the {plugin.name} tokenizer")
        if not plugin.strands:  # no reverse strand: the strand options must be off
            require(self.data.rc_augment == 0, p + "data.rc_augment", self.data.rc_augment,
                    f"must be 0: domain {plugin.name!r} has no reverse strand")
            require(not self.eval.rc_conjoin, p + "eval.rc_conjoin", self.eval.rc_conjoin,
                    f"must be false: domain {plugin.name!r} has no reverse strand")
            require(not self.model.strand.rc_equivariant, p + "model.strand.rc_equivariant",
                    self.model.strand.rc_equivariant,
                    f"must be false: domain {plugin.name!r} has no reverse strand")


def load_job(config: str | None, overrides=(), train=None, val=None, test=None, out=None) -> ClassifyJobConfig:
    """The job from a YAML or shipped config name (default classify_dna), `--set` overrides and the inputs."""
    inputs = {"data.train": train, "data.val": val, "data.test": test, "out_dir": out}
    return load_job_config(ClassifyJobConfig, config, DEFAULT_CONFIG, overrides, inputs)

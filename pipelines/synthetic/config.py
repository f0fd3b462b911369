"""Typed job configs of `seqssm eval` (pipelines/synthetic/train.py): one schema per synthetic task, with the same
sections (model, task, train, eval, compare). Shipped as configs/eval_<task>.yaml; pipelines/schemas.py maps those
files to these schemas (SCHEMAS)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from seqssm import ModelConfig
from seqssm.config import require

# Synthetic tasks (pipelines/synthetic/tasks.py): one job schema per task, the same sections (model, task, train, eval,
# compare). A task's "length" is what its accuracy is plotted against (tasks.py says what it counts).


LR_SCHEDULES = ("constant", "cosine")


@dataclass
class EvalTrainConfig:
    """Plain Adam training with a length curriculum, stopped by `steps` or the time budget, whichever comes first."""

    steps: int = 100000  # optimizer steps at most (with the default budget, the budget ends training first)
    budget_seconds: float = 180.0  # wall-clock training time per model at most (0: no limit)
    lr: float = 1e-3
    batch_size: int = 8
    grad_clip: float = 1.0  # clip the global gradient norm (0: no clipping)
    seed: int = 0
    curriculum: List[int] = field(default_factory=lambda: [64, 128, 256])  # training lengths, in order
    advance_accuracy: float = 0.95  # next length at this running train accuracy, or after an equal share of the
    # steps or of the budget (0: by the shares only)
    window: int = 20  # steps in the running train accuracy
    threads: int = 1  # torch CPU threads (0: torch's default)
    progress_bar: bool = True
    weight_decay: float = 0.0  # Adam's L2 term. The Mamba paper trains induction heads with none; a public
    # reproduction that kept 0.1 stayed at chance (state-spaces/mamba issue #298)
    lr_schedule: str = "constant"  # constant, or cosine: from lr down to lr / 10 over train.steps
    stop_window: int = 0  # stop on "zero training loss": at the last curriculum length, the last stop_window
    # batches had every scored prediction right and their mean loss below stop_loss (0: never)
    stop_loss: float = 0.005
    checkpoint_seconds: float = 0.0  # > 0: a long run (one model): checkpoint.pt in the run folder this often
    # and when training ends; `--resume RUN` continues it (0: no checkpoints)
    dt_penalty: float = 0.0  # > 0: add this weight times the mean over Mamba (-2) layers, channels and positions of
    # max(0, log(Δ min|A|) - log dt_penalty_floor), the log of each step's slowest decay: it rewards forgetting
    # nothing where nothing needs to be forgotten (selectivity) without touching what the task loss needs
    dt_penalty_floor: float = 1e-8  # no pull below this decay per step (1e-8: a horizon of 10^8 positions)

    def validate(self, prefix: str = "") -> None:
        p = prefix
        require(self.steps >= 1, p + "steps", self.steps, "must be >= 1")
        require(self.budget_seconds >= 0, p + "budget_seconds", self.budget_seconds, "must be >= 0 (0: no limit)")
        require(self.lr > 0, p + "lr", self.lr, "must be > 0")
        require(self.batch_size >= 1, p + "batch_size", self.batch_size, "must be >= 1")
        require(self.grad_clip >= 0, p + "grad_clip", self.grad_clip, "must be >= 0 (0: no clipping)")
        require(len(self.curriculum) >= 1, p + "curriculum", list(self.curriculum), "must list at least one length")
        require(0 <= self.advance_accuracy <= 1, p + "advance_accuracy", self.advance_accuracy, "must be in [0, 1]")
        require(self.window >= 1, p + "window", self.window, "must be >= 1")
        require(self.threads >= 0, p + "threads", self.threads, "must be >= 0 (0: torch's default)")
        require(self.weight_decay >= 0, p + "weight_decay", self.weight_decay, "must be >= 0")
        require(self.lr_schedule in LR_SCHEDULES, p + "lr_schedule", self.lr_schedule,
                f"must be one of {', '.join(LR_SCHEDULES)}")
        require(self.stop_window >= 0, p + "stop_window", self.stop_window, "must be >= 0 (0: never)")
        require(self.stop_loss > 0, p + "stop_loss", self.stop_loss, "must be > 0")
        require(self.dt_penalty >= 0, p + "dt_penalty", self.dt_penalty, "must be >= 0 (0: none)")
        require(0 < self.dt_penalty_floor < 1, p + "dt_penalty_floor", self.dt_penalty_floor, "must be in (0, 1)")
        require(self.checkpoint_seconds >= 0, p + "checkpoint_seconds", self.checkpoint_seconds,
                "must be >= 0 (0: no checkpoints)")


@dataclass
class EvalLengthsConfig:
    """Scoring after training: fresh samples (a seed apart from training's) at each length."""

    lengths: List[int] = field(default_factory=lambda: [64, 128, 256, 512, 1024])
    samples: int = 64  # sequences scored per length
    batch_size: int = 8
    segment: int = 8192  # SSM stacks stream longer inputs in segments, carrying the state (bounds memory)
    max_seconds: float = 300.0  # skip a length whose time, extrapolated from the previous one, exceeds this

    def validate(self, prefix: str = "") -> None:
        p = prefix
        require(len(self.lengths) >= 1, p + "lengths", list(self.lengths), "must list at least one length")
        require(self.samples >= 1, p + "samples", self.samples, "must be >= 1")
        require(self.batch_size >= 1, p + "batch_size", self.batch_size, "must be >= 1")
        require(self.segment >= 1, p + "segment", self.segment, "must be >= 1")
        require(self.max_seconds > 0, p + "max_seconds", self.max_seconds, "must be > 0")


@dataclass
class CompareConfig:
    """`--compare`: train and score one model per mixer name, each at about the parameter count of model.layer's."""

    layers: List[str] = field(default_factory=list)  # empty: model.layer only
    match_params: bool = True  # pick each layer's d_model so its parameter count is closest to model.layer's

    def validate(self, prefix: str = "") -> None:
        require(len(set(self.layers)) == len(self.layers), prefix + "layers", list(self.layers), "must be distinct")


@dataclass
class SelectiveCopyingTask:
    n_data: int = 16  # data tokens to remember (paper: 16)
    vocab: int = 16  # data alphabet (paper: 16); ids 0 noise, 1 marker, 2 .. vocab + 1 data

    @property
    def n_tokens(self) -> int:
        return self.vocab + 2

    def min_length(self) -> int:
        return self.n_data

    def validate(self, prefix: str = "") -> None:
        require(self.n_data >= 1, prefix + "n_data", self.n_data, "must be >= 1")
        require(self.vocab >= 2, prefix + "vocab", self.vocab, "must be >= 2")


@dataclass
class InductionHeadsTask:
    vocab: int = 16  # ordinary tokens (paper: 16); id vocab is the trigger
    trigger_within: int = 0  # > 0: the first trigger lies in the first trigger_within positions (the answer
    #                          about a whole sequence back, as in the public reproduction); 0: anywhere

    @property
    def n_tokens(self) -> int:
        return self.vocab + 1

    def min_length(self) -> int:
        return 3

    def validate(self, prefix: str = "") -> None:
        require(self.vocab >= 2, prefix + "vocab", self.vocab, "must be >= 2")
        require(self.trigger_within >= 0, prefix + "trigger_within", self.trigger_within, "must be >= 0 (0: anywhere)")


@dataclass
class CopyTask:
    vocab: int = 16  # string alphabet; id vocab is the separator

    @property
    def n_tokens(self) -> int:
        return self.vocab + 1

    def min_length(self) -> int:
        return 1

    def validate(self, prefix: str = "") -> None:
        require(self.vocab >= 2, prefix + "vocab", self.vocab, "must be >= 2")


@dataclass
class PhonebookTask:
    name_length: int = 3  # letters per name
    name_alphabet: int = 26  # letters; names are distinct within a book, so entries <= name_alphabet ** name_length
    number_length: int = 4  # digits per number

    @property
    def n_tokens(self) -> int:
        return 10 + self.name_alphabet + 3  # digits, letters, ':' ';' '?'

    def min_length(self) -> int:
        return 1

    def validate(self, prefix: str = "") -> None:
        p = prefix
        require(self.name_length >= 1, p + "name_length", self.name_length, "must be >= 1")
        require(self.name_alphabet >= 2, p + "name_alphabet", self.name_alphabet, "must be >= 2")
        require(self.number_length >= 1, p + "number_length", self.number_length, "must be >= 1")


def _eval_model(vocab_size: int):
    return lambda: ModelConfig(d_model=64, n_layer=2, vocab_size=vocab_size)


@dataclass
class EvalJobConfig:
    """The sections every `seqssm eval TASK` job has; a subclass per task adds `task` and the task's name."""

    model: ModelConfig = field(default_factory=_eval_model(18))
    train: EvalTrainConfig = field(default_factory=EvalTrainConfig)
    eval: EvalLengthsConfig = field(default_factory=EvalLengthsConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    out_dir: str = "runs/eval"

    TASK = ""  # the task's name on the command line (a class attribute, not a config key)

    def validate(self, prefix: str = "") -> None:
        p = prefix
        task = getattr(self, "task")
        task.validate(p + "task.")  # first: the token count below is derived from the task's values
        require(self.model.head == "lm", p + "model.head", self.model.head, "the synthetic tasks need 'lm'")
        require(self.model.vocab_size == task.n_tokens, p + "model.vocab_size", self.model.vocab_size,
                f"must be {task.n_tokens}, the token count of this task's settings")
        require(not (self.train.checkpoint_seconds > 0 and self.compare.layers), p + "compare.layers",
                list(self.compare.layers), "a long run (train.checkpoint_seconds > 0) trains one model: leave it empty")
        low = task.min_length()
        for key, lengths in (("train.curriculum", self.train.curriculum), ("eval.lengths", self.eval.lengths)):
            bad = [x for x in lengths if x < low]
            require(not bad, p + key, list(lengths), f"every length must be >= {low} for this task")


@dataclass
class SelectiveCopyingJob(EvalJobConfig):
    TASK = "selective-copying"
    task: SelectiveCopyingTask = field(default_factory=SelectiveCopyingTask)
    out_dir: str = "runs/eval_selective_copying"


@dataclass
class InductionHeadsJob(EvalJobConfig):
    TASK = "induction-heads"
    model: ModelConfig = field(default_factory=_eval_model(17))
    task: InductionHeadsTask = field(default_factory=InductionHeadsTask)
    out_dir: str = "runs/eval_induction_heads"


@dataclass
class CopyJob(EvalJobConfig):
    TASK = "copy"
    model: ModelConfig = field(default_factory=_eval_model(17))
    task: CopyTask = field(default_factory=CopyTask)
    out_dir: str = "runs/eval_copy"


@dataclass
class PhonebookJob(EvalJobConfig):
    TASK = "phonebook"
    model: ModelConfig = field(default_factory=_eval_model(39))
    task: PhonebookTask = field(default_factory=PhonebookTask)
    out_dir: str = "runs/eval_phonebook"


EVAL_JOBS = {cls.TASK: cls for cls in (SelectiveCopyingJob, InductionHeadsJob, CopyJob, PhonebookJob)}

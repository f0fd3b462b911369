"""`seqssm pretrain`: a causal language model on long sequences — a genome (FASTA through pyfaidx, nucleotide
tokens), mu-law crops of audio files, or any file of bytes — with a length warm-up, segmented backpropagation
through time, a held-out evaluation in bits per token, and crash-safe resume.

Dimension names: b batch · l window length (the stage's seq_len) · s segment length · v vocabulary.

Data: the corpus of the domain plugin that reads data.source (seqssm.domains.by_source). Every record is split:
its last `data.holdout` is held out, training windows come from the rest. The windows of optimizer step t are drawn from a generator seeded by (train.seed, t), so the data position of a run
is its step count: a resumed run reads exactly the windows the uninterrupted one would have.

Schedule (HyenaDNA, Nguyen et al. 2023, section 3.2): stages of (seq_len, steps); the batch size of a stage is
tokens_per_batch // seq_len, so each step sees about the same number of tokens while the length grows.

Segments: with schedule.segment_len s < l, a window is fed in segments with the recurrent state carried forward
(the streaming forward of the core, exactly one pass), so memory is bounded by one segment whatever l is
(seqssm.tbptt). schedule.segment_backprop exact gives the gradients of one full pass (each segment is run twice);
truncated is the classic truncated BPTT (the gradient is cut at each boundary; one forward).

Checkpoints. Every train.checkpoint_every steps and at the end, Lightning's full checkpoint (weights, optimizer,
scheduler, loop counters) is written to a temporary file, fsynced, and renamed to checkpoints/step-NNNNNNNN.ckpt;
the newest train.keep_checkpoints are kept. `--resume` continues from the newest checkpoint that loads; a corrupt
or partial one is skipped with a warning. With deterministic CPU settings a run killed at any point and resumed
ends with the same weights as one that never stopped.

Evaluation: the held-out part of every record, streamed in segments with the state carried, each token predicted
from everything before it (warmed up on data.eval_context tokens before the cut, not scored). Bits per token
(per nucleotide for FASTA) = nats / ln 2.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

import seqssm
from seqssm import domains
from seqssm.config import validate_tree
from seqssm.domains.corpus import Corpus
from seqssm.model import set_activation_checkpointing
from seqssm.pipelines.jobconfig import UsageError
from seqssm.pipelines.pretrain.checkpoints import check_same_model, latest_checkpoint, write_checkpoint
from seqssm.pipelines.pretrain.config import PretrainJobConfig, unit_of
from seqssm.pipelines.pretrain.heldout import mask_tokens, score_heldout
from seqssm.pipelines.rundir import atomic_write_json, publish, staging_dir
from seqssm.pipelines.training import (
    LN2, ReserveAfterTraining, TimeBudget, init_model, make_trainer, optimizers, plot_curves, training_seconds_left,
)
from seqssm.tbptt import segmented_backward

CKPT_DIR = "checkpoints"
ARTIFACTS = ("model", "config.yaml", "metrics.json", "history.json", "curves.png")
class PretrainTask(L.LightningModule):
    """Causal LM with manual optimisation: TBPTT segments, the step-indexed data, periodic checkpoints."""

    def __init__(self, model, job: PretrainJobConfig, corpus: Corpus, ckpt_dir: Path, job_start: float | None = None):
        super().__init__()
        self.model, self.job, self.corpus, self.ckpt_dir = model, job, corpus, ckpt_dir
        self.automatic_optimization = False
        self.budget = TimeBudget(job.train.max_minutes)
        self.history: dict[str, list] = {"train": [], "val": []}
        self.tokens_seen = 0
        self.last_checkpoint = -1
        # train.max_minutes covers the job: training stops early enough for the final held-out scoring
        self.job_start = time.perf_counter() if job_start is None else job_start
        self.setup_seconds = 0.0
        self.reserve = ReserveAfterTraining(heldout_size(corpus, job), fixed=15.0)
        self._t0, self._step_tokens, self._steps_seen, self._train_time, self._train_tokens = 0.0, 0, 0, 0.0, 0

    def on_train_start(self):
        self.setup_seconds = time.perf_counter() - self.job_start  # reading the data, building the model

    def on_train_batch_start(self, batch, batch_idx):
        self._t0 = time.perf_counter()

    def training_step(self, batch, batch_idx):
        job, step = self.job, self.global_step
        stage = job.schedule.stage_at(step)
        b, l = job.schedule.batch_size(stage), stage.seq_len
        d = job.data
        ids = self.corpus.train_windows(step, job.train.seed, b, l, d.max_n_fraction, d.rc_augment,
                                        rank=self.global_rank)
        ids = ids.to(self.device)
        seg = job.schedule.segment_len or l
        opt, sched = self.optimizers(), self.lr_schedulers()
        opt.zero_grad()
        if job.objective.kind == "masked":
            mean = self._masked_step(ids[:, :l], step)
            return self._finish_step(opt, sched, step, b, l, mean)
        inputs, targets = ids[:, :-1], ids[:, 1:]  # (b, l) each
        if seg >= l:
            logits = self.model(inputs)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
            self.manual_backward(loss)
            return self._finish_step(opt, sched, step, b, l, float(loss.detach()))
        mean = segmented_backward(self.model, inputs, targets, seg, job.schedule.segment_backprop,
                                  backward=self.manual_backward)
        return self._finish_step(opt, sched, step, b, l, mean)

    def _masked_step(self, ids, step: int) -> float:
        gen = torch.Generator().manual_seed(int(np.random.default_rng([self.job.train.seed, step,
                                                                       self.global_rank]).integers(2**62)))
        corrupted, chosen = mask_tokens(ids.cpu(), self.job.objective.mask_fraction, gen)
        if not chosen.any():  # a tiny batch can draw no position: score one rather than divide by zero
            chosen[0, 0] = True
        corrupted, chosen = corrupted.to(self.device), chosen.to(self.device)
        logits = self.model(corrupted)
        loss = torch.nn.functional.cross_entropy(logits[chosen], ids[chosen])
        self.manual_backward(loss)
        return float(loss.detach())

    def _finish_step(self, opt, sched, step: int, b: int, l: int, mean: float) -> None:
        job = self.job
        if job.train.grad_clip > 0:
            self.clip_gradients(opt, gradient_clip_val=job.train.grad_clip, gradient_clip_algorithm="norm")
        opt.step()
        sched.step()
        self.tokens_seen += b * l
        self._step_tokens = b * l
        self.history["train"].append([step + 1, mean])
        world = self.trainer.world_size  # every process trains on its own windows of the same shape
        self.log_dict({"train_loss": mean, "train_bits": mean / LN2, "seq_len": float(l), "batch_size": float(b),
                       "tokens_per_step": float(b * l * world), "lr": opt.param_groups[0]["lr"]},
                      prog_bar=True, sync_dist=world > 1)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        step, job = self.global_step, self.job
        self._steps_seen += 1
        if self._steps_seen > 1:  # the first step pays for start-up (allocation, compilation): not a rate
            self._train_time += time.perf_counter() - self._t0
            self._train_tokens += self._step_tokens
            self.reserve.train_unit_seconds = self._train_time / self._train_tokens
        if (step % job.train.val_every == 0 or step == job.schedule.total_steps) and self.global_rank == 0:
            t0 = time.perf_counter()
            res = score_heldout(self.model, self.corpus, job)
            read = min(job.data.eval_max_tokens or self.reserve.units, self.reserve.units)
            self.reserve.val_unit_seconds = (time.perf_counter() - t0) / max(1, read)
            self.history["val"].append([step, res["nats_per_token"]])
            self.log("val_bits", res["bits_per_token"], prog_bar=True, rank_zero_only=True)
        if step % job.train.checkpoint_every == 0 or step == job.schedule.total_steps:
            write_checkpoint(self.trainer, self.ckpt_dir, step, job.train.keep_checkpoints)
            self.last_checkpoint = step
        if self.budget.seconds:  # process 0 measures the scoring; every process follows its clock (same lr, same stop)
            left = training_seconds_left(self.budget, self._elapsed(), self.reserve) if self.global_rank == 0 else 0.0
            left = float(self.trainer.strategy.broadcast(left))
            self.budget.stop_in(left)
            if left <= 0:
                self.trainer.should_stop = True

    def _elapsed(self) -> float:
        """Seconds of the budget spent: training so far (Lightning's timer, which a resumed run restores from the
        checkpoint) plus this process's set-up."""
        timer = next((c for c in self.trainer.callbacks if isinstance(c, Timer)), None)
        if timer is None:
            return time.perf_counter() - self.job_start
        return timer.time_elapsed("train") + self.setup_seconds

    def on_train_end(self):
        # a run stopped by train.max_minutes between checkpoints still ends with one
        if self.global_step and self.last_checkpoint != self.global_step:
            write_checkpoint(self.trainer, self.ckpt_dir, self.global_step, self.job.train.keep_checkpoints)
            self.last_checkpoint = self.global_step

    def configure_optimizers(self):
        return optimizers(self.model, self.job.train, self.job.schedule.total_steps, self.budget)

    def on_save_checkpoint(self, checkpoint):
        checkpoint["seqssm_history"] = self.history
        checkpoint["seqssm_model_config"] = dataclasses.asdict(self.job.model)

    def on_load_checkpoint(self, checkpoint):
        self.history = checkpoint.get("seqssm_history", self.history)


class _Steps(torch.utils.data.Dataset):
    """A placeholder loader of `n` items: the task draws its windows from the step count, not from here."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def _data_name(data, short: bool = False) -> str:
    """The data of a run in its metrics and plot title: the file, or the genomes with their weights."""
    if data.genomes:
        return " + ".join(f"{g.name} ({g.weight:g})" if short else f"{g.name}={Path(g.path).resolve()} ({g.weight:g})"
                          for g in data.genomes)
    return Path(data.path).name if short else str(Path(data.path).resolve())


def heldout_size(corpus: Corpus, job: PretrainJobConfig) -> int:
    """Tokens the final held-out scoring reads: every held-out token, plus (causal) each record's warm-up."""
    context = job.data.eval_context if job.objective.kind == "causal" else 0
    return sum(n - cut + min(context, cut) for _, n, cut in corpus.records)


def pretrain(job: PretrainJobConfig, resume: bool = False) -> dict:
    """Run (or resume) the job; writes checkpoints as it goes and the run folder's artifacts at the end."""
    job_start = time.perf_counter()  # train.max_minutes covers the job from here (the final scoring included)
    validate_tree(job)
    if not job.data.path and not job.data.genomes:
        raise UsageError("data.path is empty: pass --data FILE (or --set data.path=FILE, or list data.genomes)")
    t, total = job.train, job.schedule.total_steps
    corpus = domains.by_source(job.data.source).corpus(job.data.path, job.data.holdout, job.data)
    corpus.check_window(max(st.seq_len for st in job.schedule.stages))
    out = Path(job.out_dir)
    ckpt_dir = out / CKPT_DIR
    for stale in ckpt_dir.glob(".tmp-*.ckpt"):  # a write cut short by a crash never became a checkpoint
        stale.unlink()
    start = latest_checkpoint(ckpt_dir) if resume else None
    if start is not None:
        check_same_model(start, job.model)
    if not resume and ckpt_dir.exists() and any(ckpt_dir.glob("step-*.ckpt")):
        raise UsageError(f"--out {out}: holds checkpoints of an earlier run; pass --resume to continue it")
    if t.threads:
        torch.set_num_threads(t.threads)
    L.seed_everything(t.seed, workers=True, verbose=False)
    model = seqssm.build_model(job.model)
    init_model(model, t.init_from)
    if t.activation_checkpointing:
        set_activation_checkpointing(model)
    task = PretrainTask(model, job, corpus, ckpt_dir, job_start)
    out.mkdir(parents=True, exist_ok=True)
    loggers = [CSVLogger(save_dir=str(out), name="", version="logs")]
    if t.tensorboard:
        try:
            loggers.append(TensorBoardLogger(save_dir=str(out / "logs"), name="", version="tensorboard"))
        except ModuleNotFoundError as err:
            raise UsageError(f"train.tensorboard: {err} (pip install tensorboardX, or set train.tensorboard=false)")
    trainer = make_trainer(
        accelerator=t.accelerator, devices=t.devices, precision=t.precision, max_steps=total, max_epochs=-1,
        log_every_n_steps=min(t.log_every, total), logger=loggers,
        enable_checkpointing=False, enable_progress_bar=t.progress_bar, enable_model_summary=t.progress_bar,
        deterministic="warn" if t.deterministic else False, default_root_dir=str(out), num_sanity_val_steps=0,
        limit_val_batches=0, **task.budget.trainer_kwargs(),
    )
    t0 = time.perf_counter()
    loader = torch.utils.data.DataLoader(_Steps(total), batch_size=None)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(task, train_dataloaders=loader, ckpt_path=str(start) if start else None)
    seconds = time.perf_counter() - t0
    if trainer.global_rank != 0:  # under DDP the other processes stop here; process 0 scores and publishes
        return {}
    model = model.cpu()
    t_score = time.perf_counter()
    final = score_heldout(model, corpus, job, final=True)
    t_score = time.perf_counter() - t_score
    metrics = {
        "data": _data_name(job.data), "source": job.data.source, "objective": job.objective.kind,
        "steps": int(trainer.global_step),
        "resumed_from": str(start) if start else None, "seconds_this_process": round(seconds, 1),
        "parameters": sum(p.numel() for p in model.parameters()), "init_from": t.init_from or None,
        "processes": trainer.world_size,
        "heldout_tokens": final["tokens"],
        "heldout_nats_per_token": final["nats_per_token"], "heldout_bits_per_token": final["bits_per_token"],
        "timing": {"final_scoring": round(t_score, 3), "reserved_after_training": round(task.reserve.seconds(), 3),
                   "heldout_tokens_read": task.reserve.units},
    }
    with staging_dir(out) as stage:
        model.save_pretrained(stage / "model", extra_files=corpus.extra_files())
        seqssm.save_config(job, stage / "config.yaml")
        atomic_write_json(stage / "metrics.json", metrics)
        atomic_write_json(stage / "history.json", task.history)
        plot_curves(task.history, stage / "curves.png", f"{_data_name(job.data, short=True)}: pretraining",
                    unit=unit_of(job.data.source))
        publish(stage, out, ARTIFACTS)
    metrics["timing"]["job"] = round(time.perf_counter() - job_start, 3)  # this process, files written
    atomic_write_json(out / "metrics.json", metrics)
    return metrics

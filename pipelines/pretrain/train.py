"""`seqssm pretrain`: a causal language model on long sequences — a genome (FASTA through pyfaidx, nucleotide
tokens), mu-law crops of audio files, or any file of bytes — with a length warm-up, segmented backpropagation
through time, a held-out evaluation in bits per token, and crash-safe resume.

Dimension names: b batch · l window length (the stage's seq_len) · s segment length · v vocabulary.

Data. Every record is split: its last `data.holdout` is held out, training windows come from the rest. The
windows of optimizer step t are drawn from a generator seeded by (train.seed, t), so the data position of a run
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

import argparse
import dataclasses
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from seqssm.pipelines import jobcli
from seqssm.pipelines.config import PretrainJobConfig, UsageError, validate_tree
from seqssm.pipelines.runio import atomic_write_json, publish, staging_dir
from seqssm.tbptt import segmented_backward

LN2 = math.log(2.0)
DEFAULT_CONFIG = "pretrain_ecoli"
CKPT_DIR = "checkpoints"
ARTIFACTS = ("model", "config.yaml", "metrics.json", "history.json", "curves.png")
UNITS = {"fasta": "nucleotide", "bytes": "byte", "audio": "sample"}
N_ID, MASK_ID, BASE_IDS = 9, 4, (5, 6, 7, 8)  # the NucleotideTokenizer's fixed ids (checked in the tests)


def mask_tokens(ids: torch.Tensor, fraction: float, generator: torch.Generator):
    """BERT masking (Devlin et al. 2019, section 3.1; Caduceus's MLM): ids (b, l) -> (corrupted ids, chosen (b, l)
    bool). Chosen positions become [MASK] (80%), a random base (10%) or stay (10%)."""
    u = torch.rand(ids.shape, generator=generator)
    chosen = u < fraction
    v = torch.rand(ids.shape, generator=generator)
    random_base = torch.tensor(BASE_IDS)[torch.randint(4, ids.shape, generator=generator)]
    out = torch.where(chosen & (v < 0.8), torch.full_like(ids, MASK_ID), ids)
    out = torch.where(chosen & (v >= 0.8) & (v < 0.9), random_base, out)
    return out, chosen


# ----------------------------------------------------------------------------------------------------- data


class Corpus:
    """Token access to records, each split at `cut` (the held-out tail after it): the records of a FASTA
    (pyfaidx), the files of an audio folder (quantised once, kept in memory as uint8/uint16), or one file of
    bytes (memory-mapped)."""

    def __init__(self, source: str, path: str, holdout: float, sample_rate: int = 16000, bits: int = 8):
        self.source, self.path = source, Path(path)
        if not (self.path.is_file() or (source == "audio" and self.path.is_dir())):
            raise UsageError(f"--data {path}: no such {'file or folder' if source == 'audio' else 'file'}")
        if source == "fasta":
            from seqssm.domains.dna import IndexedGenome, NucleotideTokenizer

            self.genome, self.tokenizer = IndexedGenome(self.path), NucleotideTokenizer()
            lengths = self.genome.lengths
            if not lengths or not sum(lengths.values()):
                raise UsageError(f"{self.path}: the FASTA has no sequence")
        elif source == "audio":
            from seqssm.domains.audio import MuLawQuantizer

            self.quantizer = MuLawQuantizer(bits=bits, scaling="minmax", bins="sashimi")  # `seqssm audio`'s own
            self.sample_rate = sample_rate
            self.clips = _quantised_audio(self.path, sample_rate, self.quantizer)
            lengths = {name: len(ids) for name, ids in self.clips.items()}
        else:
            if self.path.stat().st_size == 0:
                raise UsageError(f"{self.path}: the file is empty")
            self.bytes = np.memmap(self.path, dtype=np.uint8, mode="r")
            lengths = {self.path.name: len(self.bytes)}
        self.records = [(name, n, n - int(n * holdout)) for name, n in lengths.items()]

    def tokens(self, name: str, start: int, end: int, strand: str = "+") -> np.ndarray:
        if self.source == "fasta":
            return np.asarray(self.tokenizer.encode(self.genome.fetch(name, start, end, strand)), dtype=np.int64)
        if self.source == "audio":
            return self.clips[name][start:end].astype(np.int64)
        return np.asarray(self.bytes[start:end], dtype=np.int64)

    def check_window(self, length: int) -> None:
        """One-line error, before any compute, when no record has room for a training window of `length`."""
        longest = max(cut for _, _, cut in self.records)
        if longest <= length:
            raise UsageError(f"{self.path}: the longest training part of a record has {longest:,} tokens, not enough "
                             f"for a window of schedule seq_len {length:,} (+1 target); shorten the stage or add data")

    def train_windows(self, step: int, seed: int, batch: int, length: int, max_n_fraction: float,
                      rc_augment: float, rank: int = 0) -> torch.Tensor:
        """(b, l + 1) token ids for optimizer step `step` on process `rank`: the same for the same (seed, step,
        rank), and different ranks draw different windows (each its own shard of the stream)."""
        usable = [(name, cut - length) for name, _, cut in self.records if cut > length]
        if not usable:
            raise UsageError(f"{self.path}: no record has more than {length} training tokens")
        names, spans = zip(*usable)
        weights = np.array(spans, dtype=np.float64) / sum(spans)
        rng = np.random.default_rng([seed, step, rank])
        rows = []
        n_id = N_ID if self.source == "fasta" else None
        for _ in range(batch):
            for _attempt in range(50):  # skip windows that are mostly assembly gaps (N)
                i = int(rng.choice(len(names), p=weights))
                start = int(rng.integers(0, spans[i] + 1))
                strand = "-" if self.source == "fasta" and rng.random() < rc_augment else "+"
                row = self.tokens(names[i], start, start + length + 1, strand)
                if n_id is None or (row == n_id).mean() <= max_n_fraction:
                    break
            rows.append(row)
        return torch.from_numpy(np.stack(rows))

    def heldout(self, context: int):
        """(name, context ids, held-out ids) of every record."""
        for name, n, cut in self.records:
            empty = np.zeros(0, np.int64)
            ctx = self.tokens(name, max(0, cut - context), cut) if context and cut else empty
            yield name, ctx, self.tokens(name, cut, n) if cut < n else empty


def _quantised_audio(path: Path, sample_rate: int, quantizer) -> dict[str, np.ndarray]:
    """name -> mu-law ids (l,) of every audio file (a folder's, sorted by name, or the one file)."""
    from tqdm import tqdm

    from seqssm.domains.audio.io import list_audio_files, load_audio

    files = list_audio_files(path) if path.is_dir() else [path]
    dtype = np.uint8 if quantizer.bits <= 8 else np.uint16
    clips = {}
    for f in tqdm(files, desc="decoding audio", unit="file", disable=len(files) < 20):
        clips[f.name] = quantizer.encode(load_audio(f, sample_rate)[0]).numpy().astype(dtype)
    return clips


@torch.no_grad()
def heldout_bits(model, corpus: Corpus, context: int, segment: int, max_tokens: int = 0) -> dict:
    """Nats and bits per token of the held-out parts, streamed with the recurrent state carried."""
    model.eval()
    device = next(model.parameters()).device
    nll, count = 0.0, 0
    for _, ctx, tail in corpus.heldout(context):
        if max_tokens:
            tail = tail[: max(0, max_tokens - count)]
        if len(tail) == 0:
            continue
        state, prev = None, None
        if len(ctx):
            logits, state = model(torch.from_numpy(ctx)[None].to(device), return_state=True)
            prev = logits[0, -1:]
        for s0 in range(0, len(tail), segment):
            seg = torch.from_numpy(tail[s0:s0 + segment])[None].to(device)
            logits, state = model(seg, state=state, return_state=True)
            preds = logits[0] if prev is None else torch.cat([prev, logits[0]])
            targets = seg[0] if prev is not None else seg[0, 1:]
            nll += float(torch.nn.functional.cross_entropy(preds[:len(targets)], targets, reduction="sum"))
            count += len(targets)
            prev = logits[0, -1:]
        if max_tokens and count >= max_tokens:
            break
    model.train()
    if count == 0:
        raise UsageError(f"{corpus.path}: the held-out part has no tokens to score")
    return {"nats_per_token": nll / count, "bits_per_token": nll / count / LN2, "tokens": count}


@torch.no_grad()
def heldout_masked_bits(model, corpus: Corpus, window: int, fraction: float, max_tokens: int = 0,
                        seed: int = 0) -> dict:
    """Bits per masked token on non-overlapping windows of the held-out parts, with a fixed masking seed."""
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    nll, count, seen = 0.0, 0, 0
    for _, _, tail in corpus.heldout(0):
        for s0 in range(0, len(tail) - window + 1, window):
            if max_tokens and seen >= max_tokens:
                break
            ids = torch.from_numpy(tail[s0:s0 + window])[None]
            corrupted, chosen = mask_tokens(ids, fraction, gen)
            if chosen.any():
                ids, corrupted, chosen = ids.to(device), corrupted.to(device), chosen.to(device)
                logits = model(corrupted)
                nll += float(torch.nn.functional.cross_entropy(logits[chosen], ids[chosen], reduction="sum"))
                count += int(chosen.sum())
            seen += window
    model.train()
    if count == 0:
        raise UsageError(f"{corpus.path}: the held-out part has no window of {window} tokens to score")
    return {"nats_per_token": nll / count, "bits_per_token": nll / count / LN2, "tokens": count}


def score_heldout(model, corpus: Corpus, job, final: bool = False) -> dict:
    """The objective's held-out score: bits per token (causal) or per masked token (masked)."""
    d = job.data
    limit = 0 if final else d.eval_max_tokens
    if job.objective.kind == "masked":
        window = job.schedule.stages[-1].seq_len
        return heldout_masked_bits(model, corpus, window, job.objective.mask_fraction, limit, job.train.seed)
    return heldout_bits(model, corpus, d.eval_context, d.eval_segment, limit)


# ---------------------------------------------------------------------------------------------- checkpoints


def write_checkpoint(trainer, folder: Path, step: int, keep: int) -> Path:
    """trainer.save_checkpoint to a temporary file, fsync, rename into place; then drop all but the newest.
    Every process calls it (saving is collective); process 0 writes, renames and cleans up."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:08d}.ckpt"
    tmp = folder / f".tmp-{final.name}"
    trainer.save_checkpoint(str(tmp))
    if trainer.global_rank != 0:
        trainer.strategy.barrier()
        return final
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)
    for old in sorted(folder.glob("step-*.ckpt"))[:-keep]:
        old.unlink()
    trainer.strategy.barrier()
    return final


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint in `folder` that loads; corrupt or partial ones are skipped with a warning."""
    for path in sorted(folder.glob("step-*.ckpt"), reverse=True):
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
            if "state_dict" in ckpt and "global_step" in ckpt:
                return path
            reason = "keys missing"
        except Exception as err:  # a truncated zip, garbage bytes: torch raises several types
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        warnings.warn(f"{path}: unreadable checkpoint ({reason}); trying an older one", stacklevel=2)
    return None


def check_same_model(path: Path, model_cfg) -> None:
    """One-line error when the checkpoint at `path` was written for another model config (before any compute)."""
    saved = torch.load(path, map_location="cpu", weights_only=False).get("seqssm_model_config")
    if saved is None:
        return  # written before configs were stored: Lightning's own state-dict check still applies
    here = dataclasses.asdict(model_cfg)
    diff = [k for k in here if saved.get(k) != here[k]] + sorted(set(saved) - set(here))
    if diff:
        k = diff[0]
        raise UsageError(f"{path}: a checkpoint of another model config (model.{k} is {saved.get(k)!r} there, "
                         f"{here.get(k)!r} here); resume with the killed run's --config and --set, or use a new --out")


# ------------------------------------------------------------------------------------------------- training


def _task_class():
    import lightning as L

    from seqssm.pipelines.jobcli import TimeBudget

    class PretrainTask(L.LightningModule):
        """Causal LM with manual optimisation: TBPTT segments, the step-indexed data, periodic checkpoints."""

        def __init__(self, model, job: PretrainJobConfig, corpus: Corpus, ckpt_dir: Path):
            super().__init__()
            self.model, self.job, self.corpus, self.ckpt_dir = model, job, corpus, ckpt_dir
            self.automatic_optimization = False
            self.budget = TimeBudget(job.train.max_minutes)
            self.history: dict[str, list] = {"train": [], "val": []}
            self.tokens_seen = 0
            self.last_checkpoint = -1

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
            self.history["train"].append([step + 1, mean])
            world = self.trainer.world_size  # every process trains on its own windows of the same shape
            self.log_dict({"train_loss": mean, "train_bits": mean / LN2, "seq_len": float(l), "batch_size": float(b),
                           "tokens_per_step": float(b * l * world), "lr": opt.param_groups[0]["lr"]},
                          prog_bar=True, sync_dist=world > 1)

        def on_train_batch_end(self, outputs, batch, batch_idx):
            step, job = self.global_step, self.job
            if (step % job.train.val_every == 0 or step == job.schedule.total_steps) and self.global_rank == 0:
                res = score_heldout(self.model, self.corpus, job)
                self.history["val"].append([step, res["nats_per_token"]])
                self.log("val_bits", res["bits_per_token"], prog_bar=True, rank_zero_only=True)
            if step % job.train.checkpoint_every == 0 or step == job.schedule.total_steps:
                write_checkpoint(self.trainer, self.ckpt_dir, step, job.train.keep_checkpoints)
                self.last_checkpoint = step

        def on_train_end(self):
            # a run stopped by train.max_minutes between checkpoints still ends with one
            if self.global_step and self.last_checkpoint != self.global_step:
                write_checkpoint(self.trainer, self.ckpt_dir, self.global_step, self.job.train.keep_checkpoints)
                self.last_checkpoint = self.global_step

        def configure_optimizers(self):
            return jobcli.optimizers(self.model, self.job.train, self.job.schedule.total_steps, self.budget)

        def on_save_checkpoint(self, checkpoint):
            checkpoint["seqssm_history"] = self.history
            checkpoint["seqssm_model_config"] = dataclasses.asdict(self.job.model)

        def on_load_checkpoint(self, checkpoint):
            self.history = checkpoint.get("seqssm_history", self.history)

    return PretrainTask


class _Steps(torch.utils.data.Dataset):
    """A placeholder loader of `n` items: the task draws its windows from the step count, not from here."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def pretrain(job: PretrainJobConfig, resume: bool = False) -> dict:
    """Run (or resume) the job; writes checkpoints as it goes and the run folder's artifacts at the end."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    import seqssm
    from seqssm.pipelines.lm import _plot_curves

    validate_tree(job)
    if not job.data.path:
        raise UsageError("data.path is empty: pass --data FILE (or --set data.path=FILE)")
    t, total = job.train, job.schedule.total_steps
    corpus = Corpus(job.data.source, job.data.path, job.data.holdout, job.data.sample_rate, job.data.bits)
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
    jobcli.init_model(model, t.init_from)
    if t.activation_checkpointing:
        from seqssm.model import set_activation_checkpointing

        set_activation_checkpointing(model)
    task = _task_class()(model, job, corpus, ckpt_dir)
    out.mkdir(parents=True, exist_ok=True)
    loggers = [CSVLogger(save_dir=str(out), name="", version="logs")]
    if t.tensorboard:
        try:
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(save_dir=str(out / "logs"), name="", version="tensorboard"))
        except ModuleNotFoundError as err:
            raise UsageError(f"train.tensorboard: {err} (pip install tensorboardX, or set train.tensorboard=false)")
    trainer = L.Trainer(
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
    final = score_heldout(model, corpus, job, final=True)
    metrics = {
        "data": str(Path(job.data.path).resolve()), "source": job.data.source, "objective": job.objective.kind,
        "steps": int(trainer.global_step),
        "resumed_from": str(start) if start else None, "seconds_this_process": round(seconds, 1),
        "parameters": sum(p.numel() for p in model.parameters()), "init_from": t.init_from or None,
        "processes": trainer.world_size,
        "heldout_tokens": final["tokens"],
        "heldout_nats_per_token": final["nats_per_token"], "heldout_bits_per_token": final["bits_per_token"],
    }
    with staging_dir(out) as stage:
        extra = {}
        if job.data.source == "fasta":
            extra["tokenizer.json"] = corpus.tokenizer.to_json()
        elif job.data.source == "audio":
            q = {**corpus.quantizer.config(), "sample_rate": corpus.sample_rate}
            extra["quantizer.json"] = json.dumps(q, indent=2)
        model.save_pretrained(stage / "model", extra_files=extra)
        seqssm.save_config(job, stage / "config.yaml")
        atomic_write_json(stage / "metrics.json", metrics)
        atomic_write_json(stage / "history.json", task.history)
        _plot_curves(task.history, stage / "curves.png", f"{Path(job.data.path).name}: pretraining",
                     unit=UNITS[job.data.source])
        publish(stage, out, ARTIFACTS)
    return metrics


# ---------------------------------------------------------------------------------------------- command line


def load_job(config: str | None, overrides=(), data=None, out=None) -> PretrainJobConfig:
    return jobcli.load_job(PretrainJobConfig, config, DEFAULT_CONFIG, overrides, {"data.path": data, "out_dir": out})


def _cmd_pretrain(args: argparse.Namespace) -> int:
    job = load_job(args.config, args.set, args.data, args.out)
    if args.print_config:
        return jobcli.print_resolved(job)
    m = pretrain(job, resume=args.resume)
    if not m:  # a DDP process other than 0: process 0 reports
        return 0
    unit = UNITS[job.data.source]
    print(f"seqssm pretrain: {m['steps']} steps; held-out {m['heldout_bits_per_token']:.4f} bits per {unit} over "
          f"{m['heldout_tokens']:,} tokens; run folder {job.out_dir}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("pretrain", help="LM pretraining on a genome, audio files or any file (resumable)")
    p.add_argument("--config", help=f"job YAML, or a shipped config name (default: {DEFAULT_CONFIG})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.seed=1")
    p.add_argument("--data", help="FASTA (data.source fasta), an audio file or folder (audio) or any file (bytes); "
                                  "sets data.path")
    p.add_argument("--out", help="run folder; sets out_dir")
    p.add_argument("--resume", action="store_true", help="continue from the newest readable checkpoint in --out")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=_cmd_pretrain)

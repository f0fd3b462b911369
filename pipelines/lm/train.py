"""`seqssm lm train` / `seqssm lm sample`: a byte-level language model (the MambaByte setting) on any file.

Dimension names: b batch · l sequence length (data.seq_len) · v vocabulary (256 bytes).

Data: the file's bytes through np.memmap (never read whole). The last `data.val_fraction` of the file is held
out; validation reads it as contiguous, non-overlapping windows of l+1 bytes (stride l, so every held-out byte
after the first is a target once). Training draws windows of l+1 bytes at random offsets in the rest; window i
of the run comes from numpy's generator seeded with (train.seed, i), so the draw is the same whatever the number
of workers. Loss: cross-entropy in nats; bits per byte = nats / ln 2.

The model is `seqssm.build_model(cfg.model)`; the LightningModule here only wraps it (the model knows nothing
of Lightning). Optimiser AdamW over model.param_groups(weight_decay), linear warm-up then cosine decay to
lr * min_lr_ratio, gradient-norm clipping.

Run folder (`--out`): model/ (save_pretrained), config.yaml (the resolved job config), metrics.json,
history.json (train loss at every step, val loss at every validation), curves.png, logs/metrics.csv (CSVLogger).
All written in a staging folder and moved into place at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from seqssm import GenerateConfig
from seqssm.pipelines.config import LMJobConfig, UsageError, validate_generate, validate_lm_job
from seqssm.pipelines import jobcli
from seqssm.pipelines.jobcli import add_train_parser, fit_and_validate, print_resolved
from seqssm.pipelines.runio import atomic_write_json, check_out_dir, publish, staging_dir

LN2 = math.log(2.0)
ARTIFACTS = ("model", "config.yaml", "metrics.json", "history.json", "curves.png", "logs")
DEFAULT_CONFIG = "lm_bytes.yaml"


# ----------------------------------------------------------------------------------------------------- data


class ByteFile:
    """The bytes of one file, split into a training head and a held-out tail."""

    def __init__(self, path: str | os.PathLike, seq_len: int, val_fraction: float, option: str = "--data"):
        path = Path(path)
        if not path.exists():
            raise UsageError(f"{option} {path}: no such file")
        if not path.is_file():
            raise UsageError(f"{option} {path}: not a regular file")
        self.path, self.seq_len = path, seq_len
        self.size = path.stat().st_size
        window = seq_len + 1
        self.split = self.size - int(self.size * val_fraction)
        n_train, n_val = self.split, self.size - self.split
        if n_train < 2 * window or n_val < window:
            need = max(2 * window + window, math.ceil(window / val_fraction), math.ceil(2 * window / (1 - val_fraction)))
            raise UsageError(
                f"{option} {path}: {self.size} bytes is too small for data.seq_len={seq_len} and "
                f"data.val_fraction={val_fraction}: need at least {need} bytes "
                f"(2 training windows and 1 validation window of {window} bytes)"
            )
        self._mm: np.memmap | None = None

    @property
    def bytes(self) -> np.memmap:
        if self._mm is None:  # opened lazily, so a DataLoader worker opens its own map
            self._mm = np.memmap(self.path, dtype=np.uint8, mode="r")
        return self._mm

    def __getstate__(self):
        return {**self.__dict__, "_mm": None}

    def window(self, start: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.bytes[start : start + self.seq_len + 1], dtype=np.int64))


class TrainWindows(Dataset):
    """`num_windows` windows of l+1 bytes at random offsets in the training head; window i is seeded by (seed, i)."""

    def __init__(self, data: ByteFile, num_windows: int, seed: int):
        self.data, self.num_windows, self.seed = data, num_windows, seed
        self.max_start = data.split - (data.seq_len + 1)

    def __len__(self) -> int:
        return self.num_windows

    def __getitem__(self, i: int) -> torch.Tensor:
        start = int(np.random.default_rng([self.seed, i]).integers(0, self.max_start + 1))
        return self.data.window(start)


class ValWindows(Dataset):
    """Contiguous windows of l+1 bytes at stride l over the held-out tail (at most `max_windows`, 0: all)."""

    def __init__(self, data: ByteFile, max_windows: int = 0):
        self.data = data
        n = (data.size - data.split - 1) // data.seq_len
        self.num_windows = min(n, max_windows) if max_windows else n

    def __len__(self) -> int:
        return self.num_windows

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < self.num_windows:
            raise IndexError(i)
        return self.data.window(self.data.split + i * self.data.seq_len)


# ---------------------------------------------------------------------------------------------------- model


def moe_aux_loss(task, model) -> "torch.Tensor | float":
    """The MoE load-balancing loss to add to a training loss (0 without MoE layers); logs it and the tokens the
    experts' capacity dropped this step, so that no token is dropped silently."""
    if not model.moe_layers():
        return 0.0
    aux = model.aux_loss()
    task.log("moe_aux_loss", aux.detach(), on_step=True, on_epoch=False)
    task.log("moe_dropped_tokens", float(sum(m.last_dropped for m in model.moe_layers())), on_step=True,
             on_epoch=False)
    return aux


def lr_lambda(warmup_steps: int, max_steps: int, min_ratio: float):
    """Multiplier of the base lr at optimizer step s: linear warm-up, then cosine decay to min_ratio."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


def _lightning_module_class():
    import lightning as L

    from seqssm.pipelines.jobcli import TimeBudget

    class ByteLMTask(L.LightningModule):
        """Next-byte prediction around a seqssm model; keeps the loss history for metrics and curves."""

        def __init__(self, model: torch.nn.Module, train_cfg):
            super().__init__()
            self.model = model
            self.train_cfg = train_cfg
            self.budget = TimeBudget(train_cfg.max_minutes)
            self.history: dict[str, list] = {"train": [], "val": []}
            self._val_sum = 0.0
            self._val_count = 0
            self.val_seconds = 0.0
            self._val_t0 = 0.0

        def _loss(self, batch: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
            x, y = batch[:, :-1], batch[:, 1:]  # (b, l) each
            logits = self.model(x)  # (b, l, v) float32
            return torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), reduction=reduction
            )

        def training_step(self, batch, batch_idx):
            loss = self._loss(batch)
            self.history["train"].append([self.global_step + 1, float(loss.detach())])
            self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
            self.log("train_bpb", loss.detach() / LN2, on_step=True, on_epoch=False)
            self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
            return loss + moe_aux_loss(self, self.model)

        def on_validation_epoch_start(self):
            self._val_sum, self._val_count = 0.0, 0
            self._val_t0 = time.perf_counter()

        def validation_step(self, batch, batch_idx):
            loss_sum = self._loss(batch, reduction="sum")
            self._val_sum += float(loss_sum)
            self._val_count += batch[:, 1:].numel()

        def on_validation_epoch_end(self):
            val_loss = self._val_sum / max(1, self._val_count)
            self.history["val"].append([int(self.global_step), val_loss])
            self.log("val_loss", val_loss, prog_bar=True)
            self.log("val_bpb", val_loss / LN2, prog_bar=True)
            self.val_seconds += time.perf_counter() - self._val_t0

        def configure_optimizers(self):
            return jobcli.optimizers(self.model, self.train_cfg, self.train_cfg.max_steps, self.budget)

    return ByteLMTask


# ------------------------------------------------------------------------------------------------- training


def _plot_curves(history: dict, path: Path, title: str, unit: str = "byte") -> None:
    """Train and validation loss (bits per `unit`) against step: the whole run, and a zoom on its last 80 %."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    steps = np.array([s for s, _ in history["train"]], dtype=float)
    bits = np.array([v for _, v in history["train"]], dtype=float) / LN2
    vs = np.array([s for s, _ in history["val"]], dtype=float)
    vb = np.array([v for _, v in history["val"]], dtype=float) / LN2
    k = max(1, len(bits) // 50)
    for ax, zoom in zip(axes, (False, True)):
        ax.plot(steps, bits, lw=0.8, alpha=0.5, label="train (per step)")
        if k > 1:
            ax.plot(steps[k - 1 :], np.convolve(bits, np.ones(k) / k, mode="valid"), lw=1.6, label=f"train (mean of {k})")
        if len(vs):
            ax.plot(vs, vb, "o-", lw=1.6, label="validation")
        if zoom and len(steps) > 5:
            start = steps[0] + 0.2 * (steps[-1] - steps[0])
            tail = np.concatenate([bits[steps >= start], vb[vs >= start]])
            lo, hi = np.percentile(tail, 1), np.percentile(tail, 99)
            pad = 0.1 * (hi - lo) + 1e-3
            ax.set_xlim(start, steps[-1])
            ax.set_ylim(lo - pad, hi + pad)
            ax.set_title("last 80 % of the run", fontsize=9)
        else:
            ax.set_title(title, fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(f"loss (bits per {unit})")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def prepare_job(job: LMJobConfig) -> ByteFile:
    """Validate the job's values and open its data; raises UsageError naming the key or file."""
    validate_lm_job(job)
    if not job.data.path:
        raise UsageError("data.path is empty: pass --data FILE (or --set data.path=FILE)")
    return ByteFile(job.data.path, job.data.seq_len, job.data.val_fraction)


def train_lm(job: LMJobConfig, overwrite: bool = False) -> dict:
    """Train a byte LM as `job` says and write the run folder `job.out_dir`; returns the metrics dict."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    import seqssm

    data = prepare_job(job)
    out = check_out_dir(job.out_dir, overwrite)
    d, t = job.data, job.train
    job = dataclasses.replace(job, data=dataclasses.replace(d, path=str(Path(d.path).resolve())))

    if t.threads:
        torch.set_num_threads(t.threads)
    with staging_dir(out) as stage:
        L.seed_everything(t.seed, workers=True, verbose=False)
        model = seqssm.build_model(job.model)
        jobcli.init_model(model, t.init_from)
        task = _lightning_module_class()(model, t)
        train_dl = DataLoader(
            TrainWindows(data, t.max_steps * d.batch_size, t.seed),
            batch_size=d.batch_size,
            shuffle=False,
            num_workers=d.num_workers,
            persistent_workers=d.num_workers > 0,
        )
        val_dl = DataLoader(ValWindows(data, d.val_max_windows), batch_size=d.batch_size, num_workers=d.num_workers)
        trainer = L.Trainer(
            accelerator=t.accelerator,
            devices=t.devices,
            precision=t.precision,
            max_steps=t.max_steps,
            max_epochs=-1,
            val_check_interval=min(t.val_every, t.max_steps),
            num_sanity_val_steps=0,
            gradient_clip_val=t.grad_clip if t.grad_clip > 0 else None,
            gradient_clip_algorithm="norm",
            log_every_n_steps=min(t.log_every, t.max_steps),
            logger=CSVLogger(save_dir=str(stage), name="", version="logs"),
            enable_checkpointing=False,
            enable_progress_bar=t.progress_bar,
            enable_model_summary=t.progress_bar,
            deterministic="warn" if t.deterministic else False,
            default_root_dir=str(stage),
            **task.budget.trainer_kwargs(),
        )
        seconds = fit_and_validate(trainer, task, train_dl, val_dl)

        steps = int(trainer.global_step)
        train_losses = [loss for _, loss in task.history["train"]]
        last = train_losses[-min(len(train_losses), t.log_every) :]
        train_seconds = max(1e-9, seconds - task.val_seconds)
        tokens = steps * d.batch_size * d.seq_len
        final_val = task.history["val"][-1][1]
        metrics = {
            "data": job.data.path,
            "data_bytes": data.size,
            "train_bytes": data.split,
            "val_bytes_scored": len(val_dl.dataset) * d.seq_len,
            "parameters": sum(p.numel() for p in model.parameters()),
            "init_from": t.init_from or None,
            "steps": steps,
            "seconds": round(seconds, 3),
            "train_seconds": round(train_seconds, 3),
            "tokens_per_second": round(tokens / train_seconds, 1),
            "final_train_loss": float(np.mean(last)),  # nats, mean over the last log_every steps
            "final_train_bits_per_byte": float(np.mean(last)) / LN2,
            "val_loss": final_val,  # nats
            "val_bits_per_byte": final_val / LN2,
        }

        model.cpu().save_pretrained(stage / "model")
        seqssm.save_config(job, stage / "config.yaml")
        atomic_write_json(stage / "metrics.json", metrics)
        atomic_write_json(stage / "history.json", task.history)
        _plot_curves(task.history, stage / "curves.png", f"{Path(job.data.path).name}: byte LM, {steps} steps")
        publish(stage, out, ARTIFACTS)
    return metrics


# ------------------------------------------------------------------------------------------------- sampling


def sample_lm(model_dir: str | os.PathLike, prompt: bytes, gen: GenerateConfig, device: str = "cpu") -> bytes:
    """The continuation (without the prompt) that the byte LM in `model_dir` generates after `prompt`."""
    import seqssm

    model_dir = Path(model_dir)
    if (model_dir / "model" / "config.yaml").is_file():
        model_dir = model_dir / "model"  # a run folder of `seqssm lm train`: its model/ subfolder
    if not (model_dir / "config.yaml").is_file():
        raise UsageError(f"--model {model_dir}: not a seqssm model folder (no config.yaml)")
    if not prompt:
        raise UsageError("--prompt: must not be empty")
    validate_generate(gen)
    model = seqssm.load_pretrained(str(model_dir))
    if model.config.head != "lm":
        raise UsageError(f"--model {model_dir}: head is {model.config.head!r}, sampling needs a language model ('lm')")
    model = model.to(device).eval()
    ids = torch.tensor([list(prompt)], dtype=torch.long, device=device)  # (1, l)
    with torch.no_grad():
        out = model.generate(
            ids, gen.max_new_tokens, temperature=gen.temperature, top_k=gen.top_k, top_p=gen.top_p, seed=gen.seed
        )
    new = out[0, ids.shape[1] :].tolist()
    return bytes(b if b < 256 else ord("?") for b in new)


# ---------------------------------------------------------------------------------------------- command line


def packaged_config(name: str) -> Path:
    from importlib.resources import files

    return Path(str(files("seqssm.configs") / name))


def resolve_config_path(arg: str | None) -> Path:
    """--config: a path, or the name of a shipped config ("lm_bytes" or "lm_bytes.yaml"); default lm_bytes."""
    if arg is None:
        return packaged_config(DEFAULT_CONFIG)
    p = Path(arg)
    if p.is_file():
        return p
    if os.sep not in arg:
        shipped = packaged_config(arg if arg.endswith(".yaml") else f"{arg}.yaml")
        if shipped.is_file():
            return shipped
    if p.exists():
        raise UsageError(f"--config {arg}: not a regular file")
    raise UsageError(f"--config {arg}: no such file")


def load_job(config: str | None, overrides=(), data: str | None = None, out: str | None = None) -> LMJobConfig:
    from seqssm.pipelines.jobcli import load_job as load

    return load(LMJobConfig, config, DEFAULT_CONFIG, overrides, {"data.path": data, "out_dir": out})


def _cmd_train(args: argparse.Namespace) -> int:
    job = load_job(args.config, args.set, args.data, args.out)
    if args.print_config:
        return print_resolved(job)
    m = train_lm(job, overwrite=args.overwrite)
    print(
        f"seqssm lm train: {m['steps']} steps in {m['seconds']:.1f} s ({m['tokens_per_second']:.0f} tokens/s); "
        f"train loss {m['final_train_loss']:.4f} nats; val {m['val_bits_per_byte']:.4f} bits per byte; "
        f"run folder {job.out_dir}"
    )
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    if args.prompt is not None and args.prompt_file is not None:
        raise UsageError("--prompt and --prompt-file: give one of them, not both")
    if args.prompt_file is not None:
        p = Path(args.prompt_file)
        if not p.is_file():
            raise UsageError(f"--prompt-file {p}: no such file")
        prompt = p.read_bytes()
    else:
        prompt = (args.prompt if args.prompt is not None else "\n").encode("utf-8")
    gen = GenerateConfig(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    )
    text = sample_lm(args.model, prompt, gen, device=args.device)
    out = (prompt + text) if args.with_prompt else text
    sys.stdout.write(out.decode("utf-8", errors="replace") + "\n")
    sys.stdout.flush()
    return 0


def register(subparsers) -> None:
    lm = subparsers.add_parser("lm", help="byte-level language model (MambaByte setting) on any file")
    sub = lm.add_subparsers(dest="lm_command", metavar="ACTION")
    sub.required = True

    add_train_parser(sub, "train a byte LM on a file; writes a run folder", DEFAULT_CONFIG, "model.d_model=64",
                     [("--data", "the file to model (any bytes); sets data.path")], _cmd_train)

    d = GenerateConfig()
    sa = sub.add_parser("sample", help="continue a prompt with a trained byte LM")
    sa.add_argument("--model", required=True, help="model folder (RUN/model), or the run folder RUN")
    sa.add_argument("--prompt", help="prompt text, encoded as UTF-8 (default: a newline)")
    sa.add_argument("--prompt-file", help="read the prompt bytes from this file")
    sa.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens)
    sa.add_argument("--temperature", type=float, default=d.temperature)
    sa.add_argument("--top-k", type=int, default=d.top_k)
    sa.add_argument("--top-p", type=float, default=d.top_p)
    sa.add_argument("--seed", type=int, default=d.seed)
    sa.add_argument("--device", default="cpu", help="cpu or cuda")
    sa.add_argument("--with-prompt", action="store_true", help="print the prompt before the continuation")
    sa.set_defaults(func=_cmd_sample)

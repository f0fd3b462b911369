"""`seqssm audio classifier`: train the FSDD digit classifier whose features and probabilities score generated audio
(seqssm.domains.audio.classifier; the metrics in seqssm.domains.audio.quality).

Dimension names: n clips · l samples (model.clip_samples) · k classes.

Training uses the FSDD training takes (every take not in data.test_takes), with a random placement of each clip in
the fixed-length window as augmentation (generated clips need not start with the digit); the test takes are scored
once at the end, placed at the start of the window. A plain PyTorch loop (AdamW, cosine decay over the time budget):
the model is small and one thread trains it in minutes.

Run folder (`--out`): model.safetensors, config.yaml (this job, `model:` is the classifier's shape), metrics.json
(accuracy on the test takes, per digit and per speaker, the confusion matrix), history.json. Staged, then moved.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import seqssm
from seqssm.config import validate_tree
from seqssm.domains.audio import fsdd_split, load_audio, parse_fsdd_name
from seqssm.domains.audio.classifier import DigitClassifier, DigitClassifierConfig, prepare
from seqssm.pipelines.audio.config import ClassifierJobConfig
from seqssm.pipelines.jobconfig import UsageError, load_job as load_job_config
from seqssm.pipelines.rundir import atomic_write_json, check_out_dir, publish, staging_dir

CLASSIFIER_CONFIG = "audio_classifier"
WEIGHTS = "model.safetensors"
ARTIFACTS = (WEIGHTS, "config.yaml", "metrics.json", "history.json")


def load_job(config: str | None, overrides=(), data=None, out=None) -> ClassifierJobConfig:
    return load_job_config(ClassifierJobConfig, config, CLASSIFIER_CONFIG, overrides, {"data.folder": data,
                                                                                     "out_dir": out})


def load_clips(files, cfg: DigitClassifierConfig) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Each file prepared (mu-law round trip, not yet padded) and its digit label (from the FSDD name)."""
    waves, labels = [], []
    for f in files:
        waves.append(prepare(load_audio(f, cfg.sample_rate)[0], None))  # no cut here: placement happens later
        labels.append(parse_fsdd_name(f)[0])
    return waves, torch.tensor(labels)


def place(wave: torch.Tensor, n: int, offset: int = 0) -> torch.Tensor:
    """(l,) -> (n,): the clip (cut to n) at `offset` in a silent window."""
    w = wave[:n]
    out = w.new_zeros(n)
    offset = min(offset, n - len(w))
    out[offset:offset + len(w)] = w
    return out


def evaluate(model: DigitClassifier, waves, labels: torch.Tensor) -> torch.Tensor:
    """Predicted digits (n,) of clips placed at the start of the window."""
    x = torch.stack([place(w, model.config.clip_samples) for w in waves])
    return model.features_and_probs(x)[1].argmax(-1)


def train_classifier(job: ClassifierJobConfig, overwrite: bool = False) -> dict:
    validate_tree(job)
    t, cfg = job.train, job.model
    if not job.data.folder:
        raise UsageError("data.folder is empty: pass --data FOLDER")
    out = check_out_dir(job.out_dir, overwrite)
    job.data.folder = str(Path(job.data.folder).resolve())  # `score` finds the reference takes through it
    if t.threads:
        torch.set_num_threads(t.threads)
    train_files, test_files = fsdd_split(job.data.folder, job.data.test_takes)
    torch.manual_seed(t.seed)
    gen = torch.Generator().manual_seed(t.seed)
    t_load = time.perf_counter()
    train_w, train_y = load_clips(train_files, cfg)
    test_w, test_y = load_clips(test_files, cfg)
    load_seconds = time.perf_counter() - t_load
    model = DigitClassifier(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    steps_per_epoch = math.ceil(len(train_w) / t.batch_size)
    total = t.max_epochs * steps_per_epoch
    history, t0, step = [], time.perf_counter(), 0
    budget = 60.0 * t.max_minutes
    for epoch in range(t.max_epochs):
        order = torch.randperm(len(train_w), generator=gen).tolist()
        model.train()
        losses = []
        for i in range(0, len(order), t.batch_size):
            idx = order[i:i + t.batch_size]
            x = torch.stack([place(train_w[j], cfg.clip_samples,
                                   int(torch.randint(max(1, cfg.clip_samples - len(train_w[j]) + 1), (1,), generator=gen)))
                             for j in idx])
            spent = (time.perf_counter() - t0) / budget if budget else 0.0
            progress = max(step / total, spent)  # cosine over steps or the clock, whichever is further
            for g in opt.param_groups:
                g["lr"] = t.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
            loss = torch.nn.functional.cross_entropy(model(x), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
        elapsed = time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "step": step, "seconds": round(elapsed, 1),
                        "train_loss": float(np.mean(losses))})
        if t.progress:
            print(f"  epoch {epoch + 1}: loss {history[-1]['train_loss']:.4f}, {elapsed:.0f} s", flush=True)
        if budget and elapsed >= budget:
            break
    train_seconds = time.perf_counter() - t0
    model.eval()
    pred = evaluate(model, test_w, test_y)
    correct = (pred == test_y)
    speakers = [parse_fsdd_name(f)[1] for f in test_files]
    confusion = torch.zeros(cfg.num_classes, cfg.num_classes, dtype=torch.long)
    for y, p in zip(test_y.tolist(), pred.tolist()):
        confusion[y, p] += 1
    metrics = {
        "test_accuracy": float(correct.float().mean()), "test_clips": len(test_files),
        "test_takes": list(job.data.test_takes), "train_clips": len(train_files),
        "per_digit_accuracy": {str(d): float(correct[test_y == d].float().mean()) for d in range(cfg.num_classes)
                               if (test_y == d).any()},
        "per_speaker_accuracy": {s: float(correct[torch.tensor([x == s for x in speakers])].float().mean())
                                 for s in sorted(set(speakers))},
        "confusion": confusion.tolist(), "epochs": len(history), "steps": step,
        "train_seconds": round(train_seconds, 1), "load_seconds": round(load_seconds, 1),
        "parameters": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads(),
    }
    with staging_dir(out) as stage:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(stage / WEIGHTS))
        seqssm.save_config(job, stage / "config.yaml")
        atomic_write_json(stage / "metrics.json", metrics)
        atomic_write_json(stage / "history.json", history)
        publish(stage, out, list(ARTIFACTS))
    return metrics


def load_classifier(path) -> DigitClassifier:
    """The classifier of a `seqssm audio classifier` run folder, in eval mode; UsageError if it is not one."""
    folder = Path(path)
    for need in (folder / "config.yaml", folder / WEIGHTS):
        if not need.is_file():
            raise UsageError(f"--classifier {path}: not a run folder of 'seqssm audio classifier' "
                             f"({need.name} missing)")
    job = seqssm.load_config(ClassifierJobConfig, str(folder / "config.yaml"))
    model = DigitClassifier(job.model)
    model.load_state_dict(load_file(str(folder / WEIGHTS)))
    return model.eval()


__all__ = ["ClassifierJobConfig", "load_classifier", "load_job", "train_classifier"]

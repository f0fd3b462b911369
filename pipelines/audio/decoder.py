"""`seqssm audio train` with units.stage decoder: the spectral unit decoder (seqssm.domains.audio.spectral).

Dimension names: b batch · f frames · n frequency bins (n_fft // 2 + 1).

Data: every training clip (at each of units.speeds) -> its units under the coder of units.coder (a vocoder or
planner run) and its log-magnitude spectrogram, frame for frame; whole clips, padded with unit k and masked.
Loss: the mean absolute error of the log-magnitudes of the real frames (L1 on log spectra, which weighs quiet and
loud bins alike, as the ear does more than a linear loss). Test: that error on the test takes, their log-spectral
distance in dB, and the same two for the coder's own table (each unit's centroid log-mel frame, mapped back to
linear frequency by least squares): what a decoder adds over the lookup.

Run folder: as every audio run (model/ with the token model, condition.safetensors (the speaker table) and
units.safetensors (the coder), config.yaml, metrics.json, history.json, curves.png, test.tsv, logs/).
"""

from __future__ import annotations

import math
import time

import lightning as L
import torch
from safetensors.torch import save as safetensors_save
from torch.utils.data import DataLoader, Dataset

import seqssm
from seqssm.domains.audio import AudioFolder, parse_fsdd_name
from seqssm.domains.audio.spectral import UnitDecoder, centroid_log_magnitude, log_magnitude
from seqssm.pipelines.audio.infer import CONDITION_FILE
from seqssm.pipelines.audio.twostage import UNITS_FILE, read_coder, speed_waves
from seqssm.pipelines.jobconfig import UsageError
from seqssm.pipelines.rundir import atomic_open, atomic_write_json, publish, staging_dir
from seqssm.pipelines.training import (TimeBudget, fit_and_validate, init_model, optimizers, step_trainer,
                                       plot_curves)

DB_PER_NAT = 20.0 / math.log(10.0)  # a log-magnitude difference in nats, as dB
ARTIFACTS = ("model", "config.yaml", "metrics.json", "history.json", "curves.png", "test.tsv", "logs")


class UnitFrames(Dataset):
    """Items {"units": (f,), "speaker": () long, "target": (f, n)} of whole clips."""

    def __init__(self, coder, clips, quantizer, files, speakers: list[str], speeds=(1.0,)):
        self.items, self.files = [], []
        for i, wave in speed_waves(clips, quantizer, speeds):  # speed perturbation, as the planner's
            units = coder.encode(wave)
            speaker = torch.tensor(speakers.index(parse_fsdd_name(files[i])[1]))
            self.items.append({"units": units, "speaker": speaker,
                               "target": log_magnitude(wave, coder.spec, len(units))})
            self.files.append(files[i])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def collate_frames(pad_unit: int):
    """Items -> {"units": (b, f) padded with pad_unit, "speaker": (b,), "target": (b, f, n), "mask": (b, f)}."""

    def collate(items):
        f = max(len(it["units"]) for it in items)
        units = torch.full((len(items), f), pad_unit, dtype=torch.long)
        target = torch.zeros(len(items), f, items[0]["target"].shape[1])
        mask = torch.zeros(len(items), f)
        for j, it in enumerate(items):
            n = len(it["units"])
            units[j, :n], target[j, :n], mask[j, :n] = it["units"], it["target"], 1.0
        return {"units": units, "speaker": torch.stack([it["speaker"] for it in items]), "target": target,
                "mask": mask}

    return collate


def frame_errors(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: (sum over real frames of the mean |Δ log-magnitude| (nats), sum of the frames' log-spectral distance
    sqrt(mean over bins of Δ dB²)). pred, target (b, f, n), mask (b, f)."""
    diff = pred - target
    l1 = (diff.abs().mean(-1) * mask).sum(1)
    lsd = (((diff * DB_PER_NAT) ** 2).mean(-1).sqrt() * mask).sum(1)
    return l1, lsd


class DecoderTask(L.LightningModule):
    """L1 on log-magnitudes of the real frames; keeps the loss history (validation: mean per frame)."""

    def __init__(self, decoder: UnitDecoder, train_cfg):
        super().__init__()
        self.model, self.train_cfg = decoder, train_cfg
        self.history: dict[str, list] = {"train": [], "val": []}
        self.val_seconds, self._t0, self._sum, self._count = 0.0, 0.0, 0.0, 0.0
        self.budget = TimeBudget(train_cfg.max_minutes)

    def _errors(self, batch):
        pred = self.model(batch["units"], batch["speaker"], batch["mask"])
        return frame_errors(pred, batch["target"], batch["mask"])[0].sum(), batch["mask"].sum()

    def training_step(self, batch, batch_idx):
        total, frames = self._errors(batch)
        loss = total / frames.clamp_min(1)
        self.history["train"].append([self.global_step + 1, float(loss.detach())])
        self.log("train_l1", loss.detach(), prog_bar=True, on_step=True, on_epoch=False)
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def on_validation_epoch_start(self):
        self._sum, self._count, self._t0 = 0.0, 0.0, time.perf_counter()

    def validation_step(self, batch, batch_idx):
        total, frames = self._errors(batch)
        self._sum += float(total)
        self._count += float(frames)

    def on_validation_epoch_end(self):
        val = self._sum / max(1.0, self._count)
        self.history["val"].append([int(self.global_step), val])
        self.log("val_l1", val, prog_bar=True)
        self.val_seconds += time.perf_counter() - self._t0

    def configure_optimizers(self):
        return optimizers(self.model, self.train_cfg, self.train_cfg.max_steps, self.budget)


@torch.no_grad()
def score_decoder(decoder: UnitDecoder, coder, data: UnitFrames, batch_size: int) -> dict:
    """Per file and overall: the decoder's and the coder table's mean |Δ log-magnitude| (nats) and log-spectral
    distance (dB) per frame."""
    collate = collate_frames(coder.k)
    rows = []
    for i in range(0, len(data), batch_size):
        batch = collate([data[j] for j in range(i, min(i + batch_size, len(data)))])
        l1, lsd = frame_errors(decoder(batch["units"], batch["speaker"], batch["mask"]), batch["target"],
                               batch["mask"])
        for j in range(len(l1)):
            item = data[i + j]
            table = centroid_log_magnitude(coder, item["units"])[None]
            t_l1, t_lsd = frame_errors(table, item["target"][None], torch.ones(1, len(item["units"])))
            n = len(item["units"])
            rows.append({"file": str(data.files[i + j]), "frames": n, "l1": float(l1[j]) / n,
                         "lsd_db": float(lsd[j]) / n, "table_l1": float(t_l1) / n, "table_lsd_db": float(t_lsd) / n})
    frames = sum(r["frames"] for r in rows)
    mean = {key: sum(r[key] * r["frames"] for r in rows) / frames for key in ("l1", "lsd_db", "table_l1",
                                                                            "table_lsd_db")}
    return {"files": len(rows), "frames": frames, **mean, "per_file": rows}


def write_frame_table(path, result: dict) -> None:
    keys = ("frames", "l1", "lsd_db", "table_l1", "table_lsd_db")
    with atomic_open(path, "w") as f:
        f.write("file\t" + "\t".join(keys) + "\n")
        for row in result["per_file"]:
            f.write(row["file"] + "\t" + "\t".join(f"{row[k]:.4f}" if k != "frames" else str(row[k])
                                                   for k in keys) + "\n")
        f.write("ALL\t" + "\t".join(f"{result[k]:.4f}" if k != "frames" else str(result[k]) for k in keys) + "\n")


def train_decoder(job, files: dict, quantizer, out, extra_files: dict) -> dict:
    """The decoder stage of train_audio (which has split the files, made the quantiser and filled the speakers):
    train, score the test takes, publish the run folder at `out`; returns the metrics."""
    d, t, u, cond = job.data, job.train, job.units, job.condition
    if "speaker" not in cond.by:
        raise UsageError(f"condition.by {list(cond.by)}: units.stage decoder is conditioned on the speaker "
                         "(condition.by: [speaker])")
    if d.heldout_speakers:
        raise UsageError("data.heldout_speakers: not supported by units.stage decoder (a voice needs its embedding)")
    if not u.coder:
        raise UsageError("units.coder: stage decoder: name the run whose units it decodes (--set units.coder=RUN)")
    coder = read_coder(u.coder, "units.coder")
    if job.model.vocab_size != coder.k + 1:
        raise UsageError(f"model.vocab_size {job.model.vocab_size}: the decoder of {u.coder} ({coder.k} units) needs "
                         f"{coder.k + 1} (the units and the padding)")
    if coder.spec.sample_rate != d.sample_rate or coder.spec.n_fft != u.n_fft:
        raise UsageError(f"units.coder {u.coder}: its units are of {coder.spec.sample_rate} Hz audio with n_fft "
                         f"{coder.spec.n_fft}; data.sample_rate is {d.sample_rate}, units.n_fft {u.n_fft}")
    with staging_dir(out) as stage:
        L.seed_everything(t.seed, workers=True, verbose=False)
        inner = seqssm.build_model(job.model)
        init_model(inner, t.init_from)
        decoder = UnitDecoder(inner, cond.speakers, coder.k, coder.spec)
        train = UnitFrames(coder, AudioFolder(files["train"], d.sample_rate, quantizer), quantizer, files["train"],
                           cond.speakers, u.speeds)
        val = UnitFrames(coder, AudioFolder(files["val"], d.sample_rate, quantizer), quantizer, files["val"],
                         cond.speakers)
        collate = collate_frames(coder.k)
        train_dl = DataLoader(train, batch_size=d.batch_size, shuffle=True, drop_last=len(train) >= d.batch_size,
                              num_workers=d.num_workers, persistent_workers=d.num_workers > 0,
                              generator=torch.Generator().manual_seed(t.seed), collate_fn=collate)
        val_dl = DataLoader(val, batch_size=d.eval_batch_size, collate_fn=collate)
        task = DecoderTask(decoder, t)
        trainer = step_trainer(t, stage, task.budget)
        seconds = fit_and_validate(trainer, task, train_dl, val_dl)
        decoder = decoder.cpu().eval()
        test = score_decoder(decoder, coder, UnitFrames(coder, AudioFolder(files["test"], d.sample_rate, quantizer),
                                                        quantizer, files["test"], cond.speakers), d.eval_batch_size)
        write_frame_table(stage / "test.tsv", test)
        steps = int(trainer.global_step)
        metrics = {
            "parameters": sum(p.numel() for p in decoder.parameters()),
            "train_threads": torch.get_num_threads(), "init_from": t.init_from or None,
            "steps": steps, "max_steps": t.max_steps, "max_minutes": t.max_minutes,
            "seconds": round(seconds, 3), "train_seconds": round(seconds - task.val_seconds, 3),
            "files": {k: len(v) for k, v in files.items()}, "train_items": len(train),
            "val_l1": task.history["val"][-1][1],
            "test": {k: test[k] for k in ("files", "frames", "l1", "lsd_db", "table_l1", "table_lsd_db")},
            "units": {"stage": "decoder", "k": coder.k, "hop": coder.spec.hop, "coder": u.coder,
                      "test_scored_as": "per frame: mean |Δ log-magnitude| (nats) and log-spectral distance (dB) "
                                        "of the decoder and of the coder's centroid table, on the test takes"},
            "condition": {"by": ["speaker"], "speakers": list(cond.speakers)},
        }
        extra = {**extra_files, CONDITION_FILE: safetensors_save(decoder.condition_state_dict()),
                 UNITS_FILE: coder.to_bytes()}
        inner.save_pretrained(stage / "model", extra_files=extra)
        seqssm.save_config(job, stage / "config.yaml")
        atomic_write_json(stage / "metrics.json", metrics)
        atomic_write_json(stage / "history.json", task.history)
        plot_curves(task.history, stage / "curves.png", f"unit decoder: {steps} steps",
                    loss_name="mean |Δ log-magnitude| (nats)")
        publish(stage, out, list(ARTIFACTS))
    return metrics


__all__ = ["DecoderTask", "UnitFrames", "collate_frames", "frame_errors",
           "score_decoder", "train_decoder"]

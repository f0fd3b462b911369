"""`seqssm audio train`: raw audio, one quantised sample per token (SaShiMi, Goel et al. 2022;
Mamba paper section 4.4).

Dimension names: b batch · l samples per crop (data.crop_len) · v vocabulary (2^bits levels).

Training: a folder of audio -> split by file (FSDD by take; seqssm.domains.audio.corpus) -> load, mono, resample,
quantise (mu-law or linear) -> one random crop of l + 1 ids per clip and epoch, short clips padded and masked -> next-sample cross-entropy.
The model is `seqssm.build_model(job.model)` (the multi-scale backbone when model.multiscale.pool_factors is set); the
LightningModule only wraps it. AdamW (no decay on A_log, D, norms, biases), linear warm-up and cosine decay.
Validation files come out of the training files; the test files (and held-out speakers) are scored once at the
end, whole, in bits per sample, with the convention (quantiser, rate, split) stated beside the number.

The two-stage model (units.stage; seqssm.pipelines.audio.twostage): "vocoder" fits (or reads, units.coder) the
acoustic units and trains the same model given every sample's unit, crops of samples and units cut together;
"planner" trains a model over the unit sequences of a vocoder's coder, scored in bits per unit; "decoder" trains the
spectral unit decoder (seqssm.pipelines.audio.decoder).

Run folder (`--out`): model/ (save_pretrained + quantizer.json, and condition.safetensors / units.safetensors for
conditional and two-stage runs), config.yaml, metrics.json, history.json, curves.png, test.tsv (per-file bits),
logs/. Written in a staging folder and moved into place at the end.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import lightning as L
import torch
from safetensors.torch import save as safetensors_save
from torch.utils.data import DataLoader

import seqssm
from seqssm.config import validate_tree
from seqssm.domains.audio import (
    AudioFolder, RandomCrops, WholeClips, convention, make_quantizer, pad_collate, split_files,
)
from seqssm.pipelines.audio.config import AudioJobConfig
from seqssm.domains.audio import parse_fsdd_name
from seqssm.domains.audio.conditional import ConditionalSampleLM, UnitConditionalLM
from seqssm.pipelines.audio.infer import (CONDITION_FILE, QUANTIZER_FILE, WithCondition, WithStart,
                                          collate_with_condition, condition_prefixes, nll_sum, score_files,
                                          write_table)
from seqssm.pipelines.audio.twostage import (UNITS_FILE, SplitTrack, Tracked, UnitSequences, WholeTracked,
                                             clip_units, fit_coder, read_coder)
from seqssm.pipelines.jobconfig import UsageError
from seqssm.pipelines.rundir import atomic_write_json, check_out_dir, publish, staging_dir
from seqssm.pipelines.training import (LN2, TimeBudget, fit_and_validate, init_model, optimizers, step_trainer,
                                       plot_curves)

ARTIFACTS = ("model", "config.yaml", "metrics.json", "history.json", "curves.png", "test.tsv", "heldout.tsv", "logs")


class AudioTask(L.LightningModule):
    """Next-sample cross-entropy over the real (unpadded) samples; keeps the loss history."""

    def __init__(self, model, train_cfg, drop_prob: float = 0.0, unit_drop: float = 0.0):
        super().__init__()
        self.model, self.train_cfg, self.drop_prob, self.unit_drop = model, train_cfg, drop_prob, unit_drop
        self.history: dict[str, list] = {"train": [], "val": []}
        self.val_seconds, self._t0, self._sum, self._count = 0.0, 0.0, 0.0, 0.0
        self.budget = TimeBudget(train_cfg.max_minutes)

    def on_train_epoch_start(self):
        self.trainer.train_dataloader.dataset.set_epoch(self.current_epoch)  # new crops every epoch

    def _condition(self, batch):
        """The batch's prefix tokens, each replaced by "any" with probability drop_prob (training only)."""
        cond = batch.get("cond")
        if cond is None or not self.drop_prob:
            return cond
        anyway = torch.tensor([self.model.digit_token(None), self.model.speaker_token(None)], device=cond.device)
        drop = torch.rand(cond.shape, device=cond.device) < self.drop_prob
        return torch.where(drop, anyway.expand_as(cond), cond)

    def _track(self, batch):
        """A vocoder batch's unit track, each row replaced by "no unit" with probability unit_drop (training only),
        so that the same model also predicts without units: the unconditioned side of unit guidance."""
        track = batch.get("track")
        if track is None or not self.unit_drop:
            return track
        drop = torch.rand(track.shape[0], 1, device=track.device) < self.unit_drop
        return torch.where(drop, torch.full_like(track, self.model.n_units), track)

    def training_step(self, batch, batch_idx):
        nll, count = nll_sum(self.model, batch["ids"], batch["mask"], self._condition(batch), self._track(batch))
        loss = nll.sum() / count.sum().clamp_min(1)
        self.history["train"].append([self.global_step + 1, float(loss.detach())])
        self.log("train_bits", loss.detach() / LN2, prog_bar=True, on_step=True, on_epoch=False)
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def on_validation_epoch_start(self):
        self._sum, self._count, self._t0 = 0.0, 0.0, time.perf_counter()

    def validation_step(self, batch, batch_idx):
        nll, count = nll_sum(self.model, batch["ids"], batch["mask"], batch.get("cond"), batch.get("track"))
        self._sum += float(nll.sum())
        self._count += float(count.sum())

    def on_validation_epoch_end(self):
        val = self._sum / max(1.0, self._count)
        self.history["val"].append([int(self.global_step), val])
        self.log("val_bits", val / LN2, prog_bar=True)
        self.val_seconds += time.perf_counter() - self._t0

    def configure_optimizers(self):
        return optimizers(self.model, self.train_cfg, self.train_cfg.max_steps, self.budget)


def _init_source(init_from: str) -> Path | None:
    """The model/ folder of a train.init_from that names a saved model or run folder (not a .ckpt)."""
    if not init_from or Path(init_from).suffix == ".ckpt":
        return None
    folder = Path(init_from)
    return folder / "model" if (folder / "model").is_dir() else folder


@torch.no_grad()
def init_head(lm, init_from: str) -> None:
    """An audio model fine-tuned from another next-sample model keeps its output layer too (init_model copies the
    backbone only, which suits a new head): lm_head.weight is copied when the source has one of the same shape."""
    folder = _init_source(init_from)
    if folder is None or not (folder / "model.safetensors").is_file():
        return
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        if "lm_head.weight" in f.keys():
            weight = f.get_tensor("lm_head.weight")
            if hasattr(lm, "lm_head") and lm.lm_head.weight.shape == weight.shape:
                lm.lm_head.weight.copy_(weight)


@torch.no_grad()
def init_condition_tables(model, init_from: str) -> None:
    """A conditional model fine-tuned from a conditional run starts from its digit, speaker (and unit) tables where
    the shapes agree and the speakers are the same; tables the source lacks (a vocoder's units from a plain
    conditional run) keep their initialisation."""
    folder = _init_source(init_from)
    if folder is None or not (folder / CONDITION_FILE).is_file():
        return
    from safetensors.torch import load_file

    source_job = seqssm.load_config(AudioJobConfig, str(folder.parent / "config.yaml")) \
        if (folder.parent / "config.yaml").is_file() else None
    if source_job is None or list(source_job.condition.speakers) != list(model.speakers):
        raise UsageError(f"train.init_from {init_from}: a conditional run with other speakers "
                         f"({', '.join(source_job.condition.speakers) if source_job else '?'})")
    tables = load_file(str(folder / CONDITION_FILE))
    for name, weight in tables.items():
        target = getattr(model, name, None)
        if isinstance(target, torch.nn.Embedding) and target.weight.shape == weight.shape:
            target.weight.copy_(weight)


@torch.no_grad()
def score_units(planner, files, units: list[torch.Tensor], k: int, prefixes, batch_size: int) -> dict:
    """A planner's bits per unit token (the units and each clip's end token) on whole unit sequences; the per-file
    rows carry the same keys as score_files' ("samples" counts tokens)."""
    data = UnitSequences(units, k)
    collate = collate_with_condition(k)
    per_file = []
    for i in range(0, len(data), batch_size):
        items = [{**data[j], "cond": prefixes[j]} for j in range(i, min(i + batch_size, len(data)))]
        batch = collate(items)
        nll, count = nll_sum(planner, batch["ids"], batch["mask"], batch["cond"])
        per_file += [{"file": str(files[i + j]), "samples": int(c), "bits_per_sample": float(n / c / LN2)}
                     for j, (n, c) in enumerate(zip(nll.double(), count.double()))]
    total = sum(r["samples"] for r in per_file)
    bits = sum(r["bits_per_sample"] * r["samples"] for r in per_file) / total
    return {"files": len(per_file), "samples": total, "bits_per_sample": bits, "per_file": per_file}


def train_audio(job: AudioJobConfig, overwrite: bool = False) -> dict:
    """Train as `job` says, score the test files (and held-out speakers), write the run folder; returns metrics."""
    validate_tree(job)
    d, t = job.data, job.train
    files = split_files(d.folder, d.split, d.test_takes, d.heldout_speakers, d.test_fraction, d.val_fraction, t.seed)
    out = check_out_dir(job.out_dir, overwrite)
    job = dataclasses.replace(job, data=dataclasses.replace(d, folder=str(Path(d.folder).resolve())))
    quantizer = make_quantizer(d.quantizer, d.bits, d.scaling, d.bins)
    cond = job.condition
    if cond.by and not cond.speakers:  # the voices it can be asked for: the speakers of the training files
        speakers = sorted({parse_fsdd_name(f)[1] for f in files["train"]})
        job = dataclasses.replace(job, condition=dataclasses.replace(cond, speakers=speakers))
        cond = job.condition
    if t.threads:
        torch.set_num_threads(t.threads)
    stage_name = job.units.stage
    if stage_name == "decoder":  # a frame-level model of its own (no samples, no quantised tokens)
        from seqssm.pipelines.audio.decoder import train_decoder

        return train_decoder(job, files, quantizer, out, {QUANTIZER_FILE: json.dumps(quantizer.config(), indent=1)})
    with staging_dir(out) as stage:
        L.seed_everything(t.seed, workers=True, verbose=False)
        model = seqssm.build_model(job.model)
        init_model(model, t.init_from)
        init_head(model, t.init_from)
        lm = model
        coder = None
        train_clips = AudioFolder(files["train"], d.sample_rate, quantizer)
        val_clips = AudioFolder(files["val"], d.sample_rate, quantizer)
        pad_id = quantizer.zero_id
        if stage_name == "vocoder":  # the units are fitted here, on the training clips only (or read: units.coder)
            coder = read_coder(job.units.coder, "units.coder") if job.units.coder else fit_coder(
                train_clips, quantizer, job.units, t.seed)
            if coder.k != job.units.k:
                raise UsageError(f"units.k {job.units.k}: the coder of {job.units.coder} has {coder.k} units")
            model = UnitConditionalLM(lm, cond.n_digits, cond.speakers, coder.k)
        elif stage_name == "planner":
            if not job.units.coder:
                raise UsageError("units.coder: stage planner: name the vocoder run whose units it learns "
                                 "(--set units.coder=RUN)")
            coder = read_coder(job.units.coder, "units.coder")
            if job.model.vocab_size != coder.k + 1:
                raise UsageError(f"model.vocab_size {job.model.vocab_size}: the planner of {job.units.coder} "
                                 f"({coder.k} units) needs {coder.k + 1} (the units and the end token)")
            model = ConditionalSampleLM(lm, cond.n_digits, cond.speakers)
            pad_id = coder.k
        elif cond.by:
            model = ConditionalSampleLM(lm, cond.n_digits, cond.speakers)
        if coder is not None and coder.spec.sample_rate != d.sample_rate:
            raise UsageError(f"units.coder {job.units.coder}: its units are of {coder.spec.sample_rate} Hz audio, "
                             f"data.sample_rate is {d.sample_rate}")
        if cond.by:
            init_condition_tables(model, t.init_from)
        prefixes = (lambda fs: condition_prefixes(model, fs, cond.by)) if cond.by else (lambda fs: None)
        if stage_name == "planner":
            crops = UnitSequences(clip_units(coder, train_clips, quantizer, job.units.speeds), coder.k)
            val_data = UnitSequences(clip_units(coder, val_clips, quantizer), coder.k)
        elif stage_name == "vocoder":
            crops = SplitTrack(RandomCrops(Tracked(train_clips, coder, quantizer, pad_id), d.crop_len + 1,
                                           seed=t.seed))
            val_data = WholeTracked(Tracked(val_clips, coder, quantizer, pad_id))
        else:
            crops = RandomCrops(WithStart(train_clips, quantizer.zero_id), d.crop_len + 1, seed=t.seed)
            val_data = WholeClips(WithStart(val_clips, quantizer.zero_id))
        if cond.by:
            crops = WithCondition(crops, prefixes(files["train"]) * (len(job.units.speeds) if stage_name == "planner"
                                                                     else 1))
            val_data = WithCondition(val_data, prefixes(files["val"]))
        collate = collate_with_condition(pad_id)
        train_dl = DataLoader(crops, batch_size=d.batch_size, shuffle=True, drop_last=len(crops) >= d.batch_size,
                              num_workers=d.num_workers, persistent_workers=d.num_workers > 0,
                              generator=torch.Generator().manual_seed(t.seed), collate_fn=collate)
        val_dl = DataLoader(val_data, batch_size=d.eval_batch_size, collate_fn=collate)
        task = AudioTask(model, t, cond.drop_prob if cond.by else 0.0,
                         job.units.drop_prob if stage_name == "vocoder" else 0.0)
        trainer = step_trainer(t, stage, task.budget)
        seconds = fit_and_validate(trainer, task, train_dl, val_dl)

        model = model.cpu().eval()
        if stage_name == "planner":
            test = score_units(model, files["test"], clip_units(coder, AudioFolder(files["test"], d.sample_rate,
                               quantizer), quantizer), coder.k, prefixes(files["test"]), d.eval_batch_size)
        else:
            test = score_files(model, files["test"], d.sample_rate, quantizer, d.eval_batch_size, t.progress_bar,
                               prefixes(files["test"]), coder)
        write_table(stage / "test.tsv", test)
        steps = int(trainer.global_step)
        metrics = {
            "convention": convention(quantizer, d.sample_rate, d.split, d.test_takes, d.heldout_speakers,
                                     d.test_fraction, d.val_fraction),
            "quantizer": quantizer.config(),
            "parameters": sum(p.numel() for p in model.parameters()),
            "train_threads": torch.get_num_threads(),
            "init_from": t.init_from or None,
            "steps": steps,
            "max_steps": t.max_steps,
            "max_minutes": t.max_minutes,
            "seconds": round(seconds, 3),
            "train_seconds": round(seconds - task.val_seconds, 3),
            "files": {k: len(v) for k, v in files.items()},
            "val_bits_per_sample": task.history["val"][-1][1] / LN2,
            "test_bits_per_sample": test["bits_per_sample"],
            "test_samples": test["samples"],
        }
        if "heldout" in files:
            if stage_name == "planner":
                raise UsageError("data.heldout_speakers: not supported by units.stage planner")
            held = score_files(model, files["heldout"], d.sample_rate, quantizer, d.eval_batch_size, t.progress_bar,
                               prefixes(files["heldout"]), coder)
            write_table(stage / "heldout.tsv", held)
            metrics.update(heldout_speakers=list(d.heldout_speakers), heldout_bits_per_sample=held["bits_per_sample"],
                           heldout_samples=held["samples"])
        extra = {QUANTIZER_FILE: json.dumps(quantizer.config(), indent=1)}
        if cond.by:
            metrics["condition"] = {"by": list(cond.by), "speakers": list(cond.speakers), "drop_prob": cond.drop_prob,
                                    "test_scored_as": "p(x | digit, speaker) of each file's own digit and speaker"}
            extra[CONDITION_FILE] = safetensors_save(model.condition_state_dict())
        if coder is not None:
            extra[UNITS_FILE] = coder.to_bytes()
            metrics["units"] = {"stage": stage_name, "k": coder.k, "hop": coder.spec.hop,
                                "test_scored_as": "p(units | digit, speaker), bits per unit (and per end token)"
                                if stage_name == "planner" else "p(x | units, digit, speaker)"}
        lm.save_pretrained(stage / "model", extra_files=extra)
        seqssm.save_config(job, stage / "config.yaml")
        atomic_write_json(stage / "metrics.json", metrics)
        atomic_write_json(stage / "history.json", task.history)
        plot_curves(task.history, stage / "curves.png", f"{Path(d.folder).name}: {steps} steps",
                    unit="unit" if stage_name == "planner" else "sample")
        publish(stage, out, [name for name in ARTIFACTS if name != "heldout.tsv" or "heldout" in files])
    return metrics

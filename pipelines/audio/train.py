"""`seqssm audio train | eval | generate`: raw audio, one quantised sample per token (SaShiMi, Goel et al. 2022;
Mamba paper section 4.4).

Dimension names: b batch · l samples per crop (data.crop_len) · v vocabulary (2^bits levels).

Training: a folder of audio -> split by file (FSDD by take) -> load, mono, resample, quantise (mu-law or linear)
-> one random crop of l + 1 ids per clip and epoch, short clips padded and masked -> next-sample cross-entropy.
The model is `seqssm.build_model(job.model)` (the multi-scale backbone when model.pool_factors is set); the
LightningModule only wraps it. AdamW (no decay on A_log, D, norms, biases), linear warm-up and cosine decay.
Validation files come out of the training files; the test files (and held-out speakers) are scored once at the
end, whole, in bits per sample, with the convention (quantiser, rate, split) stated beside the number.

Run folder (`--out`): model/ (save_pretrained + quantizer.json), config.yaml, metrics.json, history.json,
curves.png, test.tsv (per-file bits), logs/. Written in a staging folder and moved into place at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from seqssm.pipelines.audio_io import LN2, QUANTIZER_FILE
from seqssm.pipelines.config import AudioJobConfig, UsageError, validate_tree
from seqssm.pipelines import jobcli
from seqssm.pipelines.jobcli import add_train_parser, fit_and_validate, print_resolved
from seqssm.pipelines.runio import atomic_write_json, check_out_dir, publish, staging_dir

ARTIFACTS = ("model", "config.yaml", "metrics.json", "history.json", "curves.png", "test.tsv", "heldout.tsv", "logs")
DEFAULT_CONFIG = "audio_fsdd"


def _task_class():
    import lightning as L

    from seqssm.pipelines.audio_io import nll_sum
    from seqssm.pipelines.jobcli import TimeBudget

    class AudioTask(L.LightningModule):
        """Next-sample cross-entropy over the real (unpadded) samples; keeps the loss history."""

        def __init__(self, model, train_cfg):
            super().__init__()
            self.model, self.train_cfg = model, train_cfg
            self.history: dict[str, list] = {"train": [], "val": []}
            self.val_seconds, self._t0, self._sum, self._count = 0.0, 0.0, 0.0, 0.0
            self.budget = TimeBudget(train_cfg.max_minutes)

        def on_train_epoch_start(self):
            self.trainer.train_dataloader.dataset.set_epoch(self.current_epoch)  # new crops every epoch

        def training_step(self, batch, batch_idx):
            nll, count = nll_sum(self.model, batch["ids"], batch["mask"])
            loss = nll.sum() / count.sum().clamp_min(1)
            self.history["train"].append([self.global_step + 1, float(loss.detach())])
            self.log("train_bits", loss.detach() / LN2, prog_bar=True, on_step=True, on_epoch=False)
            self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
            return loss

        def on_validation_epoch_start(self):
            self._sum, self._count, self._t0 = 0.0, 0.0, time.perf_counter()

        def validation_step(self, batch, batch_idx):
            nll, count = nll_sum(self.model, batch["ids"], batch["mask"])
            self._sum += float(nll.sum())
            self._count += float(count.sum())

        def on_validation_epoch_end(self):
            val = self._sum / max(1.0, self._count)
            self.history["val"].append([int(self.global_step), val])
            self.log("val_bits", val / LN2, prog_bar=True)
            self.val_seconds += time.perf_counter() - self._t0

        def configure_optimizers(self):
            return jobcli.optimizers(self.model, self.train_cfg, self.train_cfg.max_steps, self.budget)

    return AudioTask


def train_audio(job: AudioJobConfig, overwrite: bool = False) -> dict:
    """Train as `job` says, score the test files (and held-out speakers), write the run folder; returns metrics."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    import seqssm
    from seqssm.domains.audio import AudioFolder, RandomCrops, WholeClips, pad_collate
    from seqssm.pipelines.audio_io import WithStart, convention, make_quantizer, score_files, split_files, write_table
    from seqssm.pipelines.lm import _plot_curves

    validate_tree(job)
    d, t = job.data, job.train
    files = split_files(d, t.seed)
    out = check_out_dir(job.out_dir, overwrite)
    job = dataclasses.replace(job, data=dataclasses.replace(d, folder=str(Path(d.folder).resolve())))
    quantizer = make_quantizer(d)
    if t.threads:
        torch.set_num_threads(t.threads)
    with staging_dir(out) as stage:
        L.seed_everything(t.seed, workers=True, verbose=False)
        train_clips = AudioFolder(files["train"], d.sample_rate, quantizer)
        crops = RandomCrops(WithStart(train_clips, quantizer.zero_id), d.crop_len + 1, seed=t.seed)
        train_dl = DataLoader(crops, batch_size=d.batch_size, shuffle=True, drop_last=len(crops) >= d.batch_size,
                              num_workers=d.num_workers, persistent_workers=d.num_workers > 0,
                              generator=torch.Generator().manual_seed(t.seed))
        val_clips = WholeClips(WithStart(AudioFolder(files["val"], d.sample_rate, quantizer), quantizer.zero_id))
        val_dl = DataLoader(val_clips, batch_size=d.eval_batch_size, collate_fn=pad_collate(quantizer.zero_id))
        model = seqssm.build_model(job.model)
        jobcli.init_model(model, t.init_from)
        task = _task_class()(model, t)
        trainer = L.Trainer(
            accelerator=t.accelerator, devices=t.devices, precision=t.precision, max_steps=t.max_steps,
            max_epochs=-1, val_check_interval=min(t.val_every, t.max_steps), check_val_every_n_epoch=None,
            num_sanity_val_steps=0, gradient_clip_val=t.grad_clip if t.grad_clip > 0 else None,
            gradient_clip_algorithm="norm", log_every_n_steps=min(t.log_every, t.max_steps),
            logger=CSVLogger(save_dir=str(stage), name="", version="logs"), enable_checkpointing=False,
            enable_progress_bar=t.progress_bar, enable_model_summary=t.progress_bar,
            deterministic="warn" if t.deterministic else False, default_root_dir=str(stage),
            **task.budget.trainer_kwargs(),
        )
        seconds = fit_and_validate(trainer, task, train_dl, val_dl)

        model = model.cpu().eval()
        test = score_files(model, files["test"], d.sample_rate, quantizer, d.eval_batch_size, t.progress_bar)
        write_table(stage / "test.tsv", test)
        steps = int(trainer.global_step)
        metrics = {
            "convention": convention(d, quantizer),
            "quantizer": quantizer.config(),
            "parameters": sum(p.numel() for p in model.parameters()),
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
            held = score_files(model, files["heldout"], d.sample_rate, quantizer, d.eval_batch_size, t.progress_bar)
            write_table(stage / "heldout.tsv", held)
            metrics.update(heldout_speakers=list(d.heldout_speakers), heldout_bits_per_sample=held["bits_per_sample"],
                           heldout_samples=held["samples"])
        model.save_pretrained(stage / "model", extra_files={QUANTIZER_FILE: json.dumps(quantizer.config(), indent=1)})
        seqssm.save_config(job, stage / "config.yaml")
        atomic_write_json(stage / "metrics.json", metrics)
        atomic_write_json(stage / "history.json", task.history)
        _plot_curves(task.history, stage / "curves.png", f"{Path(d.folder).name}: {steps} steps", unit="sample")
        publish(stage, out, [name for name in ARTIFACTS if name != "heldout.tsv" or "heldout" in files])
    return metrics


# ---------------------------------------------------------------------------------------------- command line


def load_job(config: str | None, overrides=(), data=None, out=None) -> AudioJobConfig:
    return jobcli.load_job(AudioJobConfig, config, DEFAULT_CONFIG, overrides, {"data.folder": data, "out_dir": out})


def _cmd_train(args: argparse.Namespace) -> int:
    job = load_job(args.config, args.set, args.data, args.out)
    if args.print_config:
        return print_resolved(job)
    m = train_audio(job, overwrite=args.overwrite)
    line = (f"seqssm audio train: {m['steps']} steps in {m['seconds']:.0f} s; val {m['val_bits_per_sample']:.4f}, "
            f"test {m['test_bits_per_sample']:.4f} bits per sample ({m['test_samples']} samples)")
    if "heldout_bits_per_sample" in m:
        line += f"; held-out speakers {m['heldout_bits_per_sample']:.4f}"
    print(f"{line}\n  {m['convention']}\n  run folder {job.out_dir}")
    return 0


def _files_of(arg: str) -> list[Path]:
    from seqssm.domains.audio import list_audio_files

    p = Path(arg)
    if p.is_dir():
        return list_audio_files(p)
    if not p.exists():
        raise UsageError(f"--data {arg}: no such file or folder")
    return [p]


def _cmd_eval(args: argparse.Namespace) -> int:
    from seqssm.pipelines.audio_io import load_run, score_files, write_table

    run = load_run(args.model)
    files = _files_of(args.data)
    res = score_files(run.model, files, run.job.data.sample_rate, run.quantizer, args.batch_size or
                      run.job.data.eval_batch_size)
    width = max(len(Path(r["file"]).name) for r in res["per_file"])
    if args.per_file:
        for r in res["per_file"]:
            print(f"{Path(r['file']).name:<{width}}  {r['samples']:>8}  {r['bits_per_sample']:.4f}")
    print(f"{args.data}: {res['bits_per_sample']:.4f} bits per sample over {res['samples']} samples in "
          f"{res['files']} files ({run.quantizer.name}, {run.job.data.sample_rate} Hz)")
    if args.out:
        write_table(args.out, res)
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from seqssm.domains.audio import load_audio, save_wav
    from seqssm.pipelines.audio_io import generate_ids, load_run, plot_clip

    for name, ok, what in (("--seconds", args.seconds > 0, "> 0"), ("--batch", args.batch >= 1, ">= 1"),
                           ("--temperature", args.temperature >= 0, ">= 0"), ("--top-p", 0 < args.top_p <= 1,
                           "in (0, 1]"), ("--threads", args.threads >= 0, ">= 0")):
        if not ok:
            raise UsageError(f"{name}: must be {what}")
    run = load_run(args.model)
    if args.threads:
        torch.set_num_threads(args.threads)
    rate, q = run.job.data.sample_rate, run.quantizer
    prompt = None
    if args.check_parallel and args.prompt:
        raise UsageError("--check-parallel: unconditional generation only (not with --prompt)")
    if args.prompt:
        prompt = q.encode(load_audio(args.prompt, rate)[0])
    n = int(round(args.seconds * rate))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ids, loglik, block_times = generate_ids(run.model, n, args.batch, prompt, args.temperature, args.top_p,
                                            args.seed, q.zero_id)
    seconds = time.perf_counter() - t0
    check = None
    if args.check_parallel:  # the same clips scored by one parallel pass: recurrent and parallel modes must agree
        from seqssm.pipelines.audio_io import nll_sum

        full = torch.cat([torch.full((args.batch, 1), q.zero_id), ids], dim=1)
        with torch.no_grad():
            nll, _ = nll_sum(run.model, full, torch.ones_like(full, dtype=torch.float32))
        check = float(((loglik + nll.double()).abs() / nll.double()).max())
    order = torch.argsort(loglik, descending=True).tolist() if args.rank else list(range(args.batch))
    rows = []
    for rank, i in enumerate(order):
        wave = q.decode(ids[i]).float().numpy()
        name = f"sample_{rank:02d}" if args.rank else f"sample_{i:02d}"
        save_wav(out / f"{name}.wav", wave, rate)
        plot_clip(wave, rate, out / f"{name}.png", f"{name}: {args.seconds:g} s at {rate} Hz, "
                  f"{-loglik[i] / n / LN2:.3f} bits per sample under the model")
        rows.append({"file": f"{name}.wav", "bits_per_sample": float(-loglik[i] / n / LN2)})
    per_block = np.array(block_times) / max(1, n // 10)
    report = {"samples": n, "batch": args.batch, "seconds": round(seconds, 3),
              "samples_per_second": round(n * args.batch / seconds, 1), "real_time_factor": round(seconds / args.seconds, 3),
              "ms_per_step_first_tenth": round(1e3 * float(per_block[0]), 4),
              "ms_per_step_last_tenth": round(1e3 * float(per_block[-1]), 4), "clips": rows}
    if check is not None:
        report["recurrent_vs_parallel_loglik_max_rel_diff"] = check
    atomic_write_json(out / "generate.json", report)
    print(f"seqssm audio generate: {args.batch} x {args.seconds:g} s in {seconds:.1f} s "
          f"({report['samples_per_second']:.0f} samples/s, real-time factor {report['real_time_factor']:.2f}); "
          f"ms per step {report['ms_per_step_first_tenth']:.3f} (first tenth) vs "
          f"{report['ms_per_step_last_tenth']:.3f} (last tenth); files in {out}")
    if check is not None:
        print(f"  log-likelihood, recurrent steps vs one parallel pass: max relative difference {check:.2e}")
    return 0


def register(subparsers) -> None:
    au = subparsers.add_parser("audio", help="raw audio generation: train, eval (bits per sample), generate")
    sub = au.add_subparsers(dest="audio_command", metavar="ACTION")
    sub.required = True

    add_train_parser(sub, "train a next-sample model on a folder of audio; writes a run folder", DEFAULT_CONFIG,
                     "train.max_steps=50",
                     [("--data", "folder of audio files (FSDD layout for data.split=fsdd); sets data.folder")],
                     _cmd_train)

    ev = sub.add_parser("eval", help="bits per sample of a trained run on an audio file or folder")
    ev.add_argument("--model", required=True, help="run folder of 'seqssm audio train'")
    ev.add_argument("--data", required=True, help="an audio file or a folder of them")
    ev.add_argument("--batch-size", type=int, default=0, help="clips per batch (default: data.eval_batch_size)")
    ev.add_argument("--per-file", action="store_true", help="print one line per file")
    ev.add_argument("--out", help="write the per-file table to this TSV")
    ev.set_defaults(func=_cmd_eval)

    ge = sub.add_parser("generate", help="sample audio with the recurrent state; WAV + waveform/spectrogram PNG")
    ge.add_argument("--model", required=True, help="run folder of 'seqssm audio train'")
    ge.add_argument("--out", required=True, help="folder for sample_NN.wav, sample_NN.png and generate.json")
    ge.add_argument("--seconds", type=float, default=1.0)
    ge.add_argument("--batch", type=int, default=1, help="clips sampled together")
    ge.add_argument("--prompt", help="an audio file to continue (default: unconditional)")
    ge.add_argument("--temperature", type=float, default=1.0)
    ge.add_argument("--top-p", type=float, default=1.0)
    ge.add_argument("--seed", type=int, default=0)
    ge.add_argument("--rank", action="store_true", help="name the clips by their own likelihood, best first")
    ge.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ge.add_argument("--check-parallel", action="store_true",
                    help="also score the clips in one parallel pass and report how far it is from the recurrent one")
    ge.set_defaults(func=_cmd_generate)

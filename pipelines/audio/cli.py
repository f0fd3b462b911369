"""The `seqssm audio` subcommand: `train` (pipelines/audio/train.py), `eval` and `generate`
(pipelines/audio/infer.py). Light at import time: Lightning loads only when `train` runs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from seqssm import GenerateConfig
from seqssm.domains.audio import list_audio_files, load_audio, save_wav
from seqssm.pipelines.audio.config import DEFAULT_CONFIG, load_job
from seqssm.pipelines.audio.infer import generate_ids, load_run, nll_sum, plot_clip, score_files, write_table
from seqssm.pipelines.jobconfig import UsageError, add_train_parser, print_resolved
from seqssm.pipelines.rundir import atomic_write_json
from seqssm.pipelines.training import LN2


def _cmd_train(args: argparse.Namespace) -> int:
    job = load_job(args.config, args.set, args.data, args.out)
    if args.print_config:
        return print_resolved(job)
    from seqssm.pipelines.audio.train import train_audio  # Lightning loads here, not for `seqssm info`

    m = train_audio(job, overwrite=args.overwrite)
    line = (f"seqssm audio train: {m['steps']} steps in {m['seconds']:.0f} s; val {m['val_bits_per_sample']:.4f}, "
            f"test {m['test_bits_per_sample']:.4f} bits per sample ({m['test_samples']} samples)")
    if "heldout_bits_per_sample" in m:
        line += f"; held-out speakers {m['heldout_bits_per_sample']:.4f}"
    print(f"{line}\n  {m['convention']}\n  run folder {job.out_dir}")
    return 0


def _files_of(arg: str) -> list[Path]:
    p = Path(arg)
    if p.is_dir():
        return list_audio_files(p)
    if not p.exists():
        raise UsageError(f"--data {arg}: no such file or folder")
    return [p]


def _cmd_eval(args: argparse.Namespace) -> int:
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
    for name, ok, what in (("--seconds", args.seconds > 0, "> 0"), ("--batch", args.batch >= 1, ">= 1"),
                           ("--threads", args.threads >= 0, ">= 0")):
        if not ok:
            raise UsageError(f"{name}: must be {what}")
    GenerateConfig(temperature=args.temperature, top_p=args.top_p, seed=args.seed).validate(as_options=True)
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

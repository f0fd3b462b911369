"""The `seqssm lm` subcommand: `train` (pipelines/lm/train.py) and `sample` (pipelines/lm/sample.py). Light at
import time: the CLI imports every subcommand's parser, and Lightning loads only when `train` runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seqssm import GenerateConfig
from seqssm.pipelines.jobconfig import UsageError, add_train_parser, print_resolved
from seqssm.pipelines.lm.config import DEFAULT_CONFIG, load_job
from seqssm.pipelines.lm.sample import sample_lm


def _cmd_train(args: argparse.Namespace) -> int:
    job = load_job(args.config, args.set, args.data, args.out)
    if args.print_config:
        return print_resolved(job)
    from seqssm.pipelines.lm.train import train_lm  # Lightning loads here, not for `seqssm info`

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

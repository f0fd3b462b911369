"""The `seqssm pretrain` subcommand (the job: pipelines/pretrain/train.py). Light at import time: Lightning loads
only when the job runs."""

from __future__ import annotations

import argparse

from seqssm.domains.dna import genome_cache

from seqssm.pipelines.jobconfig import print_resolved
from seqssm.pipelines.pretrain.config import DEFAULT_CONFIG, load_job, unit_of

def _cmd_pretrain(args: argparse.Namespace) -> int:
    job = load_job(args.config, args.set, args.data, args.out)
    if args.print_config:
        return print_resolved(job)
    from seqssm.pipelines.pretrain.train import pretrain  # Lightning loads here, not for `seqssm info`

    with genome_cache.using(args.cache_dir):
        m = pretrain(job, resume=args.resume)
    if not m:  # a DDP process other than 0: process 0 reports
        return 0
    unit = unit_of(job.data.source)
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
    p.add_argument("--cache-dir", help="genome cache for FASTA indexes and decompressed .gz copies (default: "
                                       "$SEQSSM_CACHE, else ~/.cache/seqssm); nothing is written beside --data")
    p.add_argument("--resume", action="store_true", help="continue from the newest readable checkpoint in --out")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=_cmd_pretrain)

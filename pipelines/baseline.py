"""`seqssm baseline markov`: the order-k Markov baselines of a genome (k = 0 … K, interpolated smoothing, both
strands counted), in bits per nucleotide on its held-out tail — the numbers a DNA language model must beat.

The sequence is every record of the FASTA joined in file order; the last `--holdout` fraction is the test part
(scored with the training part as its left context), the rest trains (see seqssm.domains.dna.markov).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from seqssm.domains.dna import read_fasta
from seqssm.domains.dna.markov import encode, markov_table
from seqssm.pipelines.jobconfig import UsageError
from seqssm.pipelines.rundir import atomic_write_json


def markov_baseline(fasta: str, holdout: float, max_order: int) -> dict:
    if not 0 < holdout < 1:
        raise UsageError(f"--holdout: must be in (0, 1), got {holdout}")
    if not 0 <= max_order <= 13:
        raise UsageError(f"--max-order: must be in [0, 13], got {max_order}")
    t0 = time.perf_counter()
    codes = np.concatenate([encode(r.sequence) for r in read_fasta(fasta)])
    split = len(codes) - int(len(codes) * holdout)
    if split < 1000 or len(codes) - split < 100:
        raise UsageError(f"{fasta}: {len(codes)} bases is too short for --holdout {holdout}")
    rows = markov_table(codes[:split], codes[split:], max_order)
    best = min(rows, key=lambda r: r["bits_per_nt"])
    return {"fasta": fasta, "bases": int(len(codes)), "train_bases": int(split), "test_bases": int(len(codes) - split),
            "smoothing": "hierarchical Dirichlet interpolation, strengths tuned on the training tail",
            "both_strands": True, "rows": rows, "best_order": best["order"], "best_bits_per_nt": best["bits_per_nt"],
            "seconds": round(time.perf_counter() - t0, 1)}


def _cmd_markov(args: argparse.Namespace) -> int:
    res = markov_baseline(args.fasta, args.holdout, args.max_order)
    print(f"{args.fasta}: {res['train_bases']:,} bases train, last {res['test_bases']:,} held out; both strands counted")
    print(f"{'k':>3} {'bits/nt':>8} {'a_k':>7}")
    for r in res["rows"]:
        mark = "  <- best" if r["order"] == res["best_order"] else ""
        print(f"{r['order']:>3} {r['bits_per_nt']:8.4f} {r['alpha']:7g}{mark}")
    if args.out:
        atomic_write_json(args.out, res)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("baseline", help="classical baselines to beat (order-k Markov models of a genome, k-mer logistic regression)")
    sub = p.add_subparsers(dest="baseline_command", metavar="WHAT")
    sub.required = True
    mk = sub.add_parser("markov", help="bits per nucleotide of order-k Markov models on a genome's held-out tail")
    mk.add_argument("--fasta", required=True, help="FASTA (plain or .gz); all records joined in file order")
    mk.add_argument("--holdout", type=float, default=0.1, help="fraction at the end held out as the test part")
    mk.add_argument("--max-order", type=int, default=12, help="largest context length k")
    mk.add_argument("--out", help="also write the table as JSON")
    mk.set_defaults(func=_cmd_markov)
    from seqssm.pipelines import kmer  # light: numpy and torch only

    kmer.register(sub)


__all__ = ["markov_baseline"]

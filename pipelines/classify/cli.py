"""The `seqssm classify` subcommand: `train` (pipelines/classify/train.py), `eval`, `predict` and `embed`
(pipelines/classify/infer.py). Light at import time: Lightning loads only when `train` runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from seqssm.pipelines.classify.config import DEFAULT_CONFIG, load_job
from seqssm.pipelines.classify.infer import embed, evaluate, load_run, predict_tsv
from seqssm.pipelines.jobconfig import UsageError, add_train_parser, print_resolved
from seqssm.pipelines.rundir import atomic_write_json


def _line(name: str, m: dict) -> str:
    return f"{name}: MCC {m['mcc']:.4f}  accuracy {m['accuracy']:.4f}  F1 {m['f1_macro']:.4f}  AUROC {m['auroc']:.4f}"


def _cmd_train(args: argparse.Namespace) -> int:
    job = load_job(args.config, args.set, args.train, args.val, args.test, args.out)
    if args.print_config:
        return print_resolved(job)
    from seqssm.pipelines.classify.train import train_classifier  # Lightning loads here, not for `seqssm info`

    m = train_classifier(job, overwrite=args.overwrite)
    print(f"seqssm classify train: {m['steps']} steps ({m['epochs']} epochs) in {m['seconds']:.1f} s; "
          f"best {m['monitor']} {m['best_value']:.4f} at step {m['best_step']}; run folder {job.out_dir}")
    for split in ("dev", "dev_unique", "test"):
        if m.get(split):
            for mode, v in m[split].items():
                print("  " + _line(f"{split} ({mode})", v))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    run = load_run(args.model)
    d = run.job.data
    if args.rc_conjoin and not run.plugin.strands:
        raise UsageError(f"--rc-conjoin: domain {run.plugin.name!r} has no reverse strand")
    ds = run.plugin.read_labelled(args.data, "--data", d.max_length, d.truncation, run.classes, d.sequence_column,
                                  d.label_column)
    m = evaluate(run.model, run.plugin, run.collate, ds, run.classes, args.batch_size or d.eval_batch_size,
                 args.rc_conjoin)
    m.update(data=str(Path(args.data).resolve()), rc_conjoin=args.rc_conjoin)
    print(_line(f"{args.data} ({'rc_conjoin' if args.rc_conjoin else 'single_strand'})", m) + f"  n {m['n']}")
    if args.out:
        atomic_write_json(args.out, m)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    run = load_run(args.model)
    conjoin = run.job.eval.rc_conjoin and not args.no_rc_conjoin  # the run's eval.rc_conjoin unless turned off
    n = predict_tsv(run, args.data, args.out, args.batch_size or run.job.data.eval_batch_size, conjoin)
    print(f"seqssm classify predict: {n} sequences -> {args.out}")
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    run = load_run(args.model)
    shape = embed(run, args.data, args.out, args.batch_size or run.job.data.eval_batch_size, args.per_position)
    print(f"seqssm classify embed: {shape} -> {args.out}")
    return 0


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from seqssm.pipelines.classify.benchmark import run_benchmark, table_markdown

    only = [t for t in args.tasks.split(",") if t] if args.tasks else None
    rows = run_benchmark(args.suite, args.out, args.config, args.set, args.minutes, args.init_from or "", only,
                         baseline=args.baseline)
    print(table_markdown(rows, args.minutes, args.init_from or ""))
    failed = [r["task"] for r in rows if r["status"] != "ok"]
    print(f"seqssm classify benchmark: {len(rows) - len(failed)} of {len(rows)} tasks done"
          + (f", failed: {', '.join(failed)}" if failed else "") + f"; table in {Path(args.out) / 'results.md'}")
    return 1 if failed else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from seqssm.pipelines.classify.compare import compare_runs

    names = [n for n in args.names.split(",")] if args.names else None
    print(compare_runs(args.runs, args.out, names), end="")
    print(f"seqssm classify compare: {len(args.runs)} runs -> {Path(args.out) / 'compare.md'}")
    return 0


def register(subparsers) -> None:
    cl = subparsers.add_parser("classify",
                               help="sequence classification (DNA, or data.domain): train, eval, predict, embed, "
                                    "benchmark, compare")
    sub = cl.add_subparsers(dest="classify_command", metavar="ACTION")
    sub.required = True

    add_train_parser(sub, "train a classifier on labelled CSV/FASTA; writes a run folder", DEFAULT_CONFIG,
                     "model.n_layer=6", [
                         ("--train", "training CSV (sequence,label) or FASTA (>id label=X); sets data.train"),
                         ("--val", "dev split, for model selection; sets data.val"),
                         ("--test", "test split, scored once at the end; sets data.test")], _cmd_train)

    def common(p, data_help):
        p.add_argument("--model", required=True, help="run folder of 'seqssm classify train'")
        p.add_argument("--data", required=True, help=data_help)
        p.add_argument("--batch-size", type=int, default=0, help="sequences per batch (default: data.eval_batch_size)")

    ev = sub.add_parser("eval", help="metrics of a trained run on a labelled CSV/FASTA")
    common(ev, "labelled CSV or FASTA")
    ev.add_argument("--rc-conjoin", action="store_true", help="average the logits of both strands")
    ev.add_argument("--out", help="also write the metrics to this JSON file")
    ev.set_defaults(func=_cmd_eval)

    pr = sub.add_parser("predict", help="predicted label and class probabilities per sequence, as TSV")
    common(pr, "FASTA or CSV (a label column is not needed)")
    pr.add_argument("--out", required=True, help="TSV to write (id, predicted, p_<class> ...)")
    pr.add_argument("--no-rc-conjoin", action="store_true",
                    help="score the given strand only (default: eval.rc_conjoin of the run)")
    pr.set_defaults(func=_cmd_predict)

    em = sub.add_parser("embed", help="pooled (or per-position) embeddings to .safetensors or .npy")
    common(em, "FASTA or CSV")
    em.add_argument("--out", required=True, help="EMB.safetensors or EMB.npy")
    em.add_argument("--per-position", action="store_true", help="(n, l, d) zero-padded instead of pooled (n, d)")
    em.set_defaults(func=_cmd_embed)

    bm = sub.add_parser("benchmark", help="one config over every task of a suite, beside the k-mer baseline; "
                                          "one table (resumable)")
    bm.add_argument("--suite", required=True, help="folder of task folders, each with train/dev[/test] .csv or .tsv")
    bm.add_argument("--out", required=True, help="run folder (an existing one is resumed: finished tasks are kept)")
    bm.add_argument("--config", help=f"job YAML, or a shipped config name (default: {DEFAULT_CONFIG})")
    bm.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for all tasks")
    bm.add_argument("--minutes", type=float, default=10.0,
                    help="wall-clock budget per task, final scoring included (default 10)")
    bm.add_argument("--init-from", help="fine-tune every task from this pretrained model or run folder")
    bm.add_argument("--tasks", help="only these task folders, comma-separated")
    bm.add_argument("--baseline", default="kmer", help="kmer (default) or none: skip the k-mer baseline of the tasks "
                                                        "trained now (its grid takes long on large tasks)")
    bm.set_defaults(func=_cmd_benchmark)

    cp = sub.add_parser("compare", help="several benchmark runs of one suite side by side (e.g. from scratch "
                                        "against fine-tuned), with the k-mer baseline; one table and plot")
    cp.add_argument("runs", nargs="+", metavar="RUN", help="folders written by `seqssm classify benchmark`")
    cp.add_argument("--out", required=True, help="folder for compare.md, compare.json and compare.png")
    cp.add_argument("--names", help="a display name per run, comma-separated (default: from scratch / "
                                    "<backbone> (fine-tuned))")
    cp.set_defaults(func=_cmd_compare)

"""The `seqssm eval TASK` subcommand: the synthetic tasks (the job: pipelines/synthetic/train.py). The command
keeps its short name; the code is called "synthetic" so that it is not confused with `classify eval` and `audio
eval`, which score trained runs."""

from __future__ import annotations

import argparse
import sys

from omegaconf import OmegaConf

import seqssm
from seqssm.pipelines.jobconfig import UsageError, resolve_config_path
from seqssm.pipelines.synthetic.config import EVAL_JOBS


def default_config_name(task: str) -> str:
    return f"eval_{task.replace('-', '_')}.yaml"


def load_eval_job(task: str, config: str | None, overrides=(), layer=None, compare=None, budget=None, out=None):
    """The job for `task` from a YAML (default: the shipped eval_<task>.yaml) plus the command-line overrides."""
    sets = list(overrides or ())
    if layer is not None:
        sets.append(f"model.layer={layer}")
    if budget is not None:
        sets.append(f"train.budget_seconds={budget}")
    if out is not None:
        sets.append(f"out_dir={out}")
    if compare is not None:
        names = [n.strip() for n in compare.split(",")]
        if not all(names):
            raise UsageError(f"--compare {compare!r}: expected comma-separated layer names, e.g. mamba,attention")
        sets.append(f"compare.layers=[{','.join(names)}]")
    path = resolve_config_path(config or default_config_name(task))
    return seqssm.load_config(EVAL_JOBS[task], str(path), sets)


def _cmd(args: argparse.Namespace) -> int:
    if args.resume is not None or args.score is not None:
        return _long_run_cmd(args)
    if args.combine is not None:
        return _combine_cmd(args)
    if args.budget is not None and args.budget < 0:
        raise UsageError(f"--budget: must be >= 0 seconds (0: no limit), got {args.budget:g}")
    job = load_eval_job(args.task, args.config, args.set, args.layer, args.compare, args.budget, args.out)
    if args.print_config:
        sys.stdout.write(OmegaConf.to_yaml(OmegaConf.structured(job)))
        return 0
    from seqssm.pipelines.synthetic.longrun import run_job  # the heavy part loads only when a job runs

    run_job(job, overwrite=args.overwrite)
    print(f"run folder {job.out_dir}")
    return 0


def _long_run_cmd(args: argparse.Namespace) -> int:
    """--resume RUN (continue a long run from its checkpoint) or --score RUN (score its latest checkpoint)."""
    from seqssm.pipelines.synthetic import longrun  # the heavy part loads only when a job runs

    option, run = ("--resume", args.resume) if args.resume is not None else ("--score", args.score)
    fixed = {"--resume": args.resume if args.score is not None else None, "--config": args.config,
             "--layer": args.layer, "--compare": args.compare, "--print-config": args.print_config or None,
             "--overwrite": args.overwrite or None, "--combine": args.combine}
    if option == "--resume":
        fixed["--out"] = args.out
    else:
        fixed["--budget"] = args.budget
    given = [name for name, value in fixed.items() if value is not None]
    if given:
        raise UsageError(f"{option} {run}: {given[0]} cannot be combined with it (the run's config.yaml is used)")
    if option == "--resume":
        if args.budget is not None and args.budget < 0:
            raise UsageError(f"--budget: must be >= 0 seconds (0: no limit), got {args.budget:g}")
        sets = list(args.set) + ([] if args.budget is None else [f"train.budget_seconds={args.budget}"])
        longrun.resume_run(args.task, run, sets)
        print(f"run folder {run}")
    else:
        longrun.score_run(args.task, run, args.set, args.out)
    return 0


def _combine_cmd(args: argparse.Namespace) -> int:
    from seqssm.pipelines.synthetic import longrun

    runs = [r.strip() for r in args.combine.split(",")]
    if not all(runs):
        raise UsageError(f"--combine {args.combine!r}: expected comma-separated run folders")
    others = [n for n, v in (("--config", args.config), ("--set", args.set or None), ("--layer", args.layer),
                             ("--compare", args.compare), ("--budget", args.budget)) if v is not None]
    if others:
        raise UsageError(f"--combine: {others[0]} cannot be combined with it (it only reads scored runs)")
    if args.out is None:
        raise UsageError("--combine: --out DIR is required (where the table and plot go)")
    longrun.combine_runs(args.task, runs, args.out)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="synthetic tasks: selective copying, induction heads, copy, phonebook")
    p.add_argument("task", choices=list(EVAL_JOBS))
    p.add_argument("--config", help="job YAML, or a shipped config name (default: eval_<task>.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.steps=500")
    p.add_argument("--layer", help="mixer of the model (sets model.layer): mamba, s4d, mamba2, attention")
    p.add_argument("--compare", metavar="L1,L2,...", help="train one model per layer at matched size (compare.layers)")
    p.add_argument("--budget", type=float, help="training seconds per model (sets train.budget_seconds)")
    p.add_argument("--out", help="run folder (sets out_dir)")
    p.add_argument("--overwrite", action="store_true", help="replace this job's files in a non-empty run folder")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--resume", metavar="RUN", help="continue the long run in folder RUN from its last checkpoint")
    p.add_argument("--score", metavar="RUN", help="score the latest checkpoint of long run RUN (finished or still "
                   "running) at eval.lengths (--set eval.*), into RUN/score-step<N> or --out; of a short run, "
                   "every model it saved (RUN/models), into RUN/score or --out")
    p.add_argument("--combine", metavar="RUN1,RUN2,...", help="one table and plot (--out DIR) of the models of "
                   "several scored runs")
    p.set_defaults(func=_cmd)

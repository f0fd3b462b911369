"""Long runs of `seqssm eval TASK` (train.checkpoint_seconds > 0): one model trained for up to hours, checkpointed,
resumable, stopped at zero training loss or a cap, then scored at many lengths, each length saved as it finishes.

Run folder of a long run:
    config.yaml      the resolved job, written before training starts (what --resume and --score read)
    checkpoint.pt    model, optimizer, lr schedule, both random generators and the loop state (step, curriculum
                     position, running statistics); rewritten atomically every train.checkpoint_seconds and when
                     training ends, so a reader (--score on a running run) never sees a partial file
    lengths/L<n>.json  the score at length n, written as soon as that length is done
    metrics.json, table.md, accuracy.png   regenerated from lengths/ after each length

A resumed run repeats exactly the steps the interrupted one would have taken from its last checkpoint: the
batches come from the saved generator, and the loop state is restored. Only the wall-clock rules (the time
budget and its curriculum shares) depend on the machine; with them off (train.budget_seconds 0) an interrupted and
resumed run ends with the same weights bit for bit (tests/pipelines/test_synthetic_longrun.py).

`--score RUN` scores the run's latest checkpoint (finished or not) into RUN/score-step<N>/ (or --out), laid out
like the above without config.yaml and checkpoint.pt.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

import seqssm
from seqssm.atomic import atomic_open, atomic_write_text
from seqssm.config import ConfigError, validate_tree
from seqssm.pipelines.jobconfig import UsageError
from seqssm.pipelines.rundir import atomic_write_json, check_out_dir, publish, staging_dir
from seqssm.pipelines.synthetic import train as E
from seqssm.pipelines.synthetic.config import EVAL_JOBS, EvalJobConfig

CHECKPOINT = "checkpoint.pt"
FORMAT = "seqssm-eval-checkpoint-1"


def save_checkpoint(path: Path, job: EvalJobConfig, layer: str, d_model: int, model, opt, sched, gen,
                    loop: E.LoopState) -> None:
    state = {
        "format": FORMAT,
        "task": job.TASK,
        "layer": layer,
        "d_model": d_model,
        "parameters": E.n_params(model),
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": {"generator": gen.get_state(), "torch": torch.get_rng_state()},
        "loop": dataclasses.asdict(loop),
    }
    with atomic_open(path, "wb") as fh:  # temp file beside it, then rename: never a partial checkpoint
        torch.save(state, fh)


def load_saved(path: Path, option: str, fmt: str, what: str) -> dict:
    """A file torch.save wrote (checkpoint or model), checked for its format; one-line UsageError otherwise."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: say which, in one line
        raise UsageError(f"{option} {path}: not a readable {what} ({type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise UsageError(f"{option} {path}: not a seqssm eval {what} (format {fmt})")
    return state


def load_checkpoint(run: Path, option: str) -> dict:
    path = run / CHECKPOINT
    if not path.is_file():
        raise UsageError(f"{option} {run}: no {CHECKPOINT} there (not a long run of seqssm eval, or it has not "
                         "written its first checkpoint yet)")
    return load_saved(path, option, FORMAT, "checkpoint")


def load_run_job(task: str, run: Path, option: str, overrides=()) -> EvalJobConfig:
    path = run / "config.yaml"
    if not path.is_file():
        raise UsageError(f"{option} {run}: no config.yaml there (not a run folder of seqssm eval)")
    try:
        return seqssm.load_config(EVAL_JOBS[task], str(path), list(overrides))
    except ConfigError:
        other = run_task(run)  # a run of another task fails on its task keys: say so instead
        if other is not None and other != task:
            raise UsageError(f"{option} {run}: a run of task {other}, not {task}") from None
        raise


def run_task(run: Path) -> str | None:
    """The task a run folder's checkpoint (or first saved model) was trained on; None if it has neither."""
    for path in [run / CHECKPOINT, *sorted((run / E.MODELS).glob("*.pt"))][:2]:
        if path.is_file():
            try:
                return torch.load(path, map_location="cpu", weights_only=True).get("task")
            except Exception:  # unreadable: the caller's own checks say so
                return None
    return None


def run_job(job: EvalJobConfig, overwrite: bool = False, log=print) -> dict:
    """`seqssm eval TASK`: a long run (train.checkpoint_seconds > 0) here, any other job by train.run_eval."""
    if job.train.checkpoint_seconds > 0:
        return run_long(job, overwrite=overwrite, log=log)
    return E.run_eval(job, overwrite=overwrite, log=log)


def run_long(job: EvalJobConfig, overwrite: bool = False, log=print, resume: dict | None = None) -> dict:
    """Train (or continue training) the one model of a long run, then score it into the run folder."""
    validate_tree(job)  # a job built in Python gets the checks load_config does
    out = Path(job.out_dir)
    if job.train.threads:
        torch.set_num_threads(job.train.threads)
    if resume is None:
        check_out_dir(out, overwrite)
        layer, d_model, count = E.plan_layers(job)[0]
        out.mkdir(parents=True, exist_ok=True)
        seqssm.save_config(job, out / "config.yaml")
    else:
        layer, d_model, count = resume["layer"], resume["d_model"], resume["parameters"]
    cfg = E.layer_config(job, layer, d_model)
    log(f"seqssm eval {job.TASK} (long run, {out}): {layer} (d_model {d_model}, {count:,} parameters); "
        f"stop rule: {E.stop_rule(job)}; caps: {job.train.steps} steps, "
        + (f"{job.train.budget_seconds / 60:g} min" if job.train.budget_seconds else "no time cap"))
    loop = E.LoopState(**resume["loop"]) if resume is not None else None
    if loop is not None and loop.stopped_by:
        log(f"  training had ended at step {loop.step} ({loop.stopped_by}); scoring only")
        model = seqssm.build_model(cfg)
        model.load_state_dict(resume["model"])
    else:
        if loop is not None:
            log(f"  resuming at step {loop.step} ({loop.seconds / 60:.1f} min trained)")

        def checkpoint(model, opt, sched, gen, st):
            save_checkpoint(out / CHECKPOINT, job, layer, d_model, model, opt, sched, gen, st)

        model, rec = E.train_model(job, cfg, desc=f"train {layer}", checkpoint=checkpoint, resume=resume)
        log(f"  {layer}: {rec['steps']} steps in {rec['train_seconds'] / 60:.1f} min (stopped by "
            f"{rec['stopped_by']}), final train loss {rec['final_train_loss']}, running train accuracy "
            f"{rec['final_train_accuracy']}")
    metrics = score_checkpoint(job, load_checkpoint(out, "--resume"), out, log=log)
    return metrics


# what --resume may change: the caps and the stop rule, never what the steps taken so far depend on
RESUME_KEYS = ("train.steps", "train.budget_seconds", "train.stop_window", "train.stop_loss",
               "train.checkpoint_seconds", "train.progress_bar")


def resume_run(task: str, run: str, overrides=(), log=print) -> dict:
    """`--resume RUN [--set train.steps=..|train.budget_seconds=..|train.stop_window=..|train.stop_loss=..]`:
    continue from the last checkpoint. With new caps or a new stop rule, a run that had stopped trains on (the
    change is written to config.yaml and recorded in the training record's `continued`)."""
    bad = [s for s in overrides if s.split("=", 1)[0].strip() not in RESUME_KEYS]
    if bad:
        raise UsageError(f"--set {bad[0]}: with --resume only {', '.join(RESUME_KEYS)} may be set (--budget too)")
    run_path = Path(run)
    job = load_run_job(task, run_path, "--resume", overrides)
    if job.out_dir != str(run_path):
        job = dataclasses.replace(job, out_dir=str(run_path))  # the folder may have moved since
    state = load_checkpoint(run_path, "--resume")
    if overrides:
        loop = state["loop"]
        if loop["stopped_by"]:
            loop["continued"] = list(loop.get("continued", [])) + [
                {"at_step": loop["step"], "after": loop["stopped_by"], "settings": list(overrides)}]
            loop["stopped_by"] = ""  # the loop checks the caps again; the stop rule after the next step
        seqssm.save_config(job, run_path / "config.yaml")
        log(f"  --resume: {', '.join(overrides)} (written to {run_path / 'config.yaml'})")
    return run_long(job, log=log, resume=state)


# ------------------------------------------------------------------------------------------------- scoring


def score_checkpoint(job: EvalJobConfig, state: dict, out: Path, lengths=None, log=print) -> dict:
    """Score the checkpointed model at eval.lengths (or `lengths`) into `out`: lengths/L<n>.json as each length
    finishes, and metrics.json, table.md, accuracy.png over every length scored there for this step."""
    cfg = E.layer_config(job, state["layer"], state["d_model"])
    model = seqssm.build_model(cfg)
    model.load_state_dict(state["model"])
    loop = E.LoopState(**state["loop"])
    rec = E.training_record(job, loop, list(job.train.curriculum))
    head = {"layer": state["layer"], **E.position_of(job, state["layer"]), "d_model": state["d_model"],
            "parameters": state["parameters"], **rec}
    folder = out / "lengths"
    folder.mkdir(parents=True, exist_ok=True)

    def on_length(length: int, res: dict) -> None:
        atomic_write_json(folder / f"L{length}.json", {"step": loop.step, "length": length, **res})
        metrics = collect(job, head, out, loop.step)
        atomic_write_json(out / "metrics.json", metrics)
        atomic_write_text(out / "table.md", score_table(metrics))
        E.plot_accuracy(metrics, out / "accuracy.png")
        if "accuracy" in res:
            log(f"  L={length}: accuracy {res['accuracy']:.4f} ± {res['stderr']:.4f} ({res['seconds']:.0f} s)")
        else:
            log(f"  L={length}: {res['skipped']}")

    E.evaluate_model(job, model, desc=f"score {state['layer']}", lengths=lengths, on_length=on_length)
    metrics = collect(job, head, out, loop.step)
    log(score_table(metrics))
    return metrics


def collect(job: EvalJobConfig, head: dict, out: Path, step: int) -> dict:
    """The metrics of every length scored in out/lengths for checkpoint `step`."""
    scores = {}
    for p in sorted((out / "lengths").glob("L*.json")):
        res = json.loads(p.read_text())
        if res.pop("step") == step:
            scores[str(res.pop("length"))] = res
    metrics = E.run_metrics(job, [{**head, "eval": scores}], lengths=[int(x) for x in scores])
    metrics["checkpoint_step"] = step
    return metrics


def score_table(metrics: dict) -> str:
    """One row per length: accuracy ± one standard error, whole answers, and where the wrong answers' first
    trigger was (positions before the end)."""
    (r,) = metrics["results"]
    lines = [
        f"{metrics['task']}, {E.layer_name(r)} (d_model {r['d_model']}, {r['parameters']:,} parameters), checkpoint at "
        f"step {r['steps']} ({r['train_seconds'] / 60:.1f} min of training, stopped by {r['stopped_by'] or 'nothing yet'}"
        f"), final train loss {r['final_train_loss']}; token accuracy at the scored positions (chance "
        f"{metrics['chance']:.4f}), {metrics['threads']} torch thread(s)",
        "",
        "| length | accuracy ± s.e. | sequences | wrong: first trigger this far from the end | scoring s |",
        "|---|---|---|---|---|",
    ]
    for x in metrics["lengths"]:
        res = r["eval"][str(x)]
        if "skipped" in res:
            lines.append(f"| {x:,} | not run: {res['skipped']} | | | |")
            continue
        wrong = res.get("wrong_trigger_distances", [])
        shown = ", ".join(f"{d:,}" for d in wrong[:8]) + (f", … ({len(wrong)} in all)" if len(wrong) > 8 else "")
        lines.append(f"| {x:,} | {res['accuracy']:.4f} ± {res['stderr']:.4f} | {res['samples']} | {shown or '—'} | "
                     f"{res['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def score_run(task: str, run: str, overrides=(), out: str | None = None, log=print) -> dict:
    """`--score RUN`: score the latest checkpoint of a finished or running long run, or every saved model of a
    short run (RUN/models) into RUN/score or --out."""
    bad = [s for s in overrides if not s.split("=", 1)[0].startswith(("eval.", "train.progress_bar",
                                                                          "train.threads"))]
    if bad:
        raise UsageError(f"--set {bad[0]}: with --score only eval.*, train.threads and train.progress_bar may be set")
    run_path = Path(run)
    job = load_run_job(task, run_path, "--score", overrides)
    if not (run_path / CHECKPOINT).is_file() and (run_path / E.MODELS).is_dir():  # a run of the short kind
        if job.train.threads:
            torch.set_num_threads(job.train.threads)
        target = Path(out) if out is not None else run_path / "score"
        return score_saved_models(task, job, run_path, check_out_dir(target, overwrite=out is None), log=log)
    state = load_checkpoint(run_path, "--score")
    if state["task"] != task:
        raise UsageError(f"--score {run}: a checkpoint of task {state['task']}, not {task}")
    if job.train.threads:
        torch.set_num_threads(job.train.threads)
    target = Path(out) if out is not None else run_path / f"score-step{state['loop']['step']}"
    if target.exists() and not target.is_dir():
        raise UsageError(f"--out {target}: exists and is not a folder")
    log(f"scoring {run} at step {state['loop']['step']} into {target}: lengths {sorted(set(job.eval.lengths))}")
    return score_checkpoint(job, state, target, log=log)


def score_saved_models(task: str, job: EvalJobConfig, run: Path, out: Path, log=print) -> dict:
    """`--score RUN` for a run of the short kind: score every model in RUN/models at eval.lengths into `out`
    (metrics.json, table.md, accuracy.png; RUN/score by default), e.g. a length the time rule skipped."""
    files = sorted((run / E.MODELS).glob("*.pt"))
    if not files:
        raise UsageError(f"--score {run}: no checkpoint.pt (long run) and no {E.MODELS}/*.pt (models of a run made "
                         "before they were saved cannot be scored again)")
    results = []
    for path in files:
        saved = load_saved(path, "--score", E.MODEL_FORMAT, "model file")
        if saved.get("task") != task:
            raise UsageError(f"--score {path}: a model of task {saved.get('task')}, not {task}")
        head = saved["head"]
        model = seqssm.build_model(E.layer_config(job, head["layer"], head["d_model"]))
        model.load_state_dict(saved["model"])
        log(f"scoring {head['layer']} ({head['steps']} steps of training) at {sorted(set(job.eval.lengths))}")
        results.append({**head, "eval": E.evaluate_model(job, model, desc=f"score {head['layer']}")})
    metrics = E.run_metrics(job, results)
    with staging_dir(out) as stage:
        table = E.write_reports(metrics, stage)
        publish(stage, out, E.REPORTS)
    log(table)
    return metrics


# ------------------------------------------------------------------------------------------------- combining


def combine_runs(task: str, runs: list[str], out: str, log=print) -> dict:
    """`--combine RUN1,RUN2,... --out DIR`: the models of several scored runs (long runs, --score folders,
    --compare runs) in one table and one plot (accuracy against length, log-2 axis, one line per model)."""
    results, first = [], None
    for run in runs:
        path = Path(run) / "metrics.json" if Path(run).is_dir() else Path(run)
        if not path.is_file():
            raise UsageError(f"--combine {run}: no metrics.json there (score the run first)")
        try:
            metrics = json.loads(path.read_text())
            rows = metrics["results"]
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"--combine {path}: not a metrics.json of seqssm eval") from None
        if metrics.get("task") != task:
            raise UsageError(f"--combine {path}: a run of task {metrics.get('task')}, not {task}")
        first = first or metrics
        for r in rows:
            results.append({**r, "threads": metrics.get("threads"), "source": str(path)})
    lengths = sorted({int(x) for r in results for x, res in r["eval"].items() if "accuracy" in res})
    combined = {**first, "results": results, "lengths": lengths,
                "train_lengths": sorted({x for r in results for x in (c["length"] for c in r["curriculum"])})}
    combined.pop("checkpoint_step", None)
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    table = combined_table(combined)
    atomic_write_json(folder / "metrics.json", combined)
    atomic_write_text(folder / "table.md", table)
    plot_combined(combined, folder / "accuracy.png")
    log(table)
    return combined


def combined_table(metrics: dict) -> str:
    """One row per model: size, training (steps, minutes, why it stopped), accuracy at each length ("·": not
    scored at that length in its run, "—": skipped by eval.max_seconds)."""
    lengths = metrics["lengths"]
    label = {2**k: (f"2^{k}") for k in range(40)}
    head = ["layer", "d_model", "parameters", "steps", "train min", "stopped by", "final train loss"]
    head += [label.get(x, str(x)) for x in lengths]
    lines = [f"{metrics['task']}: token accuracy at the scored positions (chance {metrics['chance']:.4f})", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in metrics["results"]:
        cells = [E.layer_name(r), str(r["d_model"]), f"{r['parameters']:,}", f"{r['steps']:,}",
                 f"{r['train_seconds'] / 60:.1f}", r["stopped_by"] or "(running)", str(r["final_train_loss"])]
        for x in lengths:
            res = r["eval"].get(str(x))
            cells.append("·" if res is None else "—" if "skipped" in res else f"{res['accuracy']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_combined(metrics: dict, path: Path) -> None:
    E.plot_accuracy(metrics, path, title=f"{metrics['task']}: trained at lengths <= {max(metrics['train_lengths'])}")

"""`seqssm classify benchmark`: one config over every task of a suite, against the k-mer baseline, in one table.

Per task (pipelines/classify/suite.py finds and checks the splits): `classify train` with the suite's config and
a per-task time budget (the best checkpoint chosen on dev, test scored once, with and without reverse-complement
conjoining), then the k-mer + logistic-regression baseline (pipelines/kmer.py, k and C chosen on dev) on the same
splits. A task that fails (bad input, or an error in training) is named in the table with its one-line reason
and the next task runs.

Run folder RUN:
    suite.json             the suite folder and the resolved config (a resumed run must use the same)
    tasks/<task>/model/    the classify run folder (model, metrics.json, curves.png, ...)
    tasks/<task>/kmer.json the baseline's result
    tasks/<task>/result.json   the task's row; its presence marks the task finished (not rerun on resume)
    results.md, results.json   the table, rewritten after every task
    plots/<task>.png       dev and test MCC of the model beside the baseline (and published references)
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

from omegaconf import OmegaConf

from seqssm.config import validate_tree
from seqssm.pipelines.classify.config import ClassifyJobConfig, load_job
from seqssm.pipelines.classify.suite import TaskError, find_tasks, read_references, read_splits, task_files
from seqssm.pipelines.jobconfig import UsageError
from seqssm.pipelines.rundir import atomic_write_json, save_figure


def _fmt(x, nd: int = 3) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def _mcc(metrics: dict | None, mode: str):
    return None if not metrics else metrics[mode]["mcc"]


BASELINES = ("kmer", "none")


def _run_task(folder: Path, job: ClassifyJobConfig, out: Path, references: dict, log, baseline: str = "kmer") -> dict:
    """Train, score and baseline one task; returns its row (raises TaskError or other exceptions)."""
    from seqssm.pipelines.classify.train import train_classifier  # Lightning loads here
    from seqssm.pipelines.kmer import kmer_baseline, orientation_probe

    tf = task_files(folder)
    splits = read_splits(tf, job.data.max_length, job.data.truncation)
    tr, dv, ts = splits["train"], splits["dev"], splits["test"]
    log(f"[{tf.name}] {len(tr)} train / {len(dv)} dev / {len(ts) if ts else 0} test, classes {tr.classes}; "
        f"duplicates {splits['duplicates']}")
    mdir = out / "model"
    if (mdir / "metrics.json").is_file():  # trained before an interruption: not rerun
        m = json.loads((mdir / "metrics.json").read_text())
        log(f"[{tf.name}] model: reusing {mdir}")
    else:
        task_job = OmegaConf.to_object(OmegaConf.structured(job))  # a fresh copy per task
        d = task_job.data
        d.train, d.val, d.test = str(tf.train), str(tf.dev), str(tf.test) if tf.test else ""
        d.sequence_column, d.label_column = tf.sequence_column, tf.label_column
        task_job.out_dir = str(mdir)
        t0 = time.perf_counter()
        m = train_classifier(task_job, overwrite=True)
        log(f"[{tf.name}] model: {m['steps']} steps in {time.perf_counter() - t0:.0f} s (budget "
            f"{job.train.max_minutes:g} min), best dev {m['monitor']} {m['best_value']:.4f} at step {m['best_step']}")
    # the baseline reads the strands the way the model was trained: both pooled, or the given one for a task the
    # model's orientation probe found oriented (data.orientation; the probe itself when the model skipped it)
    ori = m.get("orientation")
    if ori is None and job.data.orientation == "auto":
        ori = {"oriented": orientation_probe(tr, dv)["oriented"]}
    strands = "forward" if (ori or {}).get("oriented") or job.data.orientation == "oriented" else "both"
    k = None
    if baseline == "kmer":
        kpath = out / "kmer.json"
        k = json.loads(kpath.read_text()) if kpath.is_file() else None
        if k is None or k.get("strands", "both") != strands:  # files from before the strand choice read both
            k = kmer_baseline(tr, dv, ts, strands=strands)
            atomic_write_json(kpath, k)
        log(f"[{tf.name}] k-mer baseline ({k.get('strands', 'both')} strands): k {k['k']} C {k['C']:g}, "
            f"dev MCC {k['dev_mcc']:.4f}, test MCC {_fmt(k['test_mcc'], 4)} ({k['seconds']} s)")
    main = "single_strand" if strands == "forward" or "rc_conjoin" not in m["dev"] else "rc_conjoin"
    return {
        "task": tf.name, "status": "ok", "files": {s: str(getattr(tf, s)) if getattr(tf, s) else None
                                                   for s in ("train", "dev", "test")},
        "n": {"train": len(tr), "dev": len(dv), "test": len(ts) if ts else 0}, "classes": tr.classes,
        "duplicates": splits["duplicates"],
        "model": {
            "d_model": (m.get("sizing") or {}).get("d_model", job.model.d_model),
            "n_layer": (m.get("sizing") or {}).get("n_layer", job.model.n_layer),
            "parameters": m["parameters"], "steps": m["steps"],
            "epochs": m["epochs"], "seconds": m["seconds"], "job_seconds": (m.get("timing") or {}).get("job"),
            "best_step": m["best_step"], "init_from": m.get("init_from"),
            # the model's own scoring (RC-conjoined, or one strand for an oriented task), and one strand
            "scoring": main, "oriented": strands == "forward",
            "dev_mcc": _mcc(m["dev"], main), "dev_mcc_single": _mcc(m["dev"], "single_strand"),
            "dev_unique_mcc": _mcc(m.get("dev_unique"), main),
            "test_mcc": _mcc(m.get("test"), main), "test_mcc_single": _mcc(m.get("test"), "single_strand"),
        },
        "kmer": None if k is None else {"k": k["k"], "C": k["C"], "dev_mcc": k["dev_mcc"], "test_mcc": k["test_mcc"],
                                        "strands": k.get("strands", "both")},
        "references": references.get(tf.name, {}),
    }


def _plot(row: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m, k = row["model"], row["kmer"]
    bars = [("seqssm\n(one strand)" if m.get("oriented") else "seqssm\n(RC conjoined)", m["dev_mcc"], m["test_mcc"])]
    if not m.get("oriented"):
        bars.append(("seqssm\n(one strand)", m["dev_mcc_single"], m["test_mcc_single"]))
    if k is not None:
        bars.append((f"k-mer LR\n(k={k['k']})", k["dev_mcc"], k["test_mcc"]))
    bars += [(name, None, v) for name, v in row["references"].items()]
    fig, ax = plt.subplots(figsize=(1.6 * len(bars) + 2, 3.6), dpi=110)
    w = 0.38
    for i, (_, dev, test) in enumerate(bars):
        for off, val, color, lab in ((-w / 2, dev, "tab:blue", "dev"), (w / 2, test, "tab:orange", "test")):
            if val is not None:
                ax.bar(i + off, val, w, color=color, label=lab if i == 0 or (lab == "test" and dev is None) else None)
                ax.text(i + off, val, f"{val:.3f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
    ax.set_ylabel("MCC")
    ax.set_title(f"{row['task']}: {row['n']['train']} train sequences", fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def table_markdown(rows: list[dict], minutes: float, init_from: str) -> str:
    head = (f"Budget {minutes:g} min per task (training, last validation and final scoring); "
            f"{'fine-tuned from ' + init_from if init_from else 'from scratch'}. MCC; the model's is RC-conjoined "
            "(one strand in brackets), except for a task its orientation probe found oriented (marked: trained "
            "without reverse complements, one strand scored); k-mer = k-mer counts + logistic regression, k and C "
            "chosen on dev, both strands pooled (the given strand only for an oriented task).\n\n"
            "| task | train / dev / test | duplicates train∩dev, train∩test, dev∩test | width×layers, steps (epochs) | "
            "job s | dev MCC | k-mer dev | test MCC | k-mer test (k) | test − k-mer | published (test) |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['task']} | **failed**: {r['error']} | | | | | | | | | |")
            continue
        m, n, d = r["model"], r["n"], r["duplicates"]
        k = r["kmer"] or {"dev_mcc": None, "test_mcc": None, "k": "not run"}
        diff = None if m["test_mcc"] is None or k["test_mcc"] is None else m["test_mcc"] - k["test_mcc"]
        refs = ", ".join(f"{name} {v:.3f}" for name, v in r["references"].items()) or "–"
        dup = ", ".join(str(d[key]) if key in d else "–" for key in ("train_dev", "train_test", "dev_test"))
        lines.append(
            f"| {r['task']}{' (oriented)' if m.get('oriented') else ''} | {n['train']} / {n['dev']} / "
            f"{n['test'] or '–'} | {dup} | "
            f"{m['d_model']}×{m['n_layer']}, {m['steps']} ({m['epochs']:.1f}) | {_fmt(m['job_seconds'], 0)} | {_fmt(m['dev_mcc'])} ({_fmt(m['dev_mcc_single'])}) | "
            f"{_fmt(k['dev_mcc'])} | {_fmt(m['test_mcc'])} ({_fmt(m['test_mcc_single'])}) | "
            f"{_fmt(k['test_mcc'])} ({k['k']}) | {'–' if diff is None else f'{diff:+.3f}'} | {refs} |")
    return head + "\n".join(lines) + "\n"


def main_table(run: str | Path) -> str:
    """The markdown table of a benchmark run folder, from its results.json."""
    res = json.loads((Path(run) / "results.json").read_text())
    return table_markdown(res["tasks"], res["minutes_per_task"], res["init_from"] or "")


def run_benchmark(suite: str, out: str, config: str | None, overrides=(), minutes: float = 10.0,
                  init_from: str = "", only: list[str] | None = None, log=print, baseline: str = "kmer") -> list[dict]:
    """Run (or resume) a benchmark; returns the rows in task order. baseline "none" skips the k-mer baseline of
    the tasks trained now (its grid costs minutes to an hour on a task of tens of thousands of rows)."""
    if baseline not in BASELINES:
        raise UsageError(f"--baseline {baseline}: must be one of {', '.join(BASELINES)}")
    suite_p, out_p = Path(suite).resolve(), Path(out)
    if minutes <= 0:
        raise UsageError(f"--minutes {minutes:g}: must be > 0 (the per-task time budget)")
    job = load_job(config, overrides)
    job.train.max_minutes = minutes
    if init_from:
        if not Path(init_from).exists():
            raise UsageError(f"--init-from {init_from}: no such model or run folder")
        job.train.init_from = str(Path(init_from).resolve())
    validate_tree(job)
    folders = find_tasks(suite_p)
    if only:
        unknown = sorted(set(only) - {f.name for f in folders})
        if unknown:
            raise UsageError(f"--tasks: {', '.join(unknown)} not in {suite_p}")
        folders = [f for f in folders if f.name in only]
    references = read_references(suite_p)
    resolved = OmegaConf.to_container(OmegaConf.structured(job))
    meta = {"suite": str(suite_p), "config": resolved}
    out_p.mkdir(parents=True, exist_ok=True)
    if (out_p / "suite.json").is_file():
        old = json.loads((out_p / "suite.json").read_text())
        if old != meta:
            raise UsageError(f"--out {out_p}: holds a benchmark of another suite or config (suite.json); "
                             "resume it with the same options or choose a new --out")
    else:
        atomic_write_json(out_p / "suite.json", meta)
    (out_p / "plots").mkdir(exist_ok=True)
    rows = []
    for i, folder in enumerate(folders, 1):
        tdir = out_p / "tasks" / folder.name
        done = tdir / "result.json"
        if done.is_file():
            row = json.loads(done.read_text())
            log(f"[{folder.name}] finished before: not rerun ({i}/{len(folders)})")
        else:
            log(f"[{folder.name}] task {i}/{len(folders)} starts")
            tdir.mkdir(parents=True, exist_ok=True)
            try:
                row = _run_task(folder, job, tdir, references, log, baseline)
                atomic_write_json(done, row)
            except (TaskError, UsageError) as err:
                row = {"task": folder.name, "status": "failed", "error": str(err).splitlines()[0]}
            except Exception as err:  # noqa: BLE001 - one task's crash must not stop the suite; its trace is kept
                (tdir / "error.txt").write_text(traceback.format_exc())
                first = (str(err).splitlines() or [""])[0]
                row = {"task": folder.name, "status": "failed",
                       "error": f"{type(err).__name__}: {first} (traceback in {tdir / 'error.txt'})"}
            if row["status"] != "ok":
                log(f"[{folder.name}] failed: {row['error']}")
        if row["status"] == "ok":
            _plot(row, out_p / "plots" / f"{folder.name}.png")
        rows.append(row)
        _write_tables(out_p, rows, minutes, job.train.init_from)
    return rows


def _write_tables(out: Path, rows: list[dict], minutes: float, init_from: str) -> None:
    atomic_write_json(out / "results.json", {"minutes_per_task": minutes, "init_from": init_from or None,
                                             "tasks": rows})
    tmp = out / "results.md.tmp"
    tmp.write_text(table_markdown(rows, minutes, init_from), encoding="utf-8")
    tmp.replace(out / "results.md")


__all__ = ["run_benchmark", "table_markdown"]

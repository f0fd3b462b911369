"""`seqssm classify compare`: several `classify benchmark` runs of one suite side by side, in one table.

The question it answers is "which recipe wins on which task", e.g. from scratch against fine-tuned from a
pretrained backbone: per task, each run's dev and test MCC (RC-conjoined, as the benchmark reports them), the
k-mer baseline's (from the first run that has the task; every run of one suite scores the same splits), and which
run is best on dev (the choice a user could make without looking at test). Tasks missing from a run, or failed
in it, are shown as such, not dropped.

Output folder OUT: compare.md, compare.json and compare.png (test MCC per task, one bar per run, the k-mer
baseline beside them).
"""

from __future__ import annotations

import json
from pathlib import Path

from seqssm.pipelines.jobconfig import UsageError
from seqssm.pipelines.rundir import atomic_write_json, save_figure


def _fmt(x, nd: int = 3) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def load_runs(runs: list[str], names: list[str] | None) -> list[dict]:
    """Each run's results.json with a display name; one-line errors for a folder that is not a benchmark run."""
    if len(runs) < 1:
        raise UsageError("classify compare: give at least one benchmark run folder")
    if names is not None and len(names) != len(runs):
        raise UsageError(f"--names: {len(names)} names for {len(runs)} runs")
    out = []
    for i, run in enumerate(runs):
        path = Path(run) / "results.json"
        if not path.is_file():
            raise UsageError(f"{run}: not a `seqssm classify benchmark` run folder (no results.json)")
        try:
            res = json.loads(path.read_text())
            tasks = {r["task"]: r for r in res["tasks"]}
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise UsageError(f"{path}: not a benchmark results file ({type(err).__name__}: {err})") from None
        default = Path(res["init_from"]).name + " (fine-tuned)" if res.get("init_from") else "from scratch"
        out.append({"name": names[i] if names else default, "run": str(run), "minutes": res.get("minutes_per_task"),
                    "init_from": res.get("init_from"), "tasks": tasks})
    return out


def compare_rows(runs: list[dict]) -> list[dict]:
    """One row per task (in first-seen order): each run's model numbers, the k-mer baseline, the dev winner."""
    order: list[str] = []
    for r in runs:
        order += [t for t in r["tasks"] if t not in order]
    rows = []
    for task in order:
        cells, kmer = [], None
        for r in runs:
            row = r["tasks"].get(task)
            if row is None:
                cells.append({"status": "not run"})
            elif row["status"] != "ok":
                cells.append({"status": "failed", "error": row.get("error", "")})
            else:
                m = row["model"]
                cells.append({"status": "ok", "dev_mcc": m["dev_mcc"], "test_mcc": m["test_mcc"],
                              "oriented": bool(m.get("oriented")),
                              "width": m["d_model"], "layers": m["n_layer"], "steps": m["steps"],
                              "epochs": m["epochs"], "job_seconds": m.get("job_seconds")})
                kmer = kmer or row["kmer"]
        ok = [(i, c) for i, c in enumerate(cells) if c["status"] == "ok" and c["dev_mcc"] is not None]
        best = max(ok, key=lambda ic: ic[1]["dev_mcc"])[0] if ok else None
        rows.append({"task": task, "runs": cells, "kmer": kmer, "best_on_dev": best,
                     "oriented": any(c.get("oriented") for c in cells)})
    return rows


def compare_markdown(runs: list[dict], rows: list[dict]) -> str:
    names = [r["name"] for r in runs]
    head = ("MCC as each run scores it: RC-conjoined, or one strand for a task the orientation probe found oriented "
            "(marked); dev, then test. k-mer = k-mer counts + logistic regression, k and C chosen on dev. "
            "**Bold**: the run best on dev for that task.\n\n"
            "| task | " + " | ".join(f"{n}: dev / test (width×layers, epochs)" for n in names)
            + " | k-mer dev / test | best test − k-mer |\n|---|" + "---|" * (len(names) + 2) + "\n")
    lines = []
    for row in rows:
        parts = []
        for i, c in enumerate(row["runs"]):
            if c["status"] != "ok":
                parts.append(c["status"] + (f": {c['error']}" if c.get("error") else ""))
                continue
            txt = f"{_fmt(c['dev_mcc'])} / {_fmt(c['test_mcc'])}"
            txt = f"**{txt}**" if i == row["best_on_dev"] else txt
            parts.append(f"{txt} ({c['width']}×{c['layers']}, {c['epochs']:.1f})")
        k = row["kmer"] or {}
        best = None if row["best_on_dev"] is None else row["runs"][row["best_on_dev"]]["test_mcc"]
        diff = None if best is None or k.get("test_mcc") is None else best - k["test_mcc"]
        lines.append(f"| {row['task']}{' (oriented)' if row['oriented'] else ''} | " + " | ".join(parts)
                     + f" | {_fmt(k.get('dev_mcc'))} / {_fmt(k.get('test_mcc'))} | "
                     + ("–" if diff is None else f"{diff:+.3f}") + " |")
    runs_txt = "\n".join(f"- {r['name']}: `{r['run']}`, {r['minutes']:g} min per task"
                         + (f", fine-tuned from `{r['init_from']}`" if r["init_from"] else ", from scratch")
                         for r in runs)
    return head + "\n".join(lines) + "\n\nRuns:\n" + runs_txt + "\n"


def _plot(runs: list[dict], rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(runs) + 1  # one bar per run, then the k-mer baseline
    w = 0.8 / n
    fig, ax = plt.subplots(figsize=(1.4 * len(rows) * n / 2 + 2.5, 3.8), dpi=110)
    series = [(r["name"], [c.get("test_mcc") for c in (row["runs"][i] for row in rows)]) for i, r in enumerate(runs)]
    series.append(("k-mer LR", [(row["kmer"] or {}).get("test_mcc") for row in rows]))
    for j, (name, vals) in enumerate(series):
        xs = [i + (j - (n - 1) / 2) * w for i in range(len(rows))]
        pts = [(x, v) for x, v in zip(xs, vals) if v is not None]
        ax.bar([p[0] for p in pts], [p[1] for p in pts], w, label=name,
               color="0.6" if j == n - 1 else None)
        for x, v in pts:
            ax.text(x, v, f"{v:.2f}", ha="center", va="bottom", fontsize=6)
    ax.set_xticks(range(len(rows)), [row["task"] for row in rows], fontsize=8)
    ax.set_ylabel("test MCC")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def compare_runs(runs: list[str], out: str, names: list[str] | None = None) -> str:
    """Write OUT/compare.{md,json,png}; returns the markdown table."""
    loaded = load_runs(runs, names)
    rows = compare_rows(loaded)
    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    md = compare_markdown(loaded, rows)
    atomic_write_json(out_p / "compare.json", {"runs": [{k: r[k] for k in ("name", "run", "minutes", "init_from")}
                                                         for r in loaded], "tasks": rows})
    tmp = out_p / "compare.md.tmp"
    tmp.write_text(md, encoding="utf-8")
    tmp.replace(out_p / "compare.md")
    _plot(loaded, rows, out_p / "compare.png")
    return md


__all__ = ["compare_runs", "compare_rows", "compare_markdown", "load_runs"]

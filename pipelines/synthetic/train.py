"""The job of `seqssm eval TASK`: train small models on a synthetic task and score them at many lengths.

Dimension names used in this file:
    b batch · l input length · m scored positions per row · v vocabulary (the task's token count)

The tasks (synthetic/tasks.py) are the Mamba paper's synthetic tasks (Gu & Dao 2023, section 4.1: selective copying,
induction heads) and the copying / phone-book tasks of Jelassi et al. 2024 ("Repeat After Me", arXiv 2402.01032),
on which attention is expected to beat a fixed-size state. One job trains `model.layer`, or with `--compare`
one model per mixer name, each at about the same parameter count (d_model chosen per layer; the counts are
reported), each with the same time budget.

Training is a plain torch loop (no Lightning: tiny models, and the overhead would dominate on CPU): Adam, a
length curriculum (train.curriculum; the next length once the running train accuracy reaches
train.advance_accuracy, or after an equal share of train.steps or of the time budget), the loss only at the scored positions (the
others are unpredictable by construction). Scoring uses fresh samples from a generator seeded apart from
training's; stacks without attention stream inputs longer than eval.segment with their recurrent state carried
(Backbone.forward(state=..., return_state=True), which equals one pass), so memory stays bounded at 2^16 and
beyond. A length whose scoring time, extrapolated from the previous length (linear for SSMs, quadratic when the
stack has attention), would exceed eval.max_seconds is skipped and marked so.

Run folder: config.yaml (the resolved job), metrics.json, table.md, accuracy.png; staged, then moved into place.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from collections import deque
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

import seqssm
from seqssm.atomic import atomic_write_text
from seqssm.config import validate_tree
from seqssm.layers import Attention
from seqssm.pipelines.jobconfig import UsageError
from seqssm.pipelines.rundir import atomic_write_json, check_out_dir, publish, staging_dir
from seqssm.pipelines.synthetic import tasks as T
from seqssm.pipelines.synthetic.config import EvalJobConfig

ARTIFACTS = ("config.yaml", "metrics.json", "table.md", "accuracy.png")


# ------------------------------------------------------------------------------------------------ task wiring


def task_sampler(job: EvalJobConfig):
    """(b, length, generator) -> EvalBatch for the job's task and settings."""
    t = job.task
    if job.TASK == "selective-copying":
        return lambda b, l, g: T.selective_copying(b, l, t.n_data, t.vocab, g)
    if job.TASK == "induction-heads":
        return lambda b, l, g: T.induction_heads(b, l, t.vocab, g)
    if job.TASK == "copy":
        return lambda b, l, g: T.copy_string(b, l, t.vocab, g)
    if job.TASK == "phonebook":
        return lambda b, l, g: T.phonebook(b, l, t.name_length, t.name_alphabet, t.number_length, g)
    raise RuntimeError(f"no sampler for task {job.TASK!r}")  # a bug: EVAL_JOBS and this list disagree


def chance_accuracy(job: EvalJobConfig) -> float:
    """Token accuracy of a uniform guess among the answers' possible values."""
    return 0.1 if job.TASK == "phonebook" else 1.0 / job.task.vocab


# ------------------------------------------------------------------------------------------------ the models


def layer_config(job: EvalJobConfig, layer: str, d_model: int):
    return dataclasses.replace(job.model, layer=layer, d_model=d_model)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())  # tied embedding and head counted once


def check_layer(job: EvalJobConfig, layer: str, option: str) -> int:
    """Build `layer` at model.d_model (a ConfigError names an unknown layer); refuse a non-causal mixer, which
    would see the answers. Returns the parameter count."""
    try:
        model = seqssm.build_model(layer_config(job, layer, job.model.d_model))
    except seqssm.ConfigError as err:
        raise UsageError(f"{option} {layer}: {err}") from None
    if not all(getattr(blk.mixer, "causal", True) for blk in model.backbone.layers):
        raise UsageError(f"{option} {layer}: the layer is not causal (it reads later positions, where the answers "
                         "are); the synthetic tasks need a causal mixer")
    return n_params(model)


def matched_width(job: EvalJobConfig, layer: str, target: int) -> tuple[int, int]:
    """The d_model (multiple of 8, from d/2 to 2d) whose model has the parameter count closest to `target`, and
    that count. Widths the layer refuses (head or head-dim constraints) are passed over."""
    d0 = job.model.d_model
    best = None
    for d in range(max(8, (d0 // 2) // 8 * 8), 2 * d0 + 1, 8):
        try:
            count = n_params(seqssm.build_model(layer_config(job, layer, d)))
        except seqssm.ConfigError:
            continue
        if best is None or abs(count - target) < abs(best[1] - target):
            best = (d, count)
    if best is None:
        raise UsageError(f"--compare {layer}: no width between {d0 // 2} and {2 * d0} is valid for this layer")
    return best


def streams(model) -> bool:
    """Whether to score long inputs in segments: only stacks without attention (their state is O(1); a KV cache
    would grow and fall back to an explicit mask, costing more than one pass)."""
    return not any(isinstance(blk.mixer, Attention) for blk in model.backbone.layers)


def scored_logits(model, inputs, positions, segment: int = 0):
    """inputs (b, l), positions (m,) -> logits (b, m, v) float32 at those positions only (the LM head runs on m
    positions, not l). segment > 0: run the backbone over segments of that length with the state carried."""
    l = inputs.shape[1]
    if segment <= 0 or l <= segment:
        hidden, _ = model.backbone(inputs)
        picked = hidden[:, positions]
    else:
        parts, state = [], None
        for start in range(0, l, segment):
            hidden, state = model.backbone(inputs[:, start : start + segment], state=state, return_state=True)
            inside = positions[(positions >= start) & (positions < start + segment)]
            parts.append(hidden[:, inside - start])
        picked = torch.cat(parts, dim=1)
    return model.lm_head(picked)[..., : model.config.vocab_size].float()


# ------------------------------------------------------------------------------------------------- training


def train_model(job: EvalJobConfig, cfg, desc: str = "") -> tuple[object, dict]:
    """Train one model on the job's task; returns it and the training record (steps, seconds, curriculum)."""
    t = job.train
    sample = task_sampler(job)
    torch.manual_seed(t.seed)
    model = seqssm.build_model(cfg).train()
    opt = torch.optim.Adam(model.parameters(), lr=t.lr)
    gen = torch.Generator().manual_seed(t.seed)
    stages = list(t.curriculum)
    ends = [math.ceil((i + 1) * t.steps / len(stages)) for i in range(len(stages))]  # equal shares of the steps
    share = t.budget_seconds / len(stages)  # and of the time budget (0: none), whichever ends first
    stage, recent, losses = 0, deque(maxlen=t.window), deque(maxlen=t.window)
    record = [{"length": stages[0], "from_step": 0}]
    stopped_by, step = "steps", 0
    bar = tqdm(total=t.steps, desc=desc, disable=not t.progress_bar, leave=False, dynamic_ncols=True)
    t0 = time.perf_counter()
    for step in range(t.steps):
        if t.budget_seconds and time.perf_counter() - t0 >= t.budget_seconds:
            stopped_by = "budget"
            break
        batch = sample(t.batch_size, stages[stage], gen)
        logits = scored_logits(model, batch.inputs, batch.positions)  # (b, m, v)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        recent.append(float((logits.detach().argmax(-1) == batch.targets).float().mean()))
        losses.append(float(loss.detach()))
        running = sum(recent) / len(recent)
        bar.update(1)
        bar.set_postfix(length=stages[stage], loss=f"{losses[-1]:.3f}", acc=f"{running:.2f}", refresh=False)
        full = len(recent) == t.window
        learned = t.advance_accuracy > 0 and full and running >= t.advance_accuracy
        used_share = step + 1 >= ends[stage] or (share and time.perf_counter() - t0 >= (stage + 1) * share)
        if stage < len(stages) - 1 and (learned or used_share):
            record[-1].update(to_step=step + 1, running_accuracy=round(running, 4))
            stage += 1
            recent.clear()
            record.append({"length": stages[stage], "from_step": step + 1})
    else:
        step = t.steps
    seconds = time.perf_counter() - t0
    bar.close()
    running = sum(recent) / len(recent) if recent else None
    record[-1].update(to_step=step, running_accuracy=None if running is None else round(running, 4))
    return model, {
        "steps": step,
        "train_seconds": round(seconds, 2),
        "stopped_by": stopped_by,
        "curriculum": record,
        "final_length": stages[stage],
        "final_train_loss": round(sum(losses) / len(losses), 5) if losses else None,
        "final_train_accuracy": None if running is None else round(running, 4),
    }


# -------------------------------------------------------------------------------------------------- scoring


def evaluate_model(job: EvalJobConfig, model, desc: str = "") -> dict:
    """Token accuracy and whole-answer accuracy at every eval length (str(length) -> result or skip reason)."""
    e, sample = job.eval, task_sampler(job)
    segment = e.segment if streams(model) else 0
    exponent = 1 if streams(model) else 2  # how scoring time grows with length (attention: quadratic)
    model.eval()
    out, prev = {}, None
    for length in sorted(set(e.lengths)):
        if prev is not None:
            predicted = prev[1] * (length / prev[0]) ** exponent
            if predicted > e.max_seconds:
                out[str(length)] = {"skipped": f"predicted {predicted:.0f} s > eval.max_seconds {e.max_seconds:g}"}
                continue
        gen = torch.Generator().manual_seed(1_000_003 * (job.train.seed + 1) + length)  # apart from training's
        correct = exact = scored = 0
        t0 = time.perf_counter()
        with torch.inference_mode():
            for i in tqdm(range(0, e.samples, e.batch_size), desc=f"{desc} L={length}", leave=False,
                          disable=not job.train.progress_bar, dynamic_ncols=True):
                batch = sample(min(e.batch_size, e.samples - i), length, gen)
                hit = scored_logits(model, batch.inputs, batch.positions, segment).argmax(-1) == batch.targets
                correct += int(hit.sum())
                exact += int(hit.all(dim=1).sum())
                scored += hit.numel()
        seconds = time.perf_counter() - t0
        prev = (length, seconds)
        out[str(length)] = {"accuracy": round(correct / scored, 4), "exact": round(exact / e.samples, 4),
                            "input_length": int(batch.inputs.shape[1]), "seconds": round(seconds, 2)}
    return out


# -------------------------------------------------------------------------------------------------- reports


def markdown_table(metrics: dict) -> str:
    """One row per layer: size, training, then the token accuracy at each length ("—": skipped, see notes)."""
    lengths = metrics["lengths"]
    head = ["layer", "d_model", "parameters", "steps", "train s", "reached length"] + [f"L={x}" for x in lengths]
    lines = [
        f"{metrics['task']}: token accuracy at the scored positions (chance {metrics['chance']:.3f}); "
        f"training budget {metrics['budget_seconds']:g} s per model, {metrics['threads']} torch thread(s)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    notes = []
    for r in metrics["results"]:
        cells = [r["layer"], str(r["d_model"]), f"{r['parameters']:,}", str(r["steps"]), f"{r['train_seconds']:.0f}",
                 str(r["final_length"])]
        for x in lengths:
            res = r["eval"][str(x)]
            if "skipped" in res:
                cells.append("—")
                notes.append(f"{r['layer']} at L={x}: {res['skipped']}")
            else:
                cells.append(f"{res['accuracy']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "Not run: " + "; ".join(notes) + "."]
    return "\n".join(lines) + "\n"


def plot_accuracy(metrics: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for r in metrics["results"]:
        xs = [int(x) for x, res in r["eval"].items() if "accuracy" in res]
        ys = [r["eval"][str(x)]["accuracy"] for x in xs]
        ax.plot(xs, ys, "o-", label=f"{r['layer']} ({r['parameters']:,} params)")
    ax.axhline(metrics["chance"], color="gray", ls="--", lw=1, label="chance")
    for length in metrics["train_lengths"]:
        ax.axvline(length, color="gray", ls=":", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("length (dotted: training lengths)")
    ax.set_ylabel("token accuracy")
    ax.set_title(f"{metrics['task']}, {metrics['budget_seconds']:g} s training budget per model", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


# ------------------------------------------------------------------------------------------------------- job


def plan_layers(job: EvalJobConfig) -> list[tuple[str, int, int]]:
    """(layer, d_model, parameters) per model to train; every layer is checked before any training starts."""
    ref = check_layer(job, job.model.layer, "model.layer")
    if not job.compare.layers:
        return [(job.model.layer, job.model.d_model, ref)]
    plan = []
    for layer in job.compare.layers:
        count = check_layer(job, layer, "--compare")
        d = job.model.d_model
        if job.compare.match_params and layer != job.model.layer:
            d, count = matched_width(job, layer, ref)
        plan.append((layer, d, count))
    return plan


def run_eval(job: EvalJobConfig, overwrite: bool = False, log=print) -> dict:
    """Train and score every planned model, write the run folder job.out_dir; returns the metrics."""
    validate_tree(job)  # a job built in Python gets the checks load_config does
    out = check_out_dir(job.out_dir, overwrite)
    if job.train.threads:
        torch.set_num_threads(job.train.threads)
    plan = plan_layers(job)
    log(f"seqssm eval {job.TASK}: " + ", ".join(f"{l} (d_model {d}, {p:,} parameters)" for l, d, p in plan))
    results = []
    with staging_dir(out) as stage:
        for layer, d_model, count in plan:
            cfg = layer_config(job, layer, d_model)
            model, rec = train_model(job, cfg, desc=f"train {layer}")
            log(f"  {layer}: {rec['steps']} steps in {rec['train_seconds']:.0f} s (stopped by {rec['stopped_by']}), "
                f"reached length {rec['final_length']}, running train accuracy {rec['final_train_accuracy']}")
            scores = evaluate_model(job, model, desc=f"eval {layer}")
            results.append({"layer": layer, "d_model": d_model, "parameters": count, **rec, "eval": scores})
        metrics = {
            "task": job.TASK,
            "chance": chance_accuracy(job),
            "lengths": sorted(set(job.eval.lengths)),
            "train_lengths": list(job.train.curriculum),
            "budget_seconds": job.train.budget_seconds,
            "threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d"),
            "machine": platform.machine(),
            "torch": torch.__version__,
            "results": results,
        }
        table = markdown_table(metrics)
        seqssm.save_config(job, stage / "config.yaml")
        atomic_write_json(stage / "metrics.json", metrics)
        atomic_write_text(stage / "table.md", table)
        plot_accuracy(metrics, stage / "accuracy.png")
        publish(stage, out, ARTIFACTS)
    log(table)
    return metrics

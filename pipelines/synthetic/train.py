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

Training stops at train.steps, at the time budget, or (train.stop_window > 0) at zero training loss: at the last
curriculum length, the last stop_window batches all right and their mean loss below train.stop_loss. Adam's weight
decay is 0 unless set (the Mamba paper uses none for induction heads).

Run folder: config.yaml (the resolved job), metrics.json, table.md, accuracy.png; staged, then moved into place.
With train.checkpoint_seconds > 0 the job is a long run (synthetic/longrun.py): one model, checkpointed and
resumable, each scored length saved as it finishes.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

import seqssm
from seqssm.atomic import atomic_open, atomic_write_text
from seqssm.config import validate_tree
from seqssm.layers import Attention
from seqssm.pipelines.jobconfig import UsageError
from seqssm.pipelines.rundir import atomic_write_json, check_out_dir, publish, staging_dir, save_figure
from seqssm.pipelines.synthetic import tasks as T
from seqssm.pipelines.synthetic.penalty import DecayPenalty
from seqssm.pipelines.synthetic.config import EvalJobConfig

ARTIFACTS = ("config.yaml", "metrics.json", "table.md", "accuracy.png", "models")
REPORTS = ("metrics.json", "table.md", "accuracy.png")  # what --score RUN writes for a run of this kind
MODELS = "models"  # RUN/models/<layer>.pt: each trained model, so skipped lengths can be scored later
MODEL_FORMAT = "seqssm-eval-model-1"


# ------------------------------------------------------------------------------------------------ task wiring


def task_sampler(job: EvalJobConfig):
    """(b, length, generator) -> EvalBatch for the job's task and settings."""
    t = job.task
    if job.TASK == "selective-copying":
        return lambda b, l, g: T.selective_copying(b, l, t.n_data, t.vocab, g)
    if job.TASK == "induction-heads":
        return lambda b, l, g: T.induction_heads(b, l, t.vocab, g, t.trigger_within)
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
    if job.train.dt_penalty > 0:
        try:
            DecayPenalty(model, job.train.dt_penalty_floor).remove()
        except UsageError:
            raise UsageError(f"{option} {layer}: train.dt_penalty needs a Mamba or Mamba-2 layer to penalise "
                             "(set it to 0 for this layer)") from None
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


def scored_logits(model, inputs, positions, segment: int = 0, progress=None):
    """inputs (b, l), positions (m,) -> logits (b, m, v) float32 at those positions only (the LM head runs on m
    positions, not l). segment > 0: run the backbone over segments of that length with the state carried.
    progress: called with the number of input positions done after each segment."""
    l = inputs.shape[1]
    if segment <= 0 or l <= segment:
        hidden, _ = model.backbone(inputs)
        picked = hidden[:, positions]
        if progress is not None:
            progress(l)
    else:
        parts, state = [], None
        for start in range(0, l, segment):
            hidden, state = model.backbone(inputs[:, start : start + segment], state=state, return_state=True)
            inside = positions[(positions >= start) & (positions < start + segment)]
            parts.append(hidden[:, inside - start])
            if progress is not None:
                progress(hidden.shape[1])
        picked = torch.cat(parts, dim=1)
    return model.lm_head(picked)[..., : model.config.vocab_size].float()


# ------------------------------------------------------------------------------------------------- training


@dataclass
class LoopState:
    """The training loop's own state, beside the model's, the optimizer's and the random generators': what a
    checkpoint carries so that a resumed run takes exactly the steps an uninterrupted one would."""

    step: int = 0  # optimizer steps taken
    stage: int = 0  # index into train.curriculum
    seconds: float = 0.0  # training seconds so far, over every session of the run
    record: list = field(default_factory=list)  # one entry per curriculum stage reached
    recent: list = field(default_factory=list)  # batch accuracies of the last train.window steps
    losses: list = field(default_factory=list)  # batch losses of the last train.window steps
    tail: list = field(default_factory=list)  # (loss, every prediction right) of the last train.stop_window steps
    stopped_by: str = ""  # "", or why training ended: steps, budget, zero loss
    continued: list = field(default_factory=list)  # a stopped run resumed with new caps or stop rule: when, why


def make_optimizer(job: EvalJobConfig, model):
    """Adam (weight decay as its L2 term, default none) and the learning-rate schedule, stepped once per step."""
    t = job.train
    opt = torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    if t.lr_schedule == "cosine":  # lr -> lr / 10 over train.steps, then flat
        factor = lambda s: 0.1 + 0.45 * (1 + math.cos(math.pi * min(s, t.steps) / t.steps))  # noqa: E731
    else:
        factor = lambda s: 1.0  # noqa: E731
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def stop_rule(job: EvalJobConfig) -> str:
    t = job.train
    if not t.stop_window:
        return "none (train.stop_window 0)"
    return (f"zero training loss: at the last curriculum length ({t.curriculum[-1]}), the last {t.stop_window} "
            f"batches ({t.stop_window * t.batch_size} sequences) all right and their mean loss < {t.stop_loss:g}")


def train_model(job: EvalJobConfig, cfg, desc: str = "", checkpoint=None, resume: dict | None = None):
    """Train one model on the job's task; returns it and the training record (steps, seconds, curriculum).

    checkpoint: callable(model, opt, sched, gen, loop) that saves them (a long run: called every
    train.checkpoint_seconds and once when training ends). resume: a checkpoint's contents to continue from."""
    t = job.train
    sample = task_sampler(job)
    torch.manual_seed(t.seed)
    model = seqssm.build_model(cfg).train()
    penalty = DecayPenalty(model, t.dt_penalty_floor) if t.dt_penalty > 0 else None
    opt, sched = make_optimizer(job, model)
    gen = torch.Generator().manual_seed(t.seed)
    stages = list(t.curriculum)
    st = LoopState(record=[{"length": stages[0], "from_step": 0}])
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        gen.set_state(resume["rng"]["generator"])
        torch.set_rng_state(resume["rng"]["torch"])
        st = LoopState(**resume["loop"])
    ends = [math.ceil((i + 1) * t.steps / len(stages)) for i in range(len(stages))]  # equal shares of the steps
    share = t.budget_seconds / len(stages)  # and of the time budget (0: none), whichever ends first
    recent, losses = deque(st.recent, maxlen=t.window), deque(st.losses, maxlen=t.window)
    tail = deque(st.tail, maxlen=max(1, t.stop_window))
    interactive = sys.stderr.isatty()
    bar = tqdm(total=t.steps, initial=st.step, desc=desc, disable=not t.progress_bar, leave=not interactive,
               dynamic_ncols=True, mininterval=0.5 if interactive else 30.0)
    t0, before = time.perf_counter(), st.seconds
    last_save = t0

    def sync() -> None:
        st.seconds = before + time.perf_counter() - t0
        st.recent, st.losses, st.tail = list(recent), list(losses), [list(x) for x in tail]

    while not st.stopped_by:
        elapsed = before + time.perf_counter() - t0
        if st.step >= t.steps:
            st.stopped_by = "steps"
            break
        if t.budget_seconds and elapsed >= t.budget_seconds:
            st.stopped_by = "budget"
            break
        batch = sample(t.batch_size, stages[st.stage], gen)
        logits = scored_logits(model, batch.inputs, batch.positions)  # (b, m, v)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1))
        total = loss if penalty is None else loss + t.dt_penalty * penalty.take()
        opt.zero_grad(set_to_none=True)
        total.backward()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        sched.step()
        st.step += 1
        hit = logits.detach().argmax(-1) == batch.targets
        recent.append(float(hit.float().mean()))
        losses.append(float(loss.detach()))
        running = sum(recent) / len(recent)
        bar.update(1)
        bar.set_postfix(length=stages[st.stage], loss=f"{losses[-1]:.4f}", acc=f"{running:.3f}", refresh=False)
        last = st.stage == len(stages) - 1
        if last and t.stop_window:
            tail.append((losses[-1], bool(hit.all())))
            if len(tail) == t.stop_window and all(ok for _, ok in tail) and \
                    sum(x for x, _ in tail) / len(tail) < t.stop_loss:
                st.stopped_by = "zero loss"
        full = len(recent) == t.window
        learned = t.advance_accuracy > 0 and full and running >= t.advance_accuracy
        used_share = st.step >= ends[st.stage] or (share and elapsed >= (st.stage + 1) * share)
        if not last and (learned or used_share):
            st.record[-1].update(to_step=st.step, running_accuracy=round(running, 4))
            st.stage += 1
            recent.clear()
            st.record.append({"length": stages[st.stage], "from_step": st.step})
        if checkpoint is not None and time.perf_counter() - last_save >= t.checkpoint_seconds:
            sync()
            checkpoint(model, opt, sched, gen, st)
            last_save = time.perf_counter()
            if t.progress_bar:  # the progress line's companion; quiet runs stay quiet
                bar.write(f"checkpoint at step {st.step} ({st.seconds / 60:.1f} min, loss {losses[-1]:.4f}, running "
                          f"accuracy {running:.3f})", file=sys.stderr)
    sync()
    bar.close()
    if penalty is not None:
        penalty.remove()  # scoring runs the same model: no hooks there
    running = sum(recent) / len(recent) if recent else None
    st.record[-1].update(to_step=st.step, running_accuracy=None if running is None else round(running, 4))
    if checkpoint is not None:
        checkpoint(model, opt, sched, gen, st)  # the final one: its loop state says why training ended
    return model, training_record(job, st, stages)


def training_record(job: EvalJobConfig, st: LoopState, stages) -> dict:
    running = sum(st.recent) / len(st.recent) if st.recent else None
    return {
        "steps": st.step,
        "train_seconds": round(st.seconds, 2),
        "stopped_by": st.stopped_by,
        "stop_rule": stop_rule(job),
        "curriculum": st.record,
        "final_length": stages[st.stage],
        "final_train_loss": float(f"{sum(st.losses) / len(st.losses):.3g}") if st.losses else None,  # 3 digits
        "final_train_accuracy": None if running is None else round(running, 4),
        "continued": st.continued,
        "weight_decay": job.train.weight_decay,
        "lr_schedule": job.train.lr_schedule,
        "dt_penalty": job.train.dt_penalty,
    }


# -------------------------------------------------------------------------------------------------- scoring


def first_trigger_distance(job: EvalJobConfig, inputs: torch.Tensor) -> torch.Tensor | None:
    """Induction heads: (b,) distance from the first trigger to the last position (how far back the answer
    lies); None for the other tasks."""
    if job.TASK != "induction-heads":
        return None
    first = (inputs == job.task.vocab).int().argmax(dim=1)  # the first True; the trigger is also last
    return inputs.shape[1] - 1 - first


def score_length(job: EvalJobConfig, model, length: int, desc: str = "") -> dict:
    """Token accuracy at one length over eval.samples fresh sequences: its standard error (binomial, over the
    scored tokens), whole-answer accuracy, and for induction heads the trigger distances of the wrong answers."""
    e, sample = job.eval, task_sampler(job)
    segment = e.segment if streams(model) else 0
    gen = torch.Generator().manual_seed(1_000_003 * (job.train.seed + 1) + length)  # apart from training's
    correct = exact = scored = 0
    wrong_distances: list[int] = []
    t0 = time.perf_counter()
    n_batches = math.ceil(e.samples / e.batch_size)
    with torch.inference_mode(), tqdm(total=n_batches * length, desc=f"{desc} L={length}", unit="pos",
                                      unit_scale=True, leave=False, disable=not job.train.progress_bar,
                                      dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 30.0) as bar:
        for i in range(0, e.samples, e.batch_size):
            b = min(e.batch_size, e.samples - i)
            batch = sample(b, length, gen)
            logits = scored_logits(model, batch.inputs, batch.positions, segment, progress=bar.update)
            hit = logits.argmax(-1) == batch.targets  # (b, m)
            correct += int(hit.sum())
            exact += int(hit.all(dim=1).sum())
            scored += hit.numel()
            dist = first_trigger_distance(job, batch.inputs)
            if dist is not None:
                wrong_distances += dist[~hit.all(dim=1)].tolist()
    acc = correct / scored
    out = {"accuracy": round(acc, 4), "stderr": round(math.sqrt(acc * (1 - acc) / scored), 4),
           "exact": round(exact / e.samples, 4), "samples": e.samples, "scored_tokens": scored,
           "input_length": int(batch.inputs.shape[1]), "seconds": round(time.perf_counter() - t0, 2),
           "segment": segment}
    if job.TASK == "induction-heads":
        out["wrong_trigger_distances"] = sorted(wrong_distances)
    return out


def predicted_seconds(timed: list, length: int, exponent: float) -> float:
    """Scoring time of `length` extrapolated from the last scored one as time ~ length^k. k is the model's
    nominal growth (1 streamed, 2 attention) or, when the last two lengths each took at least a second, the growth
    measured between them if steeper: attention's time grew 8x from 2^12 to 2^13 here (cache effects), not 4x."""
    (l1, t1) = timed[-1]
    if len(timed) >= 2 and min(timed[-2][1], t1) >= 1.0:
        (l0, t0) = timed[-2]
        exponent = max(exponent, math.log(t1 / t0) / math.log(l1 / l0))
    return t1 * (length / l1) ** exponent


def evaluate_model(job: EvalJobConfig, model, desc: str = "", lengths=None, on_length=None) -> dict:
    """Token accuracy and whole-answer accuracy at every eval length (str(length) -> result or skip reason).
    lengths: instead of eval.lengths; on_length(length, result) is called as each one is done."""
    e = job.eval
    model.eval()
    out, timed = {}, []  # timed: (length, seconds) of the lengths scored so far
    for length in sorted(set(e.lengths if lengths is None else lengths)):
        if timed:
            predicted = predicted_seconds(timed, length, 1 if streams(model) else 2)
            if predicted > e.max_seconds:
                out[str(length)] = {"skipped": f"predicted {predicted:.0f} s > eval.max_seconds {e.max_seconds:g}"}
                if on_length is not None:
                    on_length(length, out[str(length)])
                continue
        t0 = time.perf_counter()
        out[str(length)] = res = score_length(job, model, length, desc)
        timed.append((length, time.perf_counter() - t0))  # unrounded: a short length's rounded seconds may be 0
        if on_length is not None:
            on_length(length, res)
    return out


# -------------------------------------------------------------------------------------------------- reports


def position_of(job: EvalJobConfig, layer: str) -> dict:
    """{"position": rope | alibi | none} for an attention row (what sets its extrapolation), {} otherwise."""
    return {"position": job.model.attention.position} if layer == "attention" else {}


def layer_name(r: dict) -> str:
    """A result row's layer as tables and plots show it: "attention (alibi)", "mamba", "mamba + Δ penalty 0.001"."""
    name = f"{r['layer']} ({r['position']})" if r.get("position") else r["layer"]
    return name + (f" + Δ penalty {r['dt_penalty']:g}" if r.get("dt_penalty") else "")


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
        cells = [layer_name(r), str(r["d_model"]), f"{r['parameters']:,}", str(r["steps"]), f"{r['train_seconds']:.0f}",
                 str(r["final_length"])]
        for x in lengths:
            res = r["eval"][str(x)]
            if "skipped" in res:
                cells.append("—")
                notes.append(f"{layer_name(r)} at L={x}: {res['skipped']}")
            else:
                cells.append(f"{res['accuracy']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "Not run: " + "; ".join(notes) + "."]
    return "\n".join(lines) + "\n"


def plot_accuracy(metrics: dict, path: Path, title: str | None = None) -> None:
    """Accuracy against length (log-2 axis), one line per layer, error bars where a standard error was measured;
    a layer's label gives its steps and minutes when the run recorded them (long runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=110)
    if len(metrics["results"]) > 10:  # the default cycle repeats after 10 colours: two lines would look like one
        ax.set_prop_cycle(color=[plt.cm.tab20(i) for i in range(20)])
    for r in metrics["results"]:
        xs = sorted(int(x) for x, res in r["eval"].items() if "accuracy" in res)
        ys = [r["eval"][str(x)]["accuracy"] for x in xs]
        err = [r["eval"][str(x)].get("stderr", 0.0) for x in xs]
        label = f"{layer_name(r)} ({r['parameters']:,} params"
        if "steps" in r and "train_seconds" in r:
            label += f", {r['steps']:,} steps, {r['train_seconds'] / 60:.0f} min"
        ax.errorbar(xs, ys, yerr=err, fmt="o-", ms=3, capsize=2, label=label + ")")
    ax.axhline(metrics["chance"], color="gray", ls="--", lw=1, label="chance")
    for length in metrics["train_lengths"]:
        ax.axvline(length, color="gray", ls=":", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_ylim(-0.02, 1.04)
    ax.set_xlabel("length (dotted: training lengths)")
    ax.set_ylabel("accuracy (± one standard error)")
    ax.set_title(title or f"{metrics['task']}, {metrics['budget_seconds']:g} s training budget per model", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.tight_layout()
    save_figure(fig, path)


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


def run_metrics(job: EvalJobConfig, results: list, lengths=None) -> dict:
    """metrics.json of a run: the job's settings, the machine, and one result per model."""
    return {
        "task": job.TASK,
        "chance": chance_accuracy(job),
        "lengths": sorted(set(job.eval.lengths if lengths is None else lengths)),
        "train_lengths": list(job.train.curriculum),
        "budget_seconds": job.train.budget_seconds,
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "results": results,
    }


def run_eval(job: EvalJobConfig, overwrite: bool = False, log=print) -> dict:
    """Train and score every planned model, write the run folder job.out_dir; returns the metrics."""
    validate_tree(job)  # a job built in Python gets the checks load_config does
    if job.train.checkpoint_seconds > 0:  # a bug in the caller: the CLI sends long runs to longrun.run_job
        raise RuntimeError("train.checkpoint_seconds > 0: a long run; call synthetic.longrun.run_job")
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
            head = {"layer": layer, **position_of(job, layer), "d_model": d_model, "parameters": count, **rec}
            save_model(stage / MODELS / f"{layer}.pt", job, head, model)
            results.append({**head, "eval": evaluate_model(job, model, desc=f"eval {layer}")})
        metrics = run_metrics(job, results)
        seqssm.save_config(job, stage / "config.yaml")
        table = write_reports(metrics, stage)
        publish(stage, out, ARTIFACTS)
    log(table)
    return metrics


def write_reports(metrics: dict, folder: Path) -> str:
    """metrics.json, table.md and accuracy.png of a run into `folder`; returns the table."""
    table = markdown_table(metrics)
    atomic_write_json(folder / "metrics.json", metrics)
    atomic_write_text(folder / "table.md", table)
    plot_accuracy(metrics, folder / "accuracy.png")
    return table


def save_model(path: Path, job: EvalJobConfig, head: dict, model) -> None:
    """One trained model of a run with what its row of the table needs (layer, width, training record)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as fh:
        torch.save({"format": MODEL_FORMAT, "task": job.TASK, "head": head, "model": model.state_dict()}, fh)

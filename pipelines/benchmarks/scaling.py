"""`seqssm bench scaling`: time and peak memory against sequence length, for every mixer at equal width.

Dimension names used in this file:
    b batch (1) · l sequence length · d model width

For each layer (mamba, mamba2, s4d, attention; 2 layers of width d, batch 1, byte vocabulary) and each length,
two cases, each in a fresh process (measure.run_case), so that the peak resident memory is the case's own:

    forward   one pass over l tokens (no grad) returning the recurrent state / KV cache, then `decode_steps`
              decoding steps from that state: time per token of the pass, median time of one decoding step after
              l tokens of context (O(1) in l for the SSMs, O(l) for attention: its KV cache, section 3.3 of the
              Mamba paper against Vaswani et al.)
    train     forward and backward of the next-token loss over l tokens

The Mamba paper's claim (section 4.5, "linear scaling in sequence length") is that the SSMs' time per token stays
flat while attention's grows with l. Longer lengths are skipped, and the reason written down, when the time
extrapolated from the previous length (exponent 1 for the SSMs, 2 for attention) exceeds --cap-seconds or the
extrapolated peak memory exceeds --cap-gb; a case that runs past 3 x --cap-seconds is killed and recorded so.

"mamba2-ssd" is not a mixer but the SSD op alone (ssd_scan, the model's scan_backend) at the shapes one mamba2
layer of the same width gives it (batch 1, heads d_inner / headdim, headdim, d_state, ngroups): forward with the
final state, one decoding step (ssd_state_update), and forward + backward of a fixed random projection of y;
one call, not two layers. It separates the op's scaling from the rest of the layer (projections, conv, norm).
Every case records all its repetition times and their minimum besides the median (`--min-reps` forces more
repetitions at long lengths, where one repetition already exceeds the 1 s budget), so that noise from other
processes on the machine shows.

Outputs: --out (JSON), and next to it the same stem with .md (tables and the summary) and .png (time per token vs
length, log-log).
"""

from __future__ import annotations

import statistics
import time
from seqssm.pipelines.rundir import save_figure
from pathlib import Path

LAYERS = ("mamba", "mamba2", "s4d", "attention", "mamba2-ssd")
OP_LAYERS = ("mamba2-ssd",)  # an op alone at a layer's shapes, not a model
MODES = ("forward", "train")
DEFAULT_LENGTHS = (1024, 4096, 16384, 65536, 262144, 1048576)


# ------------------------------------------------------------------------------------------------ worker side


def _case_ssd_op(mode: str, length: int, d_model: int, decode_steps: int, repeat) -> dict:
    """The SSD op alone at one mamba2 layer's shapes (see the module docstring)."""
    import torch

    from seqssm import ModelConfig
    from seqssm.kernels import ssd_scan, ssd_state_update

    cfg = ModelConfig(d_model=d_model, n_layer=2, vocab_size=256, layer="mamba2")
    p, g, n = cfg.mamba2.headdim, cfg.mamba2.ngroups, cfg.ssm.d_state
    h = cfg.d_inner // p
    x, B, C = torch.randn(1, length, h, p), torch.randn(1, length, g, n), torch.randn(1, length, g, n)
    dt = torch.empty(1, length, h).uniform_(cfg.ssm.dt_min, cfg.ssm.dt_max)  # Δ after softplus, as initialised
    A, D = -torch.empty(h).uniform_(1, 16), torch.ones(h)
    shape = {"heads": h, "headdim": p, "d_state": n, "ngroups": g, "backend": cfg.scan_backend}
    warm = [t[:, :256].clone().requires_grad_() for t in (x, dt, B, C)]  # untimed: first-call allocations
    ssd_scan(warm[0], warm[1], A, warm[2], warm[3], D, backend=cfg.scan_backend).sum().backward()
    if mode == "forward":
        with torch.no_grad():
            seconds, times = repeat(lambda: ssd_scan(x, dt, A, B, C, D, return_final_state=True,
                                                     backend=cfg.scan_backend))
            state, steps = torch.zeros(1, h, p, n), []
            for t in range(decode_steps + 3):  # 3 untimed warm-up steps
                t0 = time.perf_counter()
                ssd_state_update(state, x[:, t % length], dt[:, t % length], A, B[:, t % length],
                                 C[:, t % length], D, backend=cfg.scan_backend)
                steps.append(time.perf_counter() - t0)
        return dict(shape, seconds=seconds, times=times, decode_ms=1e3 * statistics.median(steps[3:]),
                    decode_steps=decode_steps)
    leaves = [t.requires_grad_() for t in (x, dt, A, B, C, D)]
    dy = torch.randn(x.shape)

    def train():
        ssd_scan(*leaves, backend=cfg.scan_backend).backward(dy)
        for t in leaves:
            t.grad = None

    seconds, times = repeat(train)
    return dict(shape, seconds=seconds, times=times)


def case_scaling(layer: str, mode: str, length: int, d_model: int, threads: int, decode_steps: int,
                 min_seconds: float = 1.0, max_reps: int = 5, min_reps: int = 1) -> dict:
    """One timed case (runs inside the fresh process). Short cases repeat until min_seconds (at least min_reps
    times, at most max(max_reps, min_reps)); the median counts, the minimum and every time are recorded too."""
    import torch
    import torch.nn.functional as F

    from seqssm import MambaLM, ModelConfig
    from seqssm.pipelines.benchmarks.measure import peak_rss_gb

    torch.set_num_threads(threads)
    torch.manual_seed(0)

    cpu_times: list[float] = []  # process CPU time of each repetition: what a busy machine's scheduling leaves out

    def repeat(fn) -> tuple[float, list[float]]:
        times = []
        cpu_times.clear()
        while len(times) < min_reps or (sum(times) < min_seconds and len(times) < max_reps):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
        return statistics.median(times), times

    def finish(out: dict, seconds: float, times: list[float]) -> dict:
        out.update(seconds=seconds, reps=len(times), us_per_token=1e6 * seconds / length,
                   us_per_token_min=1e6 * min(times) / length, times=times, cpu_times=list(cpu_times),
                   us_per_token_cpu_min=1e6 * min(cpu_times) / length, peak_rss_gb=peak_rss_gb())
        return out

    if mode not in MODES:
        raise ValueError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")
    out = {"layer": layer, "mode": mode, "length": length, "d_model": d_model, "threads": threads}
    if layer in OP_LAYERS:
        res = _case_ssd_op(mode, length, d_model, decode_steps, repeat)
        seconds, times = res.pop("seconds"), res.pop("times")
        return finish({**out, "parameters": 0, **res}, seconds, times)
    model = MambaLM(ModelConfig(d_model=d_model, n_layer=2, vocab_size=256, layer=layer))
    ids = torch.randint(0, 256, (1, length + 1))
    x, y = ids[:, :-1], ids[0, 1:]
    out["parameters"] = sum(p.numel() for p in model.parameters())
    if mode == "forward":
        model.eval()
        with torch.inference_mode():
            model(x[:, :256])  # warm-up: first-call allocations
            held = {}

            def forward():
                held["logits"], held["state"] = model(x, return_state=True)

            seconds, times = repeat(forward)
            state, tok = held.pop("state"), ids[:, -1]
            held.clear()
            for _ in range(3):  # warm-up of the step path (not timed)
                tok = model.step(tok, state).argmax(-1)
            steps = []
            for _ in range(decode_steps):
                t0 = time.perf_counter()
                tok = model.step(tok, state).argmax(-1)
                steps.append(time.perf_counter() - t0)
        out["decode_ms"] = 1e3 * statistics.median(steps)
        out["decode_steps"] = decode_steps
    elif mode == "train":
        model.train()

        def train(l=length):
            logits = model(x[:, :l])
            F.cross_entropy(logits[0], y[:l]).backward()

        train(256)  # warm-up
        seconds, times = repeat(train)
    return finish(out, seconds, times)


# ------------------------------------------------------------------------------------------------ driver side


def _skip_reason(layer: str, length: int, done: list[dict], cap_seconds: float, cap_gb: float) -> str | None:
    """Why `length` should not run, extrapolating from the last measured case of the same layer and mode."""
    ok = [r for r in done if "seconds" in r]
    if len(done) > len(ok):
        return "a shorter length failed or timed out"
    if not ok:
        return None
    last, first = ok[-1], ok[0]
    ratio = length / last["length"]
    t = last["seconds"] * ratio ** (2 if layer == "attention" else 1)
    if t > cap_seconds:
        return f"predicted {t:.0f} s > cap {cap_seconds:g} s"
    gb = first["peak_rss_gb"] + (last["peak_rss_gb"] - first["peak_rss_gb"]) * ratio  # the interpreter's share fixed
    if gb > cap_gb:
        return f"predicted peak RSS {gb:.1f} GB > cap {cap_gb:g} GB"
    return None


def run_scaling(layers, lengths, d_model: int, threads: int, cap_seconds: float, cap_gb: float,
                decode_steps: int, log=print, min_reps: int = 1) -> dict:
    from seqssm.pipelines.benchmarks.measure import run_case

    rows = []
    for layer in layers:
        for mode in MODES:
            done: list[dict] = []
            for length in sorted(lengths):
                reason = _skip_reason(layer, length, done, cap_seconds, cap_gb)
                if reason is not None:
                    rows.append({"layer": layer, "mode": mode, "length": length, "skipped": reason})
                    log(f"  {layer:<9} {mode:<7} L={length:<8} skipped: {reason}")
                    continue
                r = run_case("scaling", timeout=max(60.0, 3 * cap_seconds), layer=layer, mode=mode, length=length,
                              d_model=d_model, threads=threads, decode_steps=decode_steps, min_reps=min_reps)
                r.setdefault("layer", layer), r.setdefault("mode", mode), r.setdefault("length", length)
                done.append(r)
                rows.append(r)
                if "error" in r:
                    log(f"  {layer:<9} {mode:<7} L={length:<8} failed: {r['error']}")
                else:
                    extra = f", decode {r['decode_ms']:.3f} ms/token" if "decode_ms" in r else ""
                    log(f"  {layer:<10} {mode:<7} L={length:<8} {r['seconds']:8.3f} s, "
                        f"{r['us_per_token']:8.2f} us/token (min {r['us_per_token_min']:.2f} of {r['reps']}, "
                        f"CPU time min {r['us_per_token_cpu_min']:.2f}), "
                        f"peak RSS {r['peak_rss_gb']:.2f} GB{extra}")
    return {"d_model": d_model, "n_layer": 2, "batch": 1, "threads": threads, "cap_seconds": cap_seconds,
            "cap_gb": cap_gb, "min_reps": min_reps, "layers": list(layers), "lengths": sorted(lengths), "rows": rows,
            "summary": summarize(rows, layers)}


def _get(rows, layer, mode, length, key):
    for r in rows:
        if (r["layer"], r["mode"], r["length"]) == (layer, mode, length) and key in r:
            return r[key]
    return None


def summarize(rows: list[dict], layers) -> dict:
    """Mamba's per-token time at 64K over 1K, and the first length from which Mamba stays faster than attention
    (over the lengths where both ran), per measure; every layer's forward + backward time per token at 256K over
    4K (from the medians and from the minima)."""
    out = {}
    for layer in layers:
        for key, suffix in (("us_per_token", ""), ("us_per_token_min", "_min"), ("us_per_token_cpu_min", "_cpu_min")):
            a, b = _get(rows, layer, "train", 4096, key), _get(rows, layer, "train", 262144, key)
            if a is not None and b is not None:
                out[f"{layer}_train_256k_over_4k{suffix}"] = round(b / a, 3)
    measures = (("forward", "us_per_token"), ("train", "us_per_token"), ("forward", "decode_ms"))
    for mode, key in measures:
        name = "decode" if key == "decode_ms" else mode
        a, b = _get(rows, "mamba", mode, 1024, key), _get(rows, "mamba", mode, 65536, key)
        out[f"mamba_{name}_64k_over_1k"] = None if a is None or b is None else round(b / a, 3)
        if "attention" in layers and "mamba" in layers:
            both = sorted(r["length"] for r in rows if r["layer"] == "mamba" and r["mode"] == mode and key in r
                          and _get(rows, "attention", mode, r["length"], key) is not None)
            faster = [L for L in both if _get(rows, "mamba", mode, L, key) < _get(rows, "attention", mode, L, key)]
            cross = next((L for L in both if all(x in faster for x in both if x >= L)), None)
            out[f"mamba_faster_than_attention_{name}_from"] = cross
            out[f"compared_{name}_lengths"] = both
    return out


def _fmt_len(x: int) -> str:
    return f"{x // 1048576}M" if x % 1048576 == 0 else f"{x // 1024}K" if x % 1024 == 0 else str(x)


def markdown(res: dict) -> str:
    rows, layers, lengths = res["rows"], res["layers"], res["lengths"]
    lines = [f"Scaling with length: {', '.join(layers)}; 2 layers, d_model {res['d_model']}, batch 1, "
             f"{res['threads']} torch thread(s); every case in a fresh process; peak RSS includes the interpreter "
             f"and torch (about 0.35 GB). Caps: {res['cap_seconds']:g} s, {res['cap_gb']:g} GB (extrapolated). "
             f"Median of the repetitions (at least {res.get('min_reps', 1)})."
             + (" mamba2-ssd: the SSD op alone at one mamba2 layer's shapes (one call)." if "mamba2-ssd" in layers
                else ""), ""]
    tables = (("Forward: microseconds per token (peak RSS)", "forward", "us_per_token", "{:.2f} µs"),
              ("Forward + backward: microseconds per token (peak RSS)", "train", "us_per_token", "{:.2f} µs"),
              ("Decoding: milliseconds per token after L tokens of context", "forward", "decode_ms", "{:.3f} ms"))
    for title, mode, key, fmt in tables:
        lines += [f"**{title}**", "", "| L | " + " | ".join(layers) + " |", "|---|" + "---|" * len(layers)]
        for L in lengths:
            cells = []
            for layer in layers:
                r = next((r for r in rows if (r["layer"], r["mode"], r["length"]) == (layer, mode, L)), None)
                if r is None or "skipped" in r:
                    cells.append("skipped")
                elif "error" in r:
                    cells.append("failed")
                else:
                    mem = f" ({r['peak_rss_gb']:.2f} GB)" if key == "us_per_token" else ""
                    cells.append(fmt.format(r[key]) + mem)
            lines.append(f"| {_fmt_len(L)} | " + " | ".join(cells) + " |")
        lines.append("")
    skipped = [f"{r['layer']} {r['mode']} L={_fmt_len(r['length'])}: {r.get('skipped') or r.get('error')}"
               for r in rows if "skipped" in r or "error" in r]
    if skipped:
        lines += ["Not measured: " + "; ".join(skipped) + ".", ""]
    s = res["summary"]
    for layer in layers:
        if f"{layer}_train_256k_over_4k" in s:
            cpu = s.get(f"{layer}_train_256k_over_4k_cpu_min")
            lines.append(f"- {layer} forward + backward: time per token at 256K / at 4K = "
                         f"{s[f'{layer}_train_256k_over_4k']:.3f} (medians), "
                         f"{s[f'{layer}_train_256k_over_4k_min']:.3f} (minima)"
                         + ("" if cpu is None else f", {cpu:.3f} (minima of process CPU time)"))
    for name in ("forward", "train", "decode"):
        ratio = s.get(f"mamba_{name}_64k_over_1k")
        lines.append(f"- Mamba {name}: time per token at 64K / at 1K = "
                     f"{'not measured' if ratio is None else f'{ratio:.3f}'}")
        if f"mamba_faster_than_attention_{name}_from" in s:
            cross, both = s[f"mamba_faster_than_attention_{name}_from"], s[f"compared_{name}_lengths"]
            where = (f"from L = {_fmt_len(cross)} on" if cross is not None else "at none of the lengths")
            lines.append(f"  Mamba faster than attention ({name}) {where} "
                         f"(lengths where both ran: {', '.join(_fmt_len(x) for x in both) or 'none'})")
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("forward", "us_per_token", "forward, µs per token"),
              ("train", "us_per_token", "forward + backward, µs per token"),
              ("forward", "decode_ms", "decoding, ms per token after L of context"))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), dpi=110)
    for ax, (mode, key, title) in zip(axes, panels):
        for layer in res["layers"]:
            pts = sorted((r["length"], r[key]) for r in res["rows"]
                         if r["layer"] == layer and r["mode"] == mode and key in r)
            if pts:
                ax.plot(*zip(*pts), "o-", label=layer)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length L")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"2 layers, d_model {res['d_model']}, batch 1, {res['threads']} thread(s)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def parse_list(text: str, option: str, cast=str, allowed=None) -> list:
    from seqssm.pipelines.jobconfig import UsageError

    items = [t.strip() for t in text.split(",")]
    try:
        values = [cast(t) for t in items if t]
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected a comma-separated list of {cast.__name__} values") from None
    if not values:
        raise UsageError(f"{option}: must list at least one value")
    if allowed is not None and any(v not in allowed for v in values):
        bad = [v for v in values if v not in allowed]
        raise UsageError(f"{option}: unknown {bad}; known: {', '.join(allowed)}")
    if cast is int and min(values) < 1:
        raise UsageError(f"{option}: lengths must be at least 1, got {min(values)}")
    return values


def bench_scaling(args) -> dict:
    from seqssm.atomic import atomic_write_text

    layers = parse_list(args.layers, "--layers", str, LAYERS)
    lengths = parse_list(args.lengths, "--lengths", int)
    out = Path(args.out or "bench_scaling.json")
    res = run_scaling(layers, lengths, args.d_model, args.threads, args.cap_seconds, args.cap_gb, args.decode_steps,
                      min_reps=args.min_reps)
    table = markdown(res)
    print("\n" + table)
    atomic_write_text(out.with_suffix(".md"), table)
    plot(res, out.with_suffix(".png"))
    res["files"] = [str(out), str(out.with_suffix(".md")), str(out.with_suffix(".png"))]
    return res


__all__ = ["DEFAULT_LENGTHS", "LAYERS", "OP_LAYERS", "bench_scaling", "case_scaling", "markdown", "run_scaling",
           "summarize"]

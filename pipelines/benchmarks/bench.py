"""`seqssm bench`: the measured numbers of the README, each produced by one subcommand.

    seqssm bench accuracy   chunked scan vs the float64 reference over mamba_ssm's test grid (max relative error)
    seqssm bench train      forward+backward of a 2-layer d_model 64 model, seqssm vs the peer mambapy, side by side
    seqssm bench long       1M-token streaming forward (time, peak RSS) and per-token decode time vs context length
    seqssm bench all        the three, one after the other
    seqssm bench scaling    time and memory vs length of mamba, mamba2, s4d and attention (scaling.py)
    seqssm bench gpu        the prepared GPU script (gpu.py): kernel tests, scan/attention/layer timings
                            (--dry-run: every case at tiny sizes on CPU under the Triton interpreter)
    seqssm bench short      induction-heads training steps/s, chunked vs the fused cpu scan, alternating (short.py)
    seqssm bench contention scan forward+backward vs mambapy with one competing busy process (contention.py)

Every timed case runs in a fresh Python process (measure.py), so that its peak resident memory (ru_maxrss, which
includes the interpreter and torch, about 0.3-0.4 GB) is its own. Results print as a table and go to --out as JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time

from seqssm.pipelines.benchmarks.measure import peak_rss_gb, run_case
from seqssm.pipelines.jobconfig import UsageError

# ------------------------------------------------------------------------------------------------ worker side


def case_train(impl: str, length: int, threads: int) -> dict:
    """Forward+backward of a 2-layer d_model 64 Mamba at batch 1 (seqssm includes its embedding and LM head)."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if impl == "seqssm":
        from seqssm import MambaLM, ModelConfig

        model = MambaLM(ModelConfig(d_model=64, n_layer=2, vocab_size=256))

        def step(l):
            ids = torch.randint(0, 256, (1, l + 1))
            logits = model(ids[:, :-1])
            F.cross_entropy(logits.view(-1, logits.shape[-1]), ids[0, 1:]).backward()

    else:
        from mambapy.mamba import Mamba, MambaConfig

        model = Mamba(MambaConfig(d_model=64, n_layers=2))

        def step(l):
            model(torch.randn(1, l, 64, requires_grad=True)).pow(2).mean().backward()

    step(256)  # warm-up: first-call allocations and lazy imports
    t0 = time.perf_counter()
    step(length)
    seconds = time.perf_counter() - t0
    return {"impl": impl, "length": length, "threads": threads, "seconds": seconds, "peak_rss_gb": peak_rss_gb()}


def case_long(length: int, segment: int, d_model: int, threads: int) -> dict:
    """Streaming forward of a 2-layer model over `length` tokens in segments with carried state (no grad)."""
    import torch

    from seqssm import MambaLM, ModelConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = MambaLM(ModelConfig(d_model=d_model, n_layer=2, vocab_size=256)).eval()
    ids = torch.randint(0, 256, (1, length))
    nll = 0.0
    with torch.inference_mode():
        model(ids[:, :256])  # warm-up
        t0 = time.perf_counter()
        state = None
        for s in range(0, length, segment):
            logits, state = model(ids[:, s : s + segment], state=state, return_state=True)
            nll += torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, s + 1 : s + segment], reduction="sum").item()
        seconds = time.perf_counter() - t0
    return {"length": length, "segment": segment, "d_model": d_model, "threads": threads, "seconds": seconds,
            "tokens_per_s": length / seconds, "peak_rss_gb": peak_rss_gb(), "finite": bool(nll == nll)}


def case_decode(contexts: list[int], d_model: int, threads: int, steps: int) -> dict:
    """Median time of one decoding step after a prefill of each context length (the state is O(1) in it)."""
    import statistics

    import torch

    from seqssm import MambaLM, ModelConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = MambaLM(ModelConfig(d_model=d_model, n_layer=2, vocab_size=256)).eval()
    out = {"d_model": d_model, "threads": threads, "steps": steps, "median_step_ms": {}}
    with torch.inference_mode():
        for ctx in contexts:
            state = None
            for s in range(0, ctx, 65536):  # prefill with the parallel scan, in segments
                ids = torch.randint(0, 256, (1, min(65536, ctx - s)))
                _, state = model(ids, state=state, return_state=True)
            tok = torch.randint(0, 256, (1,))
            times = []
            for _ in range(steps):
                t0 = time.perf_counter()
                tok = model.step(tok, state).argmax(-1)
                times.append(time.perf_counter() - t0)
            out["median_step_ms"][str(ctx)] = 1e3 * statistics.median(times)
    out["peak_rss_gb"] = peak_rss_gb()
    return out


def case_accuracy(quick: bool) -> dict:
    """Max relative error (per tensor, ||got - want|| / ||want||) of the float32 chunked scan against the float64
    reference, over seq lengths, N, B/C layouts and every flag on and off; outputs, last state, all gradients."""
    import torch

    from seqssm.kernels import selective_scan

    lengths = [1, 7, 64, 255, 1024] if quick else [1, 2, 7, 64, 127, 255, 256, 511, 1024, 2047, 4096]
    flag_names = ("D", "z", "delta_bias", "delta_softplus", "initial_state", "return_last_state")
    worst: dict[str, float] = {}
    cases = 0
    gen = torch.Generator().manual_seed(0)

    def rnd(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    for l, n, (layout, g), on in itertools.product(
        lengths, (8, 16), (("var", 1), ("var", 2), ("ti", 1)), (True, False)
    ):
        b, d = 2, 4
        flags = set(flag_names) if on else set()
        bc = (lambda: rnd(d, n)) if layout == "ti" else (lambda: rnd(b, g, n, l) if g > 1 else rnd(b, n, l))
        x = {"u": rnd(b, d, l), "delta": rnd(b, d, l).abs() * 0.5, "A": -rnd(d, n).abs(), "B": bc(), "C": bc()}
        for name, shape in (("D", (d,)), ("z", (b, d, l)), ("delta_bias", (d,)), ("initial_state", (b, d, n))):
            if name in flags:
                x[name] = rnd(*shape)
        results = {}
        for backend, dtype in (("reference", torch.float64), ("chunked", torch.float32)):
            xs = {k: v.to(dtype).requires_grad_(True) for k, v in x.items()}
            res = selective_scan(**xs, delta_softplus="delta_softplus" in flags,
                                 return_last_state="return_last_state" in flags, backend=backend)
            outs = list(res) if isinstance(res, tuple) else [res]
            proj = torch.Generator().manual_seed(1)
            loss = sum((o.double() * torch.randn(o.shape, generator=proj, dtype=torch.float64)).sum() for o in outs)
            grads = torch.autograd.grad(loss, list(xs.values()))
            results[backend] = dict(zip(["out", "last_state"][: len(outs)], outs)) | {
                f"d{k}": gr for k, gr in zip(xs, grads)
            }
        for key, want in results["reference"].items():
            got = results["chunked"][key].double()
            err = ((got - want).norm() / want.norm().clamp_min(1e-300)).item()
            worst[key] = max(worst.get(key, 0.0), err)
        cases += 1
    return {"cases": cases, "lengths": lengths, "max_rel_err": worst}


# ------------------------------------------------------------------------------------------------ driver side


def bench_accuracy(args) -> dict:
    res = run_case("accuracy", quick=args.quick)
    if "error" not in res:
        print(f"\nchunked (float32) vs reference (float64): {res['cases']} cases, lengths {res['lengths']}")
        for k, v in res["max_rel_err"].items():
            print(f"  {k:<16} max relative error {v:.2e}")
    return res


def bench_train(args) -> dict:
    rows = []
    for impl in ("seqssm", "mambapy") if not args.no_peer else ("seqssm",):
        print(f"  running {impl} at L={args.train_length} ...", flush=True)
        rows.append(run_case("train", impl=impl, length=args.train_length, threads=args.threads))
    print(f"\nforward+backward, 2 layers, d_model 64, batch 1, L={args.train_length}, {args.threads} threads")
    print(f"  {'impl':<8} {'seconds':>8} {'peak RSS GB':>12}")
    for r in rows:
        if "error" in r:
            print(f"  {r.get('impl', '?'):<8} failed: {r['error']}")
        else:
            print(f"  {r['impl']:<8} {r['seconds']:>8.2f} {r['peak_rss_gb']:>12.2f}")
    ok = [r for r in rows if "error" not in r]
    if len(ok) == 2:
        print(f"  seqssm is {ok[1]['seconds'] / ok[0]['seconds']:.1f}x faster "
              f"with {ok[0]['peak_rss_gb'] / ok[1]['peak_rss_gb']:.2f}x the peak memory")
    return {"rows": rows}


def bench_long(args) -> dict:
    print(f"  streaming forward over {args.long_length} tokens ...", flush=True)
    fwd = run_case("long", length=args.long_length, segment=args.segment, d_model=args.d_model, threads=args.threads)
    contexts = sorted({min(1000, args.decode_context), args.decode_context})
    print(f"  decoding after {contexts} tokens of context ...", flush=True)
    dec = run_case("decode", contexts=contexts, d_model=args.d_model, threads=args.threads, steps=args.decode_steps)
    if "error" in fwd:
        print(f"  forward failed: {fwd['error']}")
    else:
        print(f"\nforward, 2 layers, d_model {args.d_model}, batch 1, L={fwd['length']} in segments of "
              f"{fwd['segment']}: {fwd['seconds']:.1f} s ({fwd['tokens_per_s']:.0f} tokens/s), "
              f"peak RSS {fwd['peak_rss_gb']:.2f} GB")
    if "error" in dec:
        print(f"  decode failed: {dec['error']}")
    else:
        ms = dec["median_step_ms"]
        print("decode step (median of %d): " % dec["steps"] + ", ".join(f"after {c}: {t:.3f} ms" for c, t in ms.items()))
        first, last = ms[str(contexts[0])], ms[str(contexts[-1])]
        print(f"  ratio {last / first:.3f} (flat means 1)")
    return {"forward": fwd, "decode": dec}


def _write_json(path: str, data: dict) -> None:
    from seqssm.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def run(args: argparse.Namespace) -> int:
    import platform

    import torch

    results = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
               "cpus": os.cpu_count(), "torch": torch.__version__}
    if args.what == "gpu":
        from seqssm.pipelines.benchmarks.gpu import run_gpu

        results["gpu"] = run_gpu(args)
        todo = ["gpu"]
    elif args.what in ("short", "contention"):
        from seqssm.pipelines.benchmarks.contention import bench_contention
        from seqssm.pipelines.benchmarks.short import bench_short

        print(f"== bench {args.what}", flush=True)
        results[args.what] = (bench_short if args.what == "short" else bench_contention)(args)
        todo = [args.what]
    elif args.what == "scaling":
        from seqssm.pipelines.benchmarks.scaling import bench_scaling

        print("== bench scaling", flush=True)
        args.out = args.out or "bench_scaling.json"  # its .md table and .png plot go next to it
        results["scaling"] = bench_scaling(args)
        todo = ["scaling"]
    else:
        todo = ["accuracy", "train", "long"] if args.what == "all" else [args.what]
    for what in todo if args.what not in ("gpu", "scaling", "short", "contention") else []:
        print(f"== bench {what}", flush=True)
        results[what] = {"accuracy": bench_accuracy, "train": bench_train, "long": bench_long}[what](args)
    if args.out:
        _write_json(args.out, results)
        print(f"\nwrote {args.out}")
    failed = [w for w in todo if '"error"' in json.dumps(results[w])]
    if args.what == "scaling":  # a case killed at the time cap is a recorded outcome; a crash is a failure
        failed = [r for r in results["scaling"]["rows"] if "error" in r and "timed out" not in r["error"]]
    return 1 if failed else 0


def register(subparsers) -> None:
    from seqssm.pipelines.benchmarks.scaling import DEFAULT_LENGTHS, LAYERS

    p = subparsers.add_parser("bench", help="measure accuracy, training speed vs mambapy, 1M-token inference")
    p.add_argument("what", choices=["accuracy", "train", "long", "all", "gpu", "scaling", "short", "contention"])
    p.add_argument("--threads", type=int, default=2, help="torch threads in each measured process (default 2)")
    p.add_argument("--train-length", type=int, default=65536, help="train: sequence length (default 65536)")
    p.add_argument("--long-length", type=int, default=1 << 20, help="long: sequence length (default 1048576)")
    p.add_argument("--segment", type=int, default=65536, help="long: tokens per streamed segment")
    p.add_argument("--d-model", type=int, default=128, help="long: model width (default 128)")
    p.add_argument("--decode-context", type=int, default=100_000, help="long: context before the last decode timing")
    p.add_argument("--decode-steps", type=int, default=300, help="long: decode steps timed per context")
    p.add_argument("--no-peer", action="store_true", help="train: skip the mambapy peer")
    p.add_argument("--quick", action="store_true", help="accuracy: a smaller grid")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--short-threads", type=int, default=1, help="short: torch threads (default 1)")
    p.add_argument("--short-batch", type=int, default=8, help="short: batch size (default 8)")
    p.add_argument("--short-length", type=int, default=256, help="short: sequence length (default 256)")
    p.add_argument("--rounds", type=int, default=6, help="short: alternating rounds per path (default 6)")
    p.add_argument("--round-steps", type=int, default=10, help="short: training steps per round (default 10)")
    p.add_argument("--contention-length", type=int, default=16384, help="contention: L (default 16384)")
    p.add_argument("--contention-threads", type=int, default=0,
                   help="contention: torch threads in each timed process (default 0: torch's default)")
    p.add_argument("--repeats", type=int, default=3, help="contention: interleaved repeats (default 3)")
    p.add_argument("--case-timeout", type=float, default=120.0, help="contention: seconds per timed process")
    p.add_argument("--with-chunked", action="store_true", help="contention: also time the chunked backend")
    p.add_argument("--no-busy", action="store_true", help="contention: without the competing process")
    p.add_argument("--max-length", type=int, default=1 << 20, help="gpu: longest L timed (default 2^20)")
    p.add_argument("--max-attention-length", type=int, default=1 << 17, help="gpu: longest L for attention")
    p.add_argument("--skip-big", action="store_true", help="gpu: skip the 24-layer model at L = 2^20")
    p.add_argument("--skip-tests", action="store_true", help="gpu: skip the GPU kernel tests")
    p.add_argument("--dry-run", action="store_true",
                   help="gpu: every case at tiny sizes on CPU under the Triton interpreter (rehearsal, no GPU)")
    p.add_argument("--layers", default=",".join(LAYERS),
                   help=f"scaling: mixers, and mamba2-ssd (the SSD op alone), to time (default {','.join(LAYERS)})")
    p.add_argument("--lengths", default=",".join(map(str, DEFAULT_LENGTHS)), help="scaling: sequence lengths "
                   "(default 1K, 4K, 16K, 64K, 256K, 1M)")
    p.add_argument("--cap-seconds", type=float, default=120.0,
                   help="scaling: skip a case whose extrapolated time exceeds this (default 120)")
    p.add_argument("--cap-gb", type=float, default=8.0,
                   help="scaling: skip a case whose extrapolated peak RSS exceeds this (default 8)")
    p.add_argument("--min-reps", type=int, default=1,
                   help="scaling: time each case at least this often (min and median recorded; default 1)")

    def _func(args):
        for name in ("threads", "train_length", "long_length", "segment", "d_model", "decode_context", "decode_steps",
                     "short_threads", "short_batch", "short_length", "rounds", "round_steps", "contention_length", "repeats",
                     "min_reps"):
            if getattr(args, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')}: must be at least 1, got {getattr(args, name)}")
        if args.contention_threads < 0:
            raise UsageError(f"--contention-threads: must be at least 0, got {args.contention_threads}")
        if args.what == "short" and args.short_length < 3:
            raise UsageError(f"--short-length: induction heads needs at least 3 positions, got {args.short_length}")
        for name in ("cap_seconds", "cap_gb", "case_timeout"):
            if not getattr(args, name) > 0:
                raise UsageError(f"--{name.replace('_', '-')}: must be > 0, got {getattr(args, name):g}")
        return run(args)

    p.set_defaults(func=_func)

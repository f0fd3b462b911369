"""`seqssm bench gpu`: the one prepared script for a lent GPU (scripts/gpu_check.sh runs it; never in CI).

    1. the GPU kernel tests (tests/kernels/test_gpu.py): triton vs reference for the scan, the conv and both
       decoding steps, 2^20 steps in one call, offsets past 2^31;
    2. copy bandwidth (a device-to-device copy), the roof the scan is measured against;
    3. the selective scan (forward, forward+backward) for L = 1K … 1M: triton vs chunked, achieved bandwidth
       counting each input read once and each output written once;
    4. a full Mamba layer (triton vs chunked) and causal SDPA attention (FlashAttention kernels) of the same width;
    5. forward+backward of a d_model 768, 24-layer model at L = 2^20, blocks checkpointed, bf16 autocast.

Every case is guarded: an error (out of memory, a kernel failure) is recorded as text and the next case runs.
Results print as they come and go to --out as JSON, with a markdown table beside it (same name, .md).

`--dry-run` runs every case above at tiny sizes on CPU tensors under the Triton interpreter (TRITON_INTERPRET=1,
set here before Triton is imported): the same code paths and the same JSON and markdown, timings meaningless.
It is how the script is proven before a GPU is lent (tests/pipelines/test_bench_gpu.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

LENGTHS = [1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20]


@dataclass(frozen=True)
class Sizes:
    lengths: list  # scan / layer lengths
    chunked_max: int  # longest L timed for the chunked backend (it is the slow reference point)
    scan_d: int  # scan channels (a d_model 768 Mamba layer has 1536)
    scan_n: int
    d_model: int  # layer and attention width
    heads: int
    big_d_model: int
    big_layers: int
    big_length: int
    copy_numel: int  # float32 elements copied
    reps: int  # timed repetitions after one warm-up


REAL = Sizes(LENGTHS, 1 << 18, 1536, 16, 768, 12, 768, 24, 1 << 20, 1 << 30, 3)
DRY = Sizes([24], 24, 8, 4, 16, 2, 16, 24, 16, 1 << 16, 1)
DRY_CHUNK = 8  # the dry run's scan checkpoint chunk: L = 24 takes the chunk-parallel forward, as long L on a GPU


class Bench:
    """The device, its sizes and its clock."""

    def __init__(self, dry: bool):
        import torch

        self.dry = dry
        self.device = "cpu" if dry else "cuda"
        self.sizes = DRY if dry else REAL
        self.torch = torch
        if dry:
            import seqssm.kernels.scan.triton_scan as triton_scan

            triton_scan.CHUNK = DRY_CHUNK

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def timed(self, fn, reps: int | None = None) -> float:
        """Median seconds of fn() over reps runs after one warm-up, with the device synchronised."""
        reps = reps or self.sizes.reps
        if self.dry:  # one run: the code path is what counts
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
        fn()
        self.sync()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]

    def guard(self, fn):
        try:
            return fn()
        except Exception as exc:  # recorded, so that one failing case does not hide the others
            if self.device == "cuda":
                self.torch.cuda.empty_cache()
            return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}

    def gen(self):
        return self.torch.Generator(device=self.device).manual_seed(0)


def copy_bandwidth_gbs(bx: Bench) -> float:
    x = bx.torch.empty(bx.sizes.copy_numel, dtype=bx.torch.float32, device=bx.device)
    y = bx.torch.empty_like(x)
    t = bx.timed(lambda: y.copy_(x), reps=max(bx.sizes.reps, 5))
    return 2 * x.numel() * 4 / t / 1e9


def scan_case(bx: Bench, l: int, backend: str, design: str = "auto") -> dict:
    """The scan of a Mamba layer (u, Δ, z, B, C in bf16, A, D, bias float32), batch 1; `design`: the Triton
    kernel (triton_design) when backend is "triton"."""
    torch, d, n = bx.torch, bx.sizes.scan_d, bx.sizes.scan_n
    g = bx.gen()
    bf = dict(device=bx.device, dtype=torch.bfloat16, generator=g)
    u, z, delta = torch.randn(1, d, l, **bf), torch.randn(1, d, l, **bf), torch.randn(1, d, l, **bf)
    A = -torch.rand(d, n, device=bx.device, generator=g)
    B, C = torch.randn(1, n, l, **bf), torch.randn(1, n, l, **bf)
    D, bias = torch.ones(d, device=bx.device), torch.zeros(d, device=bx.device)
    leaves = [t.requires_grad_(True) for t in (u, delta, A, B, C, D, z)]

    from seqssm.kernels import selective_scan

    def fwd():
        extra = {"triton_design": design} if backend == "triton" else {}
        return selective_scan(u, delta, A, B, C, D, z, bias, True, backend=backend, **extra)

    def fwd_bwd():
        torch.autograd.grad(fwd().float().sum(), leaves)

    with torch.no_grad():
        t_f = bx.timed(fwd)
    t_fb = bx.timed(fwd_bwd)
    el = 2  # bf16 bytes
    fwd_bytes = (3 * d + 2 * n) * l * el + d * l * el  # u, Δ, z, B, C read; out written
    bwd_bytes = (4 * d + 2 * n) * l * el + (3 * d + 2 * n) * l * el  # + dout read; du, dΔ, dz, dB, dC written
    return {"fwd_s": t_f, "fwd_bwd_s": t_fb, "fwd_gbs": fwd_bytes / t_f / 1e9,
            "fwd_bwd_gbs": (fwd_bytes + bwd_bytes) / t_fb / 1e9}


def attention_case(bx: Bench, l: int) -> dict:
    torch = bx.torch
    import torch.nn.functional as F

    h, dm = bx.sizes.heads, bx.sizes.d_model
    q, k, v = (torch.randn(1, h, l, dm // h, device=bx.device, dtype=torch.bfloat16, requires_grad=True)
               for _ in range(3))

    def fwd():
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    with torch.no_grad():
        t_f = bx.timed(fwd)
    t_fb = bx.timed(lambda: torch.autograd.grad(fwd().float().sum(), [q, k, v]))
    return {"fwd_s": t_f, "fwd_bwd_s": t_fb}


def layer_case(bx: Bench, l: int, backend: str) -> dict:
    torch = bx.torch
    from seqssm import ModelConfig
    from seqssm.layers.mamba import Mamba

    dm = bx.sizes.d_model
    layer = Mamba(ModelConfig(d_model=dm, n_layer=1, scan_backend=backend)).to(bx.device, torch.bfloat16)
    x = torch.randn(1, l, dm, device=bx.device, dtype=torch.bfloat16, requires_grad=True)
    with torch.no_grad():
        t_f = bx.timed(lambda: layer(x))
    t_fb = bx.timed(lambda: torch.autograd.grad(layer(x)[0].float().sum(), [x, *layer.parameters()]))
    return {"fwd_s": t_f, "fwd_bwd_s": t_fb}


def big_model_case(bx: Bench) -> dict:
    """Forward+backward of a 24-layer LM (d_model 768 on a GPU) on one sequence, blocks checkpointed, bf16
    autocast, scan_backend "triton" for every op of every block."""
    torch = bx.torch
    from seqssm import MambaLM, ModelConfig
    from seqssm.model import set_activation_checkpointing

    s, l = bx.sizes, bx.sizes.big_length
    model = MambaLM(ModelConfig(d_model=s.big_d_model, n_layer=s.big_layers, vocab_size=256,
                                scan_backend="triton")).to(bx.device)
    set_activation_checkpointing(model, True)
    ids = torch.randint(0, 256, (1, l + 1), device=bx.device, generator=bx.gen())
    if bx.device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step():
        with torch.autocast(bx.device, dtype=torch.bfloat16):
            logits = model(ids[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.shape[-1]), ids[0, 1:])
        loss.backward()
        model.zero_grad(set_to_none=True)

    t = bx.timed(step, reps=1)
    peak = torch.cuda.max_memory_allocated() / 2**30 if bx.device == "cuda" else None
    return {"fwd_bwd_s": t, "peak_gb": peak, "tokens": l, "layers": s.big_layers, "d_model": s.big_d_model}


def gpu_tests(bx: Bench) -> dict:
    """tests/kernels/test_gpu.py in a fresh process (dry run: SEQSSM_GPU_DRY_RUN=1 under the interpreter)."""
    # the checkout the command runs in (scripts/gpu_check.sh installs the package elsewhere), else beside this file
    roots = [os.getcwd(), os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))]
    found = [os.path.join(r, "tests", "kernels", "test_gpu.py") for r in roots]
    found = [t for t in found if os.path.exists(t)]
    if not found:
        return {"error": "FileNotFoundError: tests/kernels/test_gpu.py (run from a checkout of the repository)"}
    tests = found[0]
    env = dict(os.environ)
    if bx.dry:
        env |= {"SEQSSM_GPU_DRY_RUN": "1", "TRITON_INTERPRET": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", tests],
                          capture_output=True, text=True, env=env)
    lines = proc.stdout.strip().splitlines()
    print("\n".join(lines[-15:]), flush=True)
    res = {"summary": lines[-1] if lines else "", "seconds": time.perf_counter() - t0}
    if proc.returncode != 0:
        failed = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
        res["error"] = f"pytest exit {proc.returncode}: " + ("; ".join(failed)[:500] or proc.stderr[-300:])
    return res


def _interpreter_before_triton() -> None:
    """The dry run needs TRITON_INTERPRET=1 before the kernel modules import triton."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        return
    loaded = [m for m in ("seqssm.kernels.scan.triton_kernels", "seqssm.kernels.conv.triton_conv_kernels")
              if m in sys.modules]
    if loaded:
        from seqssm.pipelines.jobconfig import UsageError

        raise UsageError("bench gpu --dry-run: Triton kernels were loaded without the interpreter; "
                         "run it in a fresh process or set TRITON_INTERPRET=1")
    os.environ["TRITON_INTERPRET"] = "1"


def _save(res: dict, out: str | None, partial: bool) -> None:
    """The markdown beside --out, and while the run goes on the JSON so far (a run stopped by a time limit still
    leaves every finished case); seqssm.pipelines.bench writes the final JSON."""
    if not out:
        return
    from seqssm.atomic import atomic_write_text

    atomic_write_text(os.path.splitext(out)[0] + ".md", markdown(res))
    if partial:
        atomic_write_text(out, json.dumps({"gpu": res, "partial": True}, indent=2) + "\n")


def run_gpu(args) -> dict:
    import torch

    dry = bool(getattr(args, "dry_run", False))
    if dry:
        _interpreter_before_triton()
    elif not torch.cuda.is_available():
        from seqssm.pipelines.jobconfig import UsageError

        raise UsageError("bench gpu: no CUDA device here (this benchmark runs on a lent GPU; --dry-run rehearses "
                         "it on CPU)")
    bx = Bench(dry)
    s = bx.sizes
    device = "CPU (dry run: Triton interpreter, tiny sizes)" if dry else torch.cuda.get_device_name(0)
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "device": device, "dry_run": dry,
           "torch": torch.__version__, "triton": _triton_version(), "sizes": asdict(s)}
    t_start = time.perf_counter()
    if not getattr(args, "skip_tests", False):
        print("== GPU kernel tests", flush=True)
        res["tests"] = gpu_tests(bx)
        _save(res, args.out, partial=True)
    res["copy_gbs"] = bx.guard(lambda: copy_bandwidth_gbs(bx))
    print(f"== copy bandwidth {res['copy_gbs']} GB/s", flush=True)
    max_len = s.lengths[-1] if dry else args.max_length
    max_attn = s.lengths[-1] if dry else args.max_attention_length
    res["scan"], res["attention"], res["layer"] = {}, {}, {}
    for l in [l for l in s.lengths if l <= max_len]:
        backends = ("triton", "chunked") if l <= s.chunked_max else ("triton",)
        # both Triton designs of the scan side by side (docs/kernels.md), so a GPU run can choose "auto"'s design
        scans = [("triton", d) for d in ("sequential", "parallel")] + [(b, "auto") for b in backends if b != "triton"]
        res["scan"][l] = {(f"{b}-{d}" if b == "triton" else b): bx.guard(lambda: scan_case(bx, l, b, d))
                          for b, d in scans}
        if l <= max_attn:
            res["attention"][l] = bx.guard(lambda: attention_case(bx, l))
        res["layer"][l] = {b: bx.guard(lambda: layer_case(bx, l, b)) for b in backends}
        print(f"== L={l}: scan {json.dumps(res['scan'][l])}\n   attention {res['attention'].get(l)}\n"
              f"   layer {json.dumps(res['layer'][l])}", flush=True)
        _save(res, args.out, partial=True)
    if not args.skip_big:
        print(f"== {s.big_layers}-layer d_model {s.big_d_model} model, L = {s.big_length}, forward+backward",
              flush=True)
        res["big_model"] = bx.guard(lambda: big_model_case(bx))
        print(res["big_model"], flush=True)
    res["seconds"] = time.perf_counter() - t_start
    _save(res, args.out, partial=False)
    if args.out:
        print(f"wrote {os.path.splitext(args.out)[0]}.md", flush=True)
    return res


def _triton_version() -> str:
    try:
        import importlib.metadata

        return importlib.metadata.version("triton")
    except Exception:  # not installed
        return "not installed"


def _ms(case: dict | None, key: str) -> str:
    if not case:
        return "-"
    if "error" in case:
        return "error"
    return f"{case[key] * 1e3:.2f}"


def markdown(res: dict) -> str:
    """The tables of docs/gpu.md from one run's results."""
    lines = [f"# seqssm bench gpu: {res['device']}", "",
             f"{res['date']} · torch {res['torch']} · triton {res['triton']}"
             + (" · DRY RUN: every case at tiny sizes on CPU, timings meaningless" if res.get("dry_run") else ""),
             ""]
    if "tests" in res:
        t = res["tests"]
        lines += [f"GPU kernel tests: {t.get('summary', '')}" + (f" — {t['error']}" if "error" in t else ""), ""]
    copy = res.get("copy_gbs")
    copy_ok = isinstance(copy, float)
    lines += [f"Copy bandwidth: {copy:.0f} GB/s" if copy_ok else f"Copy bandwidth: {copy}", "",
              "## Selective scan (bf16, batch 1)", "",
              "| L | backend | fwd ms | fwd+bwd ms | fwd GB/s | fwd+bwd GB/s | fwd % of copy |", "|---" * 7 + "|"]
    for l, by in res.get("scan", {}).items():
        for b, c in by.items():
            if "error" in c:
                lines.append(f"| {l} | {b} | error: {c['error']} | | | | |")
                continue
            pct = f"{100 * c['fwd_gbs'] / copy:.0f}%" if copy_ok else "-"
            lines.append(f"| {l} | {b} | {c['fwd_s'] * 1e3:.2f} | {c['fwd_bwd_s'] * 1e3:.2f} | {c['fwd_gbs']:.0f} | "
                         f"{c['fwd_bwd_gbs']:.0f} | {pct} |")
    lines += ["", "## Mamba layer vs causal SDPA attention (bf16, same width), ms", "",
              "| L | layer triton fwd | layer triton fwd+bwd | layer chunked fwd | layer chunked fwd+bwd | "
              "SDPA fwd | SDPA fwd+bwd |", "|---" * 7 + "|"]
    for l, by in res.get("layer", {}).items():
        att = res.get("attention", {}).get(l)
        tri, ch = by.get("triton"), by.get("chunked")
        lines.append(f"| {l} | {_ms(tri, 'fwd_s')} | {_ms(tri, 'fwd_bwd_s')} | {_ms(ch, 'fwd_s')} | "
                     f"{_ms(ch, 'fwd_bwd_s')} | {_ms(att, 'fwd_s')} | {_ms(att, 'fwd_bwd_s')} |")
    big = res.get("big_model")
    if big is not None:
        lines += ["", "## Whole model", ""]
        if "error" in big:
            lines.append(f"error: {big['error']}")
        else:
            peak = f"{big['peak_gb']:.1f} GB peak" if big.get("peak_gb") is not None else "peak not measured"
            lines.append(f"{big['layers']} layers, d_model {big['d_model']}, L = {big['tokens']}: forward+backward "
                         f"{big['fwd_bwd_s']:.2f} s, {peak}")
    lines += ["", f"Whole run: {res.get('seconds', 0):.0f} s", ""]
    return "\n".join(lines)

"""`seqssm bench gpu`: the one prepared script for a lent GPU (never run in CI; it needs CUDA).

    1. the GPU kernel tests (tests/kernels/test_gpu.py): triton vs reference, 2^20 steps, offsets past 2^31;
    2. time of the selective scan (forward, forward+backward) for L = 1K … 1M: triton vs chunked, and causal
       SDPA attention (FlashAttention kernels) of the same width; achieved bandwidth against the measured copy
       bandwidth, counting each input read once and each output written once;
    3. a full Mamba layer, forward and forward+backward, triton vs chunked;
    4. forward+backward of a d_model 768, 24-layer model at L = 2^20 with per-block activation checkpointing.

Every case is guarded: an error (out of memory, a kernel failure) is recorded as text and the next case runs.
Results print as tables and go to --out as JSON, with the device name and date, for the README.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

LENGTHS = [1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20]


def _timed(fn, reps: int = 3) -> float:
    """Median seconds of fn() over reps runs after one warm-up, with the GPU synchronised."""
    import torch

    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def _guard(fn):
    import torch

    try:
        return fn()
    except Exception as exc:  # recorded, so that one failing case does not hide the others
        torch.cuda.empty_cache()
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}


def copy_bandwidth_gbs() -> float:
    import torch

    x = torch.empty(1 << 30, dtype=torch.float32, device="cuda")  # 4 GiB
    y = torch.empty_like(x)
    t = _timed(lambda: y.copy_(x), reps=5)
    return 2 * x.numel() * 4 / t / 1e9


def scan_case(l: int, backend: str, d: int = 1536, n: int = 16) -> dict:
    """Scan of a d_model-768 Mamba layer's width (d = 1536), bf16 inputs, batch 1."""
    import torch

    from seqssm.kernels import selective_scan

    g = torch.Generator(device="cuda").manual_seed(0)
    bf = dict(device="cuda", dtype=torch.bfloat16)
    u, z = torch.randn(1, d, l, generator=g, **bf), torch.randn(1, d, l, generator=g, **bf)
    delta = torch.randn(1, d, l, generator=g, **bf)
    A = -torch.rand(d, n, device="cuda", generator=g)
    B, C = torch.randn(1, n, l, generator=g, **bf), torch.randn(1, n, l, generator=g, **bf)
    D, bias = torch.ones(d, device="cuda"), torch.zeros(d, device="cuda")
    leaves = [t.requires_grad_(True) for t in (u, delta, A, B, C, D, z)]

    def fwd():
        return selective_scan(u, delta, A, B, C, D, z, bias, True, backend=backend)

    def fwd_bwd():
        torch.autograd.grad(fwd().float().sum(), leaves)

    with torch.no_grad():
        t_f = _timed(fwd)
    t_fb = _timed(fwd_bwd)
    el = 2  # bf16 bytes
    fwd_bytes = (3 * d + 2 * n) * l * el + d * l * el  # u, Δ, z, B, C read; out written
    bwd_bytes = (4 * d + 2 * n) * l * el + (3 * d + 2 * n) * l * el  # + dout read; du, dΔ, dz, dB, dC written
    return {"fwd_s": t_f, "fwd_bwd_s": t_fb, "fwd_gbs": fwd_bytes / t_f / 1e9,
            "fwd_bwd_gbs": (fwd_bytes + bwd_bytes) / t_fb / 1e9}


def attention_case(l: int, d_model: int = 768, heads: int = 12) -> dict:
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.randn(1, heads, l, d_model // heads, device="cuda", dtype=torch.bfloat16, requires_grad=True)
               for _ in range(3))

    def fwd():
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    with torch.no_grad():
        t_f = _timed(fwd)
    t_fb = _timed(lambda: torch.autograd.grad(fwd().float().sum(), [q, k, v]))
    return {"fwd_s": t_f, "fwd_bwd_s": t_fb}


def layer_case(l: int, backend: str, d_model: int = 768) -> dict:
    import torch

    from seqssm import ModelConfig
    from seqssm.layers.mamba import Mamba

    layer = Mamba(ModelConfig(d_model=d_model, n_layer=1, scan_backend=backend)).cuda().to(torch.bfloat16)
    x = torch.randn(1, l, d_model, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    with torch.no_grad():
        t_f = _timed(lambda: layer(x))
    t_fb = _timed(lambda: torch.autograd.grad(layer(x)[0].float().sum(), [x, *layer.parameters()]))
    return {"fwd_s": t_f, "fwd_bwd_s": t_fb}


def big_model_case(l: int = 1 << 20) -> dict:
    """Forward+backward of a 24-layer d_model 768 LM on one sequence of l tokens, blocks checkpointed."""
    import torch
    from torch.utils.checkpoint import checkpoint

    from seqssm import MambaLM, ModelConfig

    model = MambaLM(ModelConfig(d_model=768, n_layer=24, vocab_size=256, scan_backend="triton")).cuda()
    ids = torch.randint(0, 256, (1, l + 1), device="cuda")
    torch.cuda.reset_peak_memory_stats()

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            hidden = model.backbone.embedding(ids[:, :-1])
            residual = None
            for block in model.backbone.layers:
                hidden, residual = checkpoint(block, hidden, residual, use_reentrant=False)[:2]
            logits = model._logits(model.backbone._final(hidden, residual))
            loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.shape[-1]), ids[0, 1:])
        loss.backward()
        model.zero_grad(set_to_none=True)

    t = _timed(step, reps=1)
    return {"fwd_bwd_s": t, "peak_gb": torch.cuda.max_memory_allocated() / 2**30, "tokens": l}


def run_gpu(args) -> dict:
    import torch

    if not torch.cuda.is_available():
        from seqssm.pipelines.jobconfig import UsageError

        raise UsageError("bench gpu: no CUDA device here (this benchmark runs on a lent GPU)")
    res = {"date": time.strftime("%Y-%m-%d"), "device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
    tests = os.path.join(root, "tests", "kernels", "test_gpu.py")
    if os.path.exists(tests):
        print("== GPU kernel tests", flush=True)
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", tests], capture_output=True, text=True)
        res["tests"] = proc.stdout.strip().splitlines()[-1:] + ([] if proc.returncode == 0 else ["FAILED"])
        print("\n".join(proc.stdout.strip().splitlines()[-15:]), flush=True)
    res["copy_gbs"] = _guard(copy_bandwidth_gbs)
    print(f"== copy bandwidth {res['copy_gbs']} GB/s", flush=True)
    lengths = [l for l in LENGTHS if l <= args.max_length]
    res["scan"], res["attention"], res["layer"] = {}, {}, {}
    for l in lengths:
        res["scan"][l] = {b: _guard(lambda: scan_case(l, b)) for b in ("triton", "chunked") if b == "triton" or l <= 1 << 18}
        if l <= args.max_attention_length:
            res["attention"][l] = _guard(lambda: attention_case(l))
        res["layer"][l] = {b: _guard(lambda: layer_case(l, b)) for b in ("triton", "chunked") if b == "triton" or l <= 1 << 18}
        print(f"== L={l}: scan {json.dumps(res['scan'][l])}\n   attention {res['attention'].get(l)}\n"
              f"   layer {json.dumps(res['layer'][l])}", flush=True)
    if not args.skip_big:
        print("== 24-layer d_model 768 model, L = 2^20, forward+backward", flush=True)
        res["big_model"] = _guard(big_model_case)
        print(res["big_model"], flush=True)
    return res

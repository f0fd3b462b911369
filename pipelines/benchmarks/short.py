"""`seqssm bench short`: training steps per second of the induction-heads model, the previous CPU scan beside the new.

Issue 18: the Mamba paper's induction-heads model (2 layers, d_model 64, vocabulary 16 plus the trigger, batch 8,
length 256, Adam) trains at a few steps per second on one CPU thread, and the chunked scan is most of each step. This
benchmark builds that model twice from one seed, one with scan_backend "chunked" (the CPU path before the fused
kernel) and one with "cpu" (what "auto" now picks on CPU), and trains both in the same process, alternating rounds of
steps, so both see the same machine state. It reports the median steps per second of each, by wall clock and by this
thread's CPU time (the CPU-time figure is steadier when other processes share the cores), and their ratio.
"""

from __future__ import annotations

import statistics
import time


def bench_short(args) -> dict:
    import torch
    import torch.nn.functional as F

    import seqssm
    from seqssm.config import ModelConfig
    from seqssm.pipelines.synthetic import tasks as T

    torch.set_num_threads(args.short_threads)
    b, length, vocab = args.short_batch, args.short_length, 16
    paths = {"chunked": "chunked (previous CPU path)", "cpu": "cpu (fused kernel, the new default)"}
    runs = {}
    for backend in paths:
        torch.manual_seed(0)
        cfg = ModelConfig(d_model=64, n_layer=2, vocab_size=vocab + 1, layer="mamba", scan_backend=backend)
        model = seqssm.build_model(cfg).train()
        runs[backend] = (model, torch.optim.Adam(model.parameters(), lr=1e-3), torch.Generator().manual_seed(0))

    def step(backend: str) -> float:
        model, opt, gen = runs[backend]
        batch = T.induction_heads(b, length, vocab, gen)
        hidden, _ = model.backbone(batch.inputs)
        logits = model.lm_head(hidden[:, batch.positions])[..., : vocab + 1].float()
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return float(loss.detach())

    for backend in paths:  # warm-up: first allocations, the kernel build
        step(backend), step(backend)
    wall = {k: [] for k in paths}
    cpu = {k: [] for k in paths}
    for r in range(args.rounds):
        for backend in paths if r % 2 == 0 else reversed(list(paths)):
            w0, c0 = time.perf_counter(), time.thread_time()
            for _ in range(args.round_steps):
                step(backend)
            wall[backend].append(args.round_steps / (time.perf_counter() - w0))
            cpu[backend].append(args.round_steps / (time.thread_time() - c0))
        print(f"  round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {wall[k][-1]:.2f} steps/s" for k in paths),
              flush=True)
    med_wall = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    ratio_wall, ratio_cpu = med_wall["cpu"] / med_wall["chunked"], med_cpu["cpu"] / med_cpu["chunked"]
    print(f"\ninduction-heads training step: batch {b}, L={length}, d_model 64, 2 layers, Adam, "
          f"{args.short_threads} thread(s); {args.rounds} alternating rounds of {args.round_steps} steps")
    print(f"  {'path':<36} {'steps/s (wall)':>15} {'steps/s (CPU time)':>19}")
    for k, label in paths.items():
        print(f"  {label:<36} {med_wall[k]:>15.2f} {med_cpu[k]:>19.2f}")
    print(f"  speed-up: {ratio_wall:.2f}x by wall clock, {ratio_cpu:.2f}x by CPU time (issue 18 asks for 3x)")
    return {"batch": b, "length": length, "threads": args.short_threads, "rounds": args.rounds,
            "round_steps": args.round_steps, "steps_per_s_wall": wall, "steps_per_s_cpu": cpu,
            "median_wall": med_wall, "median_cpu": med_cpu, "speedup_wall": ratio_wall, "speedup_cpu": ratio_cpu}

"""How far back can a trained induction-heads Mamba remember? Per layer, the memory horizon of each channel (e, n):
the number of ordinary tokens after which what was written decays by a factor e, 1 / mean(Δ_t |A_n|), with the
mean over the tokens between the answer and the end (the ZOH decay exp(Δ A) of section 2, eq. 4).

    python scripts/induction_horizon.py RUN [RUN ...]      # e.g. runs/induct/mamba80 runs/induct/pen3

For each layer: how many of the e x n channels have a horizon over 10^4, 10^5 and 10^6 positions, and the five
channels that would carry the most of the answer 2^20 positions back (log of the write at the answer
token - 2^20 / H).
16 sequences of length 1024 (the run's own task settings), one torch thread. Used for docs/synthetic-tasks.md.
"""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import seqssm
from seqssm.layers.mamba import Mamba
from seqssm.pipelines.synthetic import longrun as LR
from seqssm.pipelines.synthetic import train as E

B, L, FAR = 16, 1024, 2.0 ** 20


def layer_inputs(model, inputs):
    """Run the backbone once; per Mamba layer: x (b, l, e) the scan's input, Δ (b, l, e), B (b, l, n) and A (e, n)."""
    seen = []

    def hook(layer):
        def fn(module, args, out):
            dt, b_, _ = layer._split_xproj(out)
            delta = F.softplus(F.linear(dt, layer.dt_proj.weight) + layer.dt_proj.bias)
            seen.append((args[0], delta, b_, -torch.exp(layer.A_log.float())))
        return fn

    handles = [m.x_proj.register_forward_hook(hook(m)) for m in model.modules() if isinstance(m, Mamba)]
    with torch.no_grad():
        model.backbone(inputs)
    for h in handles:
        h.remove()
    return seen


def report(run: Path) -> None:
    state = LR.load_checkpoint(run, "RUN")
    job = LR.load_run_job("induction-heads", run, "RUN")
    model = seqssm.build_model(E.layer_config(job, state["layer"], state["d_model"])).eval()
    model.load_state_dict(state["model"])
    batch = E.task_sampler(job)(B, L, torch.Generator().manual_seed(7))
    answer = (batch.inputs == job.task.vocab).int().argmax(1) + 1  # the token after the first trigger
    between = torch.zeros(B, L, dtype=torch.bool)
    for i in range(B):
        between[i, answer[i] + 1:L - 1] = True
    print(f"{run} (step {state['loop']['step']}, {state['loop']['seconds'] / 60:.1f} min trained)")
    rows = torch.arange(B)
    for k, (x, delta, b_, A) in enumerate(layer_inputs(model, batch.inputs)):
        write = (delta[rows, answer][:, :, None] * b_[rows, answer][:, None, :] * x[rows, answer][:, :, None])
        write = write.abs().mean(0)  # (e, n): what the answer token puts in the state
        horizon = 1.0 / (delta[between].mean(0)[:, None] * A.abs())  # (e, n)
        counts = ", ".join(f">1e{p}: {int((horizon > 10 ** p).sum())}" for p in (4, 5, 6))
        carried = torch.log(write) - FAR / horizon  # log of what is left 2^20 positions on (no underflow)
        top = carried.flatten().argsort(descending=True)[:5].tolist()
        cells = [f"e{t // A.shape[1]}n{t % A.shape[1]} H={horizon.flatten()[t]:.2g}" for t in top]
        print(f"  layer {k}: {horizon.numel()} channels, horizon {counts}; carrying most at 2^20: " + ", ".join(cells))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__.split("\n\n")[1])
    torch.set_num_threads(1)
    for arg in sys.argv[1:]:
        report(Path(arg))

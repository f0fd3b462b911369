"""Are a long induction-heads run's errors at long lengths the model's, or float32 arithmetic over 10^4+ recurrent
steps? Re-creates the scoring sequences of one length (the generator seed of `score_length`), finds the wrong
answers in float32 (the scoring's precision), and scores those sequences again with a float64 copy of the model.

    python scripts/induction_precision_check.py RUN LENGTH        # e.g. runs/induct/mamba80 65536

Prints one line per wrong answer (its trigger distance, the answer's probability in float32 and float64) and a
summary; one torch thread. Used for docs/synthetic-tasks.md ("Not float32").
"""

import sys
import time
from pathlib import Path

import torch

import seqssm
from seqssm.pipelines.synthetic import longrun as LR
from seqssm.pipelines.synthetic import train as E


def main(run: Path, length: int) -> None:
    torch.set_num_threads(1)
    state = LR.load_checkpoint(run, "--score")
    job = LR.load_run_job("induction-heads", run, "--score")
    cfg = E.layer_config(job, state["layer"], state["d_model"])
    m32 = seqssm.build_model(cfg).eval()
    m32.load_state_dict(state["model"])
    m64 = seqssm.build_model(cfg).double().eval()
    m64.load_state_dict(state["model"])
    e, sample = job.eval, E.task_sampler(job)
    gen = torch.Generator().manual_seed(1_000_003 * (job.train.seed + 1) + length)  # as score_length
    t0, wrong = time.perf_counter(), []
    with torch.inference_mode():
        for i in range(0, e.samples, e.batch_size):
            batch = sample(min(e.batch_size, e.samples - i), length, gen)
            logits = E.scored_logits(m32, batch.inputs, batch.positions, e.segment)
            hit = (logits.argmax(-1) == batch.targets).all(dim=1)
            wrong += [(batch.inputs[j:j + 1], batch.positions, batch.targets[j:j + 1])
                      for j in (~hit).nonzero().flatten().tolist()]
        print(f"L={length}: float32 wrong on {len(wrong)} of {e.samples} ({time.perf_counter() - t0:.0f} s)")
        right64 = 0
        for x, pos, tgt in wrong:
            p = [E.scored_logits(m, x, pos, e.segment).softmax(-1)[0, -1, tgt[0, -1]].item() for m in (m32, m64)]
            ok = bool((E.scored_logits(m64, x, pos, e.segment).argmax(-1) == tgt).all())
            right64 += ok
            print(f"  trigger {E.first_trigger_distance(job, x).item()} from the end: p(answer) float32 {p[0]:.3f}, "
                  f"float64 {p[1]:.3f} ({'right' if ok else 'wrong'} in float64)")
    print(f"float64 right on {right64} of the {len(wrong)} float32 errors ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    main(Path(sys.argv[1]), int(sys.argv[2]))

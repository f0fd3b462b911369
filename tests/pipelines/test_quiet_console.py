"""Lightning's start-up chatter (GPU/TPU availability, the "litlogger" tip, the model summary, why the fit
stopped, advice about logging intervals) goes to the run's logs/lightning.log, not the console; the job's own
lines (final numbers, the run folder) stay. One Trainer construction (jobcli.make_trainer) does it for every job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from classify_helpers import TINY_CLS, make_rows, write_csv
from test_bad_input_corpus import PRE_TINY, sets

NOISE = ("GPU available", "TPU available", "litlogger", "Trainable params", "Total params", "`Trainer.fit` stopped",
         "log_every_n_steps")


def _run(args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqssm.pipelines.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def test_console_keeps_results_and_the_run_log_keeps_lightning(tmp_path):
    csv = write_csv(tmp_path / "t.csv", make_rows(16))
    fa = tmp_path / "g.fa"
    fa.write_text(">a\n" + "ACGTTGCAAC" * 100 + "\n")
    jobs = {
        "classify": (["classify", "train", "--train", csv, "--val", csv, "--out", tmp_path / "cls",
                      *sets(TINY_CLS[:-2] + ["train.progress_bar=true", "train.log_every=50"])],
                     tmp_path / "cls", "seqssm classify train: 12 steps"),
        "pretrain": (["pretrain", "--data", fa, "--out", tmp_path / "pre", *sets(PRE_TINY)], tmp_path / "pre",
                     "seqssm pretrain: 2 steps"),
    }
    for name, (args, run, final) in jobs.items():
        proc = _run(args)
        assert proc.returncode == 0, proc.stderr[-2000:]
        console = proc.stdout + proc.stderr
        assert final in proc.stdout and f"run folder {run}" in proc.stdout, name
        for text in NOISE:
            assert text not in console, (name, text)
        log = (Path(run) / "logs" / "lightning.log").read_text()
        assert "GPU available" in log and "`Trainer.fit` stopped" in log, name
        if name == "classify":
            assert "Epoch 0" in proc.stdout  # the progress bar stays

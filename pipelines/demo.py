"""`make demo` / `python -m seqssm.pipelines.demo`: a byte LM and a DNA classifier on bundled data, with baselines.

1. Trains configs/lm_bytes.yaml (a few minutes on 2 CPU cores) on data/demo/ (the first 300 kB of the E. coli
   K-12 genome, see data/README.md), prints the validation bits per byte next to two reference points computed
   from the data itself (uniform over the symbols that occur, and the order-0 entropy of the training part),
   then continues a prompt taken from the held-out tail.
2. Trains configs/classify_dna.yaml, made smaller (CLASSIFY_DEMO, a few minutes on one CPU thread), on the
   bundled GUE mouse_0 splits (data/demo/gue_mouse_0/) and prints dev and test MCC and accuracy next to the
   k-mer baseline of the project issue (5-mer counts + logistic regression).
3. Trains configs/audio_fsdd.yaml, made smaller (AUDIO_DEMO, a few minutes), on the bundled FSDD subset
   (data/demo/fsdd_jackson/: one speaker, takes 0-4 test, 5-11 train; CC BY-SA 4.0), prints test bits per sample
   next to the uniform and unigram reference points, and generates one second of audio (WAV + PNG).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from seqssm import GenerateConfig
from seqssm.domains.audio import AudioFolder, make_quantizer, split_files, unigram_bits
from seqssm.domains.bytes import ByteFile
from seqssm.pipelines.audio.config import load_job as load_audio_job
from seqssm.pipelines.audio.train import train_audio
from seqssm.pipelines.classify.config import load_job as load_classify_job
from seqssm.pipelines.classify.train import train_classifier
from seqssm.pipelines.cli import main as cli
from seqssm.pipelines.lm.config import load_job as load_lm_job
from seqssm.pipelines.lm.sample import sample_lm
from seqssm.pipelines.lm.train import train_lm

DEMO_DATA = Path("data/demo/ecoli_k12_mg1655_first300k.txt")
DEMO_DNA = Path("data/demo/gue_mouse_0")
DEMO_AUDIO = Path("data/demo/fsdd_jackson")
# audio_fsdd.yaml made small enough for a few minutes on one CPU thread
AUDIO_DEMO = ["model.n_layer=1", "train.max_steps=150", "train.val_every=50", "train.warmup_steps=20",
              "data.crop_len=2048", "train.threads=1"]
KMER_BASELINE_MCC = {"dev": 0.607, "test": 0.552}  # 5-mer counts + logistic regression (project issue)
# classify_dna.yaml made small enough to train for a few minutes on one CPU thread
CLASSIFY_DEMO = ["model.d_model=64", "model.n_layer=3", "train.max_epochs=3", "train.val_every=50",
                 "train.warmup_steps=30"]


def reference_bits(path: Path, split: int) -> dict[str, float]:
    """Bits per byte of two memoryless baselines fitted on the training part, scored on the held-out tail."""
    data = np.fromfile(path, dtype=np.uint8)
    train, val = data[:split], data[split:]
    counts = np.bincount(train, minlength=256).astype(np.float64)
    symbols = int((counts > 0).sum())
    p = (counts + 0.5) / (counts.sum() + 0.5 * 256)  # add-half smoothing so unseen bytes cost finite bits
    return {
        "symbols_in_training_part": symbols,
        "uniform_over_symbols": math.log2(symbols),
        "order0_on_val": float(-np.log2(p[val]).mean()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="seqssm-demo", description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEMO_DATA))
    ap.add_argument("--out", default=None, help="run folder (default runs/demo-<time>)")
    ap.add_argument("--config", default="lm_bytes")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--dna", default=str(DEMO_DNA), help="folder with train.csv, dev.csv, test.csv")
    ap.add_argument("--classify-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override of the classifier's config, after the demo's own")
    ap.add_argument("--audio", default=str(DEMO_AUDIO), help="FSDD-named WAV folder")
    ap.add_argument("--audio-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override of the audio model's config, after the demo's own")
    ap.add_argument("--skip-lm", action="store_true", help="skip the byte LM")
    ap.add_argument("--skip-dna", action="store_true", help="skip the DNA classifier")
    ap.add_argument("--skip-audio", action="store_true", help="skip the audio model")
    args = ap.parse_args(argv)

    out = args.out or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}"
    if not args.skip_lm:
        demo_lm(args, out)
    if not args.skip_dna:
        demo_classify(args, out)
    if not args.skip_audio:
        demo_audio(args, out)
    return 0


def demo_lm(args, out: str) -> None:
    job = load_lm_job(args.config, args.set, data=args.data, out=out)
    print(f"seqssm demo: training a byte LM on {job.data.path} -> {out}", flush=True)
    m = train_lm(job)
    ref = reference_bits(Path(job.data.path), ByteFile(job.data.path, job.data.seq_len, job.data.val_fraction).split)

    print()
    print(f"  steps                 {m['steps']} in {m['seconds']:.1f} s ({m['tokens_per_second']:.0f} tokens/s)")
    print(f"  parameters            {m['parameters']:,}")
    print(f"  final train loss      {m['final_train_loss']:.4f} nats ({m['final_train_bits_per_byte']:.4f} bits/byte)")
    print(f"  val bits per byte     {m['val_bits_per_byte']:.4f}")
    print(f"  uniform over the {ref['symbols_in_training_part']} symbols seen: {ref['uniform_over_symbols']:.4f} bits/byte"
          + ("  (uniform over ACGT)" if ref["symbols_in_training_part"] == 4 else ""))
    print(f"  order-0 (byte frequencies of the training part) on val: {ref['order0_on_val']:.4f} bits/byte")
    gain = ref["order0_on_val"] - m["val_bits_per_byte"]
    print(f"  model vs order-0      {'better' if gain > 0 else 'worse'} by {abs(gain):.4f} bits/byte")

    tail = np.fromfile(job.data.path, dtype=np.uint8)[-job.data.seq_len :]
    prompt = bytes(tail[:64])
    g = job.generate
    gen = GenerateConfig(max_new_tokens=min(g.max_new_tokens, 200), temperature=g.temperature, top_k=g.top_k,
                         top_p=g.top_p, seed=g.seed)
    cont = sample_lm(Path(out) / "model", prompt, gen)
    print()
    print(f"  prompt (held-out bytes): {prompt.decode('utf-8', errors='replace')}")
    print(f"  continuation:            {cont.decode('utf-8', errors='replace')}")
    print(f"\nrun folder: {out} (metrics.json, curves.png, model/)")


def demo_classify(args, out: str) -> None:
    d = Path(args.dna)
    cls_out = str(Path(out) / "classify")
    job = load_classify_job("classify_dna", CLASSIFY_DEMO + list(args.classify_set), train=str(d / "train.csv"),
                   val=str(d / "dev.csv"), test=str(d / "test.csv"), out=cls_out)
    print(f"\nseqssm demo: training a DNA classifier on {d} (GUE mouse_0) -> {cls_out}", flush=True)
    m = train_classifier(job)
    print()
    print(f"  steps                 {m['steps']} ({m['epochs']} epochs) in {m['seconds']:.1f} s; "
          f"{m['parameters']:,} parameters")
    print(f"  {'split':<6} {'strands':<14} {'MCC':>7} {'accuracy':>9}   k-mer baseline MCC")
    for split in ("dev", "test"):
        for mode in ("rc_conjoin", "single_strand"):
            r = m[split][mode]
            print(f"  {split:<6} {mode:<14} {r['mcc']:7.4f} {r['accuracy']:9.4f}   {KMER_BASELINE_MCC[split]:.3f}")
    print(f"\nrun folder: {cls_out} (metrics.json, curves.png, model/)")


def demo_audio(args, out: str) -> None:
    audio_out = Path(out) / "audio"
    job = load_audio_job("audio_fsdd", AUDIO_DEMO + list(args.audio_set), data=args.audio, out=str(audio_out))
    print(f"\nseqssm demo: training an audio model on {args.audio} (FSDD subset) -> {audio_out}", flush=True)
    m = train_audio(job)
    d = job.data
    files = split_files(d.folder, d.split, d.test_takes, d.heldout_speakers, d.test_fraction, d.val_fraction,
                        job.train.seed)
    q = make_quantizer(d.quantizer, d.bits, d.scaling, d.bins)
    clips = {k: [AudioFolder(files[k], job.data.sample_rate, q)[i] for i in range(len(files[k]))]
             for k in ("train", "test")}
    print()
    print(f"  steps                 {m['steps']} in {m['seconds']:.1f} s; {m['parameters']:,} parameters")
    print(f"  convention            {m['convention']}")
    print(f"  test bits per sample  {m['test_bits_per_sample']:.4f} over {m['test_samples']} samples")
    print(f"  uniform               {math.log2(q.vocab_size):.4f}")
    print(f"  unigram (train counts) {unigram_bits(clips['train'], clips['test'], q.vocab_size):.4f}")
    gen = audio_out / "generated"
    cli(["audio", "generate", "--model", str(audio_out), "--out", str(gen), "--seconds", "1", "--threads", "1"])
    print(f"\nrun folder: {audio_out} (metrics.json, curves.png, test.tsv, generated/sample_00.wav and .png)")


if __name__ == "__main__":
    import signal

    from seqssm.pipelines.cli import PROG, exit_on_sigterm, one_line, user_errors

    signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        sys.exit(main())
    except Exception as exc:  # the same one-line treatment as the CLI, for the same user errors
        if isinstance(exc, user_errors()):
            print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
            sys.exit(2)
        raise

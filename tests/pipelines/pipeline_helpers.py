"""Helpers of the pipeline tests (a unique module name, importable from the test files)."""

from __future__ import annotations

import numpy as np

# A model and job small enough that ~30 steps take a few seconds on 2 CPU cores.
TINY = [
    "model.d_model=16",
    "model.n_layer=2",
    "model.ssm.d_state=4",
    "model.scan_backend=reference",
    "data.seq_len=32",
    "data.batch_size=4",
    "data.val_max_windows=4",
    "train.max_steps=30",
    "train.warmup_steps=3",
    "train.lr=0.01",
    "train.val_every=15",
    "train.log_every=5",
    "train.progress_bar=false",
]


def make_text(n: int, seed: int = 0) -> bytes:
    """Bytes with structure a tiny model picks up at once: words from a 6-letter alphabet, separated by spaces."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"acgtno", dtype=np.uint8)
    out = bytearray()
    while len(out) < n:
        out += bytes(rng.choice(letters, size=int(rng.integers(2, 7)))) + b" "
    return bytes(out[:n])


def one_line_error(main, argv, capsys, *needles) -> str:
    """`main(argv)` exits 2 with one `seqssm: error:` line holding every needle; returns that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("seqssm: error:") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def as_sets(pairs) -> list[str]:
    """["k=v", …] -> ["--set", "k=v", …] for a command line."""
    return [x for kv in pairs for x in ("--set", kv)]


FSDD_SPEAKERS = ("ann", "bob", "cy")
FSDD_FREQ = {0: 220.0, 1: 660.0}  # digit 0 is a low tone, digit 1 a high one: a classifier can tell them apart


def fsdd_tone(rng, digit: int, n: int, rate: int = 8000) -> np.ndarray:
    t = np.arange(n) / rate
    return (0.4 * np.sin(2 * np.pi * FSDD_FREQ[digit] * rng.uniform(0.97, 1.03) * t)
            + 0.02 * rng.standard_normal(n)).astype(np.float32)


def write_fsdd_like(root, takes: int = 8):
    """A tiny FSDD-named folder ({digit}_{speaker}_{take}.wav, 8 kHz): digits 0 and 1 as two tones, three speakers,
    `takes` takes each (0-4 are FSDD's test takes), 400-900 samples a clip."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    for speaker in FSDD_SPEAKERS:
        for digit in (0, 1):
            for take in range(takes):
                sf.write(str(root / f"{digit}_{speaker}_{take}.wav"),
                         fsdd_tone(rng, digit, int(rng.integers(400, 900))), 8000)
    return root

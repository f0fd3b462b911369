"""Audio for training: the quantiser a job's settings name, the split of a folder into train / val / test (and
held-out speakers) by file, the convention a bits-per-sample figure is reported with, and the files of a folder
as a pretraining corpus.

Dimension names: l samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from seqssm.domains.audio.data import fsdd_split, parse_fsdd_name, split_by_file
from seqssm.domains.audio.io import AudioInputError, list_audio_files, load_audio
from seqssm.domains.audio.quantize import LinearQuantizer, MuLawQuantizer
from seqssm.domains.corpus import Corpus, existing_path

QUANTIZERS = ("mulaw", "linear")
SPLITS = ("fsdd", "files")


def make_quantizer(kind: str, bits: int, scaling: str = "minmax", bins: str = "sashimi"):
    """The quantiser named `kind` (mulaw: SaShiMi's min-max scaled mu-law; linear) at 2^bits levels."""
    if kind not in QUANTIZERS:
        raise AudioInputError(f"quantizer {kind!r}: must be one of {', '.join(QUANTIZERS)}")
    return MuLawQuantizer(bits, scaling, bins) if kind == "mulaw" else LinearQuantizer(bits)


def split_files(folder: str, split: str, test_takes: Sequence[int], heldout_speakers: Sequence[str],
                test_fraction: float, val_fraction: float, seed: int) -> dict[str, list[Path]]:
    """{"train", "val", "test"[, "heldout"]} lists of files; AudioInputError naming the folder if one is empty.

    split "fsdd": the Free Spoken Digit Dataset's rule, takes in test_takes are the test set; heldout_speakers are
    left out of training and scored apart. split "files": a seeded split of whole files. Validation files always
    come out of the training files."""
    if not folder:
        raise AudioInputError("data.folder is empty: pass --data FOLDER (or --set data.folder=FOLDER)")
    out: dict[str, list[Path]] = {}
    if split == "fsdd":
        train, test = fsdd_split(folder, test_takes, exclude_speakers=heldout_speakers)
        if heldout_speakers:
            takes, held = set(test_takes), set(heldout_speakers)
            out["heldout"] = [f for f in list_audio_files(folder, (".wav",))
                              if parse_fsdd_name(f)[1] in held and parse_fsdd_name(f)[2] in takes]
    else:
        train, test = split_by_file(list_audio_files(folder), test_fraction, seed)
    train, val = split_by_file(train, val_fraction, seed)
    out.update(train=train, val=val, test=test)
    for name, files in out.items():
        if not files:
            raise AudioInputError(f"{folder}: the {name} split is empty ({len(out['train'])} training files)")
    return out


def convention(quantizer, sample_rate: int, split: str, test_takes, heldout_speakers, test_fraction: float,
               val_fraction: float) -> str:
    """The quantisation, rate and split in words: a bits-per-sample figure means nothing without them."""
    if split == "fsdd":
        words = f"FSDD split by take: takes {list(test_takes)} test, the rest train"
        if heldout_speakers:
            words += f"; speakers {list(heldout_speakers)} held out of training"
    else:
        words = f"split by file: {test_fraction:.0%} test"
    return f"{quantizer.name}, {sample_rate} Hz; {words}; validation {val_fraction:.0%} of the training files"


class AudioCorpus(Corpus):
    """The files of a folder (sorted by name), or one file, each resampled, mixed to mono and mu-law quantised once
    (min-max scaled per file, SaShiMi's bins: the convention of `seqssm audio`), kept in memory as uint8/uint16."""

    def __init__(self, path, holdout: float, sample_rate: int = 16000, bits: int = 8, option: str = "--data"):
        from tqdm import tqdm

        self.path = existing_path(path, option, folder_ok=True)
        self.quantizer = make_quantizer("mulaw", bits)
        self.sample_rate, self.vocab_size = sample_rate, 1 << bits
        files = list_audio_files(self.path) if self.path.is_dir() else [self.path]
        dtype = np.uint8 if bits <= 8 else np.uint16
        self.clips = {}
        for f in tqdm(files, desc="decoding audio", unit="file", disable=len(files) < 20):
            self.clips[f.name] = self.quantizer.encode(load_audio(f, sample_rate)[0]).numpy().astype(dtype)
        self.records = self.split({name: len(ids) for name, ids in self.clips.items()}, holdout)

    def tokens(self, name: str, start: int, end: int, strand: str = "+") -> np.ndarray:
        return self.clips[name][start:end].astype(np.int64)

    def extra_files(self) -> dict[str, str]:
        import json

        return {"quantizer.json": json.dumps({**self.quantizer.config(), "sample_rate": self.sample_rate}, indent=2)}


__all__ = ["AudioCorpus", "QUANTIZERS", "SPLITS", "convention", "make_quantizer", "split_files"]

"""seqssm.domains.bytes: any file as a sequence of bytes (256 tokens, the MambaByte setting). Registered as the
`bytes` entry point of the `seqssm.domains` group; the data of `seqssm lm` and of `seqssm pretrain` with
data.source bytes.

Dimension names: l window length.

The file is read through np.memmap (never whole). `ByteFile` splits it into a training head and a held-out tail
by fraction (`lm`); `ByteCorpus` is the same file as a pretraining corpus of one record.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from seqssm.domains import DomainInputError
from seqssm.domains.corpus import Corpus, existing_path

VOCAB_SIZE = 256


class ByteFile:
    """The bytes of one file, split into a training head and a held-out tail of `val_fraction`."""

    def __init__(self, path: str | os.PathLike, seq_len: int, val_fraction: float, option: str = "--data"):
        path = Path(path)
        if not path.exists():
            raise DomainInputError(f"{option} {path}: no such file")
        if not path.is_file():
            raise DomainInputError(f"{option} {path}: not a regular file")
        self.path, self.seq_len = path, seq_len
        self.size = path.stat().st_size
        window = seq_len + 1
        self.split = self.size - int(self.size * val_fraction)
        n_train, n_val = self.split, self.size - self.split
        if n_train < 2 * window or n_val < window:
            need = max(2 * window + window, math.ceil(window / val_fraction), math.ceil(2 * window / (1 - val_fraction)))
            raise DomainInputError(
                f"{option} {path}: {self.size} bytes is too small for data.seq_len={seq_len} and "
                f"data.val_fraction={val_fraction}: need at least {need} bytes "
                f"(2 training windows and 1 validation window of {window} bytes)"
            )
        self._mm: np.memmap | None = None

    @property
    def bytes(self) -> np.memmap:
        if self._mm is None:  # opened lazily, so a DataLoader worker opens its own map
            self._mm = np.memmap(self.path, dtype=np.uint8, mode="r")
        return self._mm

    def __getstate__(self):
        return {**self.__dict__, "_mm": None}

    def window(self, start: int) -> torch.Tensor:
        """Ids (l + 1,) int64 from byte `start`."""
        return torch.from_numpy(np.array(self.bytes[start : start + self.seq_len + 1], dtype=np.int64))


class TrainWindows(Dataset):
    """`num_windows` windows of l+1 bytes at random offsets in the training head; window i is seeded by (seed, i),
    so the draw is the same whatever the number of DataLoader workers."""

    def __init__(self, data: ByteFile, num_windows: int, seed: int):
        self.data, self.num_windows, self.seed = data, num_windows, seed
        self.max_start = data.split - (data.seq_len + 1)

    def __len__(self) -> int:
        return self.num_windows

    def __getitem__(self, i: int) -> torch.Tensor:
        start = int(np.random.default_rng([self.seed, i]).integers(0, self.max_start + 1))
        return self.data.window(start)


class ValWindows(Dataset):
    """Contiguous windows of l+1 bytes at stride l over the held-out tail (at most `max_windows`, 0: all), so
    every held-out byte after the first is a target once."""

    def __init__(self, data: ByteFile, max_windows: int = 0):
        self.data = data
        n = (data.size - data.split - 1) // data.seq_len
        self.num_windows = min(n, max_windows) if max_windows else n

    def __len__(self) -> int:
        return self.num_windows

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < self.num_windows:
            raise IndexError(i)
        return self.data.window(self.data.split + i * self.data.seq_len)


class ByteCorpus(Corpus):
    """One file of bytes as a pretraining corpus: one record, its last `holdout` held out."""

    vocab_size = VOCAB_SIZE

    def __init__(self, path, holdout: float, option: str = "--data"):
        self.path = existing_path(path, option)
        if self.path.stat().st_size == 0:
            raise DomainInputError(f"{self.path}: the file is empty")
        self.bytes = np.memmap(self.path, dtype=np.uint8, mode="r")
        self.records = self.split({self.path.name: len(self.bytes)}, holdout)

    def tokens(self, name: str, start: int, end: int, strand: str = "+") -> np.ndarray:
        return np.asarray(self.bytes[start:end], dtype=np.int64)


@dataclass(frozen=True)
class BytesPlugin:
    """The `bytes` domain: pretraining corpora only (no tokenizer: a byte is its own id)."""

    name: str = "bytes"
    description: str = "any file as bytes (256 tokens)"
    source: str = "bytes"
    strands: bool = False
    user_errors: tuple = (DomainInputError,)

    def corpus(self, path, holdout: float, options=None) -> ByteCorpus:
        return ByteCorpus(path, holdout)

    def vocab_size(self, options=None) -> int:
        return VOCAB_SIZE


plugin = BytesPlugin()

__all__ = ["ByteCorpus", "ByteFile", "BytesPlugin", "TrainWindows", "VOCAB_SIZE", "ValWindows", "plugin"]

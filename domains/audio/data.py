"""Datasets of quantised audio (torch.utils.data; no Lightning) and file-level splits.

Dimension names: l samples per clip or crop · b batch.

AudioFolder    files -> ids (l,) long per clip (load, mono, resample, quantise), cached after the first read.
RandomCrops    one fixed-length crop per clip for training; short clips are padded with the quantiser's zero level
               and a mask (1 real, 0 padding) keeps the padding out of the loss.
WholeClips     whole clips for evaluation; `pad_collate` batches them with the same padding and mask.
fsdd_split     Free Spoken Digit Dataset split by take (takes 0-4 are the dataset's own test split) and speaker.
split_by_file  a seeded split of any file list (never of samples inside a file: that would leak into validation).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from torch.utils.data import Dataset

from seqssm.domains.audio.io import AudioInputError, list_audio_files, load_audio

FSDD_NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>[A-Za-z]+)_(?P<take>\d+)\.wav$")


def _resolve(paths_or_folder) -> list[Path]:
    if isinstance(paths_or_folder, (str, os.PathLike)) and Path(paths_or_folder).is_dir():
        return list_audio_files(paths_or_folder)
    if isinstance(paths_or_folder, (str, os.PathLike)):
        return [Path(paths_or_folder)]  # a single file; load_audio names it if it is missing
    paths = [Path(p) for p in paths_or_folder]
    if not paths:
        raise AudioInputError("audio dataset: the list of files is empty")
    return paths


class AudioFolder(Dataset):
    """Quantised clips: dataset[i] is ids (l,) long for the i-th file (sorted by name when given a folder)."""

    def __init__(self, paths_or_folder, sample_rate: int, quantizer, cache: bool = True):
        self.paths = _resolve(paths_or_folder)
        self.sample_rate = sample_rate
        self.quantizer = quantizer
        self.cache = cache
        self._ids: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def wave(self, index: int) -> torch.Tensor:
        return load_audio(self.paths[index], self.sample_rate)[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        if index in self._ids:
            return self._ids[index]
        ids = self.quantizer.encode(self.wave(index))  # minmax scaling (if any) is per clip: the whole file
        if self.cache:
            self._ids[index] = ids
        return ids

    def lengths(self) -> list[int]:
        return [len(self[i]) for i in range(len(self))]


def _padded(ids: torch.Tensor, length: int, pad_id: int) -> dict[str, torch.Tensor]:
    """ids (n, ...) -> {"ids": (length, ...) padded with pad_id, "mask": (length,)}; trailing dimensions (e.g. a unit
    track stacked beside the samples) are cropped and padded along with the first."""
    out = torch.full((length, *ids.shape[1:]), pad_id, dtype=torch.long)
    mask = torch.zeros(length, dtype=torch.float32)
    n = min(len(ids), length)
    out[:n] = ids[:n]
    mask[:n] = 1.0
    return {"ids": out, "mask": mask}


class RandomCrops(Dataset):
    """One random crop of crop_len samples per clip and epoch: {"ids": (l,) long, "mask": (l,) float32}.

    The offset depends only on (seed, epoch, index), so a run is reproducible whatever the worker count;
    call set_epoch(e) between epochs to draw new crops.
    """

    def __init__(self, dataset, crop_len: int, seed: int = 0, pad_id: int | None = None):
        if crop_len < 1:
            raise ValueError(f"crop_len: must be >= 1, got {crop_len}")
        self.dataset, self.crop_len, self.seed, self.epoch = dataset, crop_len, seed, 0
        self.pad_id = dataset.quantizer.zero_id if pad_id is None else pad_id

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = self.dataset[index]
        spare = len(ids) - self.crop_len
        if spare > 0:
            # a generator per item (not a shared stream) keeps crops independent of the order items are read in
            g = torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) & 0x7FFFFFFFFFFFFFFF)
            start = int(torch.randint(spare + 1, (1,), generator=g))
            ids = ids[start : start + self.crop_len]
        return _padded(ids, self.crop_len, self.pad_id)


class WholeClips(Dataset):
    """Whole clips for evaluation: {"ids": (l,) long, "mask": (l,) float32 of ones}; batch with pad_collate."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = self.dataset[index]
        return {"ids": ids, "mask": torch.ones(len(ids), dtype=torch.float32)}


def pad_collate(pad_id: int) -> Callable[[Sequence[dict]], dict[str, torch.Tensor]]:
    """A DataLoader collate_fn: pads items to the longest, ids with pad_id and mask with 0 -> (b, l) each."""

    def collate(items: Sequence[dict]) -> dict[str, torch.Tensor]:
        length = max(len(it["ids"]) for it in items)
        padded = [_padded(it["ids"][it["mask"] > 0], length, pad_id) for it in items]
        return {key: torch.stack([p[key] for p in padded]) for key in ("ids", "mask")}

    return collate


def parse_fsdd_name(path) -> tuple[int, str, int]:
    """'{digit}_{speaker}_{take}.wav' -> (digit, speaker, take); AudioInputError naming the file otherwise."""
    m = FSDD_NAME.match(Path(path).name)
    if m is None:
        raise AudioInputError(f"{path}: not an FSDD name (expected {{digit}}_{{speaker}}_{{take}}.wav)")
    return int(m["digit"]), m["speaker"], int(m["take"])


def fsdd_split(
    folder, test_takes: Iterable[int] = range(5), exclude_speakers: Iterable[str] = (),
    only_speakers: Iterable[str] | None = None,
) -> tuple[list[Path], list[Path]]:
    """(train, test) file lists of FSDD: takes in test_takes go to test, the rest to train (the dataset's own
    convention is takes 0-4 as test); speakers can be excluded or selected (unknown names are refused)."""
    files = list_audio_files(folder, suffixes=(".wav",))
    parsed = [(f, *parse_fsdd_name(f)) for f in files]
    speakers = {s for _, _, s, _ in parsed}
    excluded, only = set(exclude_speakers), None if only_speakers is None else set(only_speakers)
    for given in (excluded, only or set()):
        unknown = sorted(given - speakers)
        if unknown:
            raise AudioInputError(f"{folder}: unknown FSDD speaker(s) {unknown}; present: {sorted(speakers)}")
    takes = set(test_takes)
    train, test = [], []
    for f, _, speaker, take in parsed:
        if speaker in excluded or (only is not None and speaker not in only):
            continue
        (test if take in takes else train).append(f)
    if not train or not test:
        raise AudioInputError(f"{folder}: the FSDD split leaves {len(train)} train and {len(test)} test files")
    return train, test


def split_by_file(paths: Sequence, val_fraction: float, seed: int = 0) -> tuple[list, list]:
    """(train, val): a seeded shuffle of whole files; val gets round(n · val_fraction) files, at least one when
    val_fraction > 0 and there are two or more files, and train always keeps one."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction: must be in [0, 1), got {val_fraction}")
    paths = list(paths)
    n = len(paths)
    n_val = round(n * val_fraction)
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    val_idx = set(order[:n_val])
    return [p for i, p in enumerate(paths) if i not in val_idx], [p for i, p in enumerate(paths) if i in val_idx]


__all__ = [
    "AudioFolder",
    "RandomCrops",
    "WholeClips",
    "fsdd_split",
    "pad_collate",
    "parse_fsdd_name",
    "split_by_file",
]

"""Datasets, crops, padding masks and file splits, on tiny synthetic folders and on the real FSDD listing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from seqssm.domains.audio import (
    AudioFolder, AudioInputError, MuLawQuantizer, RandomCrops, WholeClips, fsdd_split, pad_collate, split_by_file,
)

from audio_helpers import tone, write


@pytest.fixture
def folder(tmp_path):
    for i, n in enumerate((50, 200, 120)):
        write(tmp_path / f"clip{i}.wav", tone(n, 300 + 100 * i))
    return tmp_path


def test_audio_folder_quantises_each_file(folder):
    q = MuLawQuantizer(8)
    ds = AudioFolder(folder, 8000, q)
    assert len(ds) == 3 and ds.lengths() == [50, 200, 120]
    ids = ds[1]
    assert ids.dtype == torch.long and 0 <= int(ids.min()) and int(ids.max()) < 256
    assert int(ids.min()) == 0 and int(ids.max()) == 255  # minmax: each clip spans the whole range


def test_audio_folder_resamples_to_the_dataset_rate(tmp_path):
    write(tmp_path / "hi.wav", tone(1600, rate=16000), rate=16000)
    assert AudioFolder(tmp_path, 8000, MuLawQuantizer(8)).lengths() == [800]


@pytest.mark.parametrize("crop_len", [32, 50, 80], ids=lambda n: f"crop{n}")
def test_random_crops_are_slices_or_padded_with_mask(folder, crop_len):
    ds = AudioFolder(folder, 8000, MuLawQuantizer(8))
    crops = RandomCrops(ds, crop_len, seed=3)
    for i in range(len(ds)):
        item, full = crops[i], ds[i]
        assert item["ids"].shape == item["mask"].shape == (crop_len,)
        real = int(item["mask"].sum())
        assert real == min(crop_len, len(full))
        assert torch.all(item["mask"][:real] == 1) and torch.all(item["mask"][real:] == 0)
        assert torch.all(item["ids"][real:] == ds.quantizer.zero_id)
        window = full.unfold(0, real, 1)  # every slice of that length: the crop must be one of them
        assert (window == item["ids"][:real]).all(dim=1).any()


def test_random_crops_repeat_by_seed_and_epoch(folder):
    ds = AudioFolder(folder, 8000, MuLawQuantizer(8))
    a, b = RandomCrops(ds, 16, seed=1), RandomCrops(ds, 16, seed=1)
    assert all(torch.equal(a[i]["ids"], b[i]["ids"]) for i in range(3))
    starts = set()
    for epoch in range(8):
        a.set_epoch(epoch)
        starts.add(tuple(a[1]["ids"].tolist()))
    assert len(starts) > 1  # new epochs draw new crops from the 200-sample clip


def test_whole_clips_batch_with_padding(folder):
    q = MuLawQuantizer(8)
    ds = AudioFolder(folder, 8000, q)
    batch = next(iter(DataLoader(WholeClips(ds), batch_size=3, collate_fn=pad_collate(q.zero_id))))
    assert batch["ids"].shape == batch["mask"].shape == (3, 200)
    assert batch["mask"].sum(1).tolist() == [50, 200, 120]
    assert torch.equal(batch["ids"][0, :50], ds[0]) and torch.all(batch["ids"][0, 50:] == q.zero_id)


def test_split_by_file_is_seeded_disjoint_and_complete():
    paths = [f"f{i}.wav" for i in range(20)]
    train, val = split_by_file(paths, 0.25, seed=7)
    assert len(val) == 5 and sorted(train + val) == sorted(paths)
    assert split_by_file(paths, 0.25, seed=7) == (train, val)
    assert split_by_file(paths, 0.25, seed=8)[1] != val
    assert len(split_by_file(paths[:2], 0.01)[1]) == 1  # a non-zero fraction always validates on something


def _fake_fsdd(tmp_path, speakers=("ann", "bob"), takes=range(8)):
    for s in speakers:
        for d in range(2):
            for t in takes:
                (tmp_path / f"{d}_{s}_{t}.wav").write_bytes(b"")  # names only: splitting never opens the files
    return tmp_path


@pytest.mark.parametrize("kw,n_train,n_test", [
    pytest.param({}, 12, 20, id="default-takes-0-4"),
    pytest.param(dict(test_takes=[0]), 28, 4, id="take-0-only"),
    pytest.param(dict(exclude_speakers=["bob"]), 6, 10, id="exclude-bob"),
    pytest.param(dict(only_speakers=["bob"]), 6, 10, id="only-bob"),
])
def test_fsdd_split_on_names(tmp_path, kw, n_train, n_test):
    train, test = fsdd_split(_fake_fsdd(tmp_path), **kw)
    assert (len(train), len(test)) == (n_train, n_test)
    assert not set(train) & set(test)


@pytest.mark.parametrize("kw,words", [
    pytest.param(dict(only_speakers=["zoe"]), "unknown FSDD speaker", id="unknown-speaker"),
    pytest.param(dict(test_takes=range(100)), "0 train", id="empty-train"),
])
def test_fsdd_split_refuses(tmp_path, kw, words):
    with pytest.raises(AudioInputError, match=words):
        fsdd_split(_fake_fsdd(tmp_path), **kw)


def test_fsdd_split_refuses_foreign_names(tmp_path):
    _fake_fsdd(tmp_path)
    (tmp_path / "hello.wav").write_bytes(b"")
    with pytest.raises(AudioInputError, match="hello.wav: not an FSDD name"):
        fsdd_split(tmp_path)


def test_fsdd_real_split_counts(fsdd):
    train, test = fsdd_split(fsdd)
    assert (len(train), len(test)) == (2250, 250)
    names = {p.name for p in test}
    assert {f"{d}_{s}_{t}.wav" for d in range(10) for s in ("george", "jackson", "lucas", "nicolas", "theo")
            for t in range(5)} == names

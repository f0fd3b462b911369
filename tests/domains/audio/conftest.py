"""Shared helpers for the audio plugin tests: tiny synthetic files written with soundfile, and the real FSDD folder
(skipped when the shared data is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[3]
FSDD = ROOT.parent / "shared" / "data" / "audio" / "fsdd"


def write(path: Path, data: np.ndarray, rate: int = 8000, subtype: str = "PCM_16", fmt: str | None = None) -> Path:
    sf.write(str(path), data, rate, subtype=subtype, format=fmt)
    return path


def tone(n: int, freq: float = 440.0, rate: int = 8000, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


@pytest.fixture
def fsdd() -> Path:
    if not FSDD.is_dir():
        pytest.skip(f"shared FSDD data not found at {FSDD}")
    return FSDD


@pytest.fixture(autouse=True)
def _one_thread():
    # the machine is shared: one thread keeps these tests from slowing down (or being slowed by) other jobs
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

"""Fixtures for the audio plugin tests: the real FSDD folder (skipped when the shared data is absent), one torch
thread. File-writing helpers are in audio_helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]
FSDD = ROOT.parent / "shared" / "data" / "audio" / "fsdd"


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

"""Fixtures for the audio plugin tests: the real FSDD folder (skipped when the shared data is absent). File-writing
helpers are in audio_helpers.py; one torch thread per test comes from tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FSDD = ROOT.parent / "shared" / "data" / "audio" / "fsdd"


@pytest.fixture
def fsdd() -> Path:
    if not FSDD.is_dir():
        pytest.skip(f"shared FSDD data not found at {FSDD}")
    return FSDD


"""Helpers for the audio plugin tests: tiny synthetic files written with soundfile. A module of its own (not
conftest.py): `from conftest import ...` resolves to whichever conftest pytest put first on sys.path, so it broke
when these tests were collected after tests/core."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def write(path: Path, data: np.ndarray, rate: int = 8000, subtype: str = "PCM_16", fmt: str | None = None) -> Path:
    sf.write(str(path), data, rate, subtype=subtype, format=fmt)
    return path


def tone(n: int, freq: float = 440.0, rate: int = 8000, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)

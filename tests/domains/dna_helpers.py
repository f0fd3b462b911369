"""Helpers for the DNA plugin tests: where the real data lives (tests using it skip where it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "dna"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/dna is not present")

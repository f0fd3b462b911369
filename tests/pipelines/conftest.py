"""Fixtures of the pipeline tests."""

from __future__ import annotations

import pytest

from pipeline_helpers import make_text


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_bytes(make_text(20_000))
    return p

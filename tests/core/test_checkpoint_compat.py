"""Checkpoints written before ModelConfig was grouped by concern (a flat config.yaml of 40 keys) still load, and
give the outputs the code that wrote them computed (fixtures: tests/core/fixtures/flat_config, made by
make_flat_checkpoints.py with that code)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seqssm import load_pretrained

FIXTURES = Path(__file__).parent / "fixtures" / "flat_config"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def test_fixtures_are_there():
    assert CASES == ["hybrid_lm", "multiscale_lm", "rc_classifier"]


@pytest.mark.parametrize("name", CASES)
def test_flat_checkpoint_loads_with_identical_outputs(name):
    model = load_pretrained(FIXTURES / name).eval()
    saved = load_file(str(FIXTURES / name / "expected.safetensors"))
    with torch.no_grad():
        out = model(saved["input_ids"])
    # same weights, same reference scan, one thread: the same arithmetic, so the same bits
    assert out.shape == saved["output"].shape
    assert torch.equal(out, saved["output"]), float((out - saved["output"]).abs().max())

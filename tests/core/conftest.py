"""Tiny configurations shared by the core tests (reference scan backend: exact, and fast at these sizes)."""

from __future__ import annotations

import pytest
import torch

from seqssm import ModelConfig


def tiny_config(**overrides) -> ModelConfig:
    base = dict(d_model=16, n_layer=2, vocab_size=13, d_state=4, d_conv=4, expand=2, scan_backend="reference")
    base.update(overrides)
    return ModelConfig.from_flat(**base)  # the flat keyword layout, grouped by from_flat


@pytest.fixture
def cfg() -> ModelConfig:
    return tiny_config()


@pytest.fixture
def make_cfg():
    """tiny_config as a fixture, so tests can vary a few fields."""
    return tiny_config


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)

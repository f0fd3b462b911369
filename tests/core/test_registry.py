"""Registries: a new mixer plugs into the model by registering, without editing the block."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

import seqssm
from seqssm import ConfigError, MambaLM
from seqssm.registry import LAYERS, Registry


class ShiftMixer(nn.Module):
    """A toy mixer (y_t = W x_{t-1}) with its own state type, to show the mixer protocol is all a layer needs."""

    def __init__(self, cfg, layer_idx):
        super().__init__()
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x, state=None, return_state=False):
        prev = torch.zeros_like(x[:, :1]) if state is None else state["last"].unsqueeze(1)
        y = self.proj(torch.cat([prev, x[:, :-1]], 1))
        return y, ({"last": x[:, -1]} if state is not None or return_state else None)


@pytest.fixture
def shift_registered(monkeypatch):
    monkeypatch.setitem(LAYERS._items, "shift", ShiftMixer)


def test_new_layer_plugs_in(make_cfg, shift_registered):
    model = MambaLM(make_cfg(layer="shift"))
    assert all(isinstance(b.mixer, ShiftMixer) for b in model.backbone.layers)
    ids = torch.randint(0, 13, (2, 9))
    full = model(ids)
    a, s = model(ids[:, :4], return_state=True)
    b = model(ids[:, 4:], s)
    assert torch.allclose(torch.cat([a, b], 1), full, atol=1e-6)


def test_registry_errors():
    reg = Registry("thing")
    reg.register("a")(int)
    assert reg.get("a") is int and "a" in reg and reg.names() == ["a"]
    with pytest.raises(ConfigError, match=r"^thing: unknown name 'b'; known: a$"):
        reg.get("b")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(float)


def test_core_does_not_import_lightning_or_upper_layers():
    code = (
        "import sys, seqssm; bad = [m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')"
        " or m.startswith(('seqssm.pipelines', 'seqssm.domains'))]; print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
    assert seqssm.__version__ == "0.1.0"

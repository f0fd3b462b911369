"""The Mamba-2 mixer: shapes and init, recurrent decoding equals the parallel pass, segments equal one pass.

Dimension names: b batch · l length · d model width · e inner width · h heads · p head dim · n state · g groups.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqssm import ConfigError, MambaLM
from seqssm.layers import Mamba2
from seqssm.registry import LAYERS


def rel(got, want):
    return ((got - want).norm() / want.norm()).item()


def m2cfg(make_cfg, **kw):
    base = dict(layer="mamba2", d_model=16, mamba2_headdim=8, ngroups=2, d_state=4)  # e 32, h 4, p 8
    base.update(kw)
    return make_cfg(**base)


def test_registered_shapes_and_init(make_cfg):
    m = LAYERS.get("mamba2")(m2cfg(make_cfg), 0)
    assert isinstance(m, Mamba2) and (m.nheads, m.headdim, m.ngroups) == (4, 8, 2)
    cx = 32 + 2 * 2 * 4
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "in_proj.weight": (2 * 32 + 2 * 2 * 4 + 4, 16), "conv1d.weight": (cx, 1, 4), "conv1d.bias": (cx,),
        "dt_bias": (4,), "A_log": (4,), "D": (4,), "norm.weight": (32,), "out_proj.weight": (16, 32),
    }
    dt = F.softplus(m.dt_bias.detach().double())
    assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)
    A = -torch.exp(m.A_log.detach())
    assert (A <= -1 + 1e-6).all() and (A >= -16 - 1e-4).all()


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)], ids=["float64", "float32"])
@pytest.mark.parametrize("prefill", [0, 7], ids=["no-prefill", "prefill-7"])
def test_step_equals_parallel(make_cfg, dtype, tol, prefill):
    model = MambaLM(m2cfg(make_cfg, scan_backend="chunked")).to(dtype)
    ids = torch.randint(0, 13, (2, 20))
    full = model(ids)
    if prefill:
        logits, state = model(ids[:, :prefill], return_state=True)
        stepped = [logits]
    else:
        state, stepped = model.allocate_state(2), []
    for t in range(prefill, 20):
        stepped.append(model.step(ids[:, t], state).unsqueeze(1))
    assert rel(torch.cat(stepped, 1), full) < tol


@pytest.mark.parametrize("backend", ["chunked", "reference"])
def test_segments_equal_one_pass(make_cfg, backend):
    model = MambaLM(m2cfg(make_cfg, scan_backend=backend)).double()
    ids = torch.randint(0, 13, (2, 30))
    full = model(ids)
    pieces, state = [], None
    for a, b in [(0, 1), (1, 9), (9, 30)]:
        logits, state = model(ids[:, a:b], state, return_state=True)
        pieces.append(logits)
    assert rel(torch.cat(pieces, 1), full) < 1e-10
    assert state.layers[0].ssm_state.shape == (2, 4, 8, 4)


def test_gradients_reach_every_parameter(make_cfg):
    model = MambaLM(m2cfg(make_cfg, scan_backend="chunked"))
    model(torch.randint(0, 13, (2, 10))).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_config_errors_name_the_key(make_cfg):
    with pytest.raises(ConfigError, match="mamba2.headdim"):
        Mamba2(m2cfg(make_cfg, mamba2_headdim=5), 0)
    with pytest.raises(ConfigError, match="ngroups"):
        Mamba2(m2cfg(make_cfg, ngroups=3), 0)

"""The Mamba mixer: mamba_ssm's initialisation, parameter shapes, and segment / step consistency."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqssm import MambaLM
from seqssm.layers import Mamba, RMSNorm
from seqssm.registry import LAYERS


def test_registered_and_shapes(make_cfg):
    cfg = make_cfg(d_model=32, d_state=8, d_conv=3, dt_rank=None)
    m = LAYERS.get("mamba")(cfg, 0)
    assert isinstance(m, Mamba)
    e, r = 64, 2
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "A_log": (e, 8), "D": (e,),
        "in_proj.weight": (2 * e, 32), "conv1d.weight": (e, 1, 3), "conv1d.bias": (e,),
        "x_proj.weight": (r + 16, e), "dt_proj.weight": (e, r), "dt_proj.bias": (e,), "out_proj.weight": (32, e),
    }


def test_init_A_log_D_and_flags(make_cfg):
    m = Mamba(make_cfg(d_state=6), 0)
    want = torch.log(torch.arange(1, 7, dtype=torch.float32)).expand(32, 6)
    assert torch.equal(m.A_log.detach(), want)
    assert torch.equal(m.D.detach(), torch.ones(32))
    assert m.A_log._no_weight_decay and m.D._no_weight_decay


@pytest.mark.parametrize("dt_min, dt_max", [(1e-3, 1e-1), (1e-2, 2e-2)], ids=["default-range", "narrow-range"])
def test_init_dt_bias_in_range(make_cfg, dt_min, dt_max):
    m = Mamba(make_cfg(d_model=64, dt_min=dt_min, dt_max=dt_max), 0)
    dt = F.softplus(m.dt_proj.bias.detach().double())
    assert dt.min() >= dt_min * (1 - 1e-5) and dt.max() <= dt_max * (1 + 1e-5)
    # log-uniform: the samples spread over the range rather than sitting at one end
    assert dt.max() / dt.min() > (dt_max / dt_min) ** 0.5


def test_init_dt_floor_and_weight(make_cfg):
    m = Mamba(make_cfg(dt_min=1e-6, dt_max=1e-5, dt_init_floor=1e-3), 0)
    assert torch.allclose(F.softplus(m.dt_proj.bias.detach()), torch.full((32,), 1e-3), rtol=1e-4)
    r = m.dt_rank
    assert m.dt_proj.weight.abs().max() <= r**-0.5
    c = Mamba(make_cfg(dt_init="constant", dt_scale=2.0), 0)
    assert torch.allclose(c.dt_proj.weight, torch.full_like(c.dt_proj.weight, 2.0 * r**-0.5))


@pytest.mark.parametrize("n_layer", [1, 4], ids=["1-layer", "4-layers"])
def test_out_proj_rescaled_and_biases(make_cfg, n_layer):
    cfg = make_cfg(d_model=32, n_layer=n_layer, bias=True)
    model = MambaLM(cfg)
    bound = 1 / math.sqrt(cfg.d_inner) / math.sqrt(n_layer)  # kaiming_uniform(a=sqrt 5) bound / sqrt(n_layer)
    for blk in model.backbone.layers:
        w = blk.mixer.out_proj.weight.detach()
        assert w.abs().max() <= bound * (1 + 1e-6)
        assert w.abs().max() > 0.9 * bound
        assert abs(w.std().item() - bound / math.sqrt(3)) < 0.1 * bound
        assert torch.count_nonzero(blk.mixer.in_proj.bias) == 0
        assert torch.count_nonzero(blk.mixer.dt_proj.bias) == cfg.d_inner  # kept, not zeroed
    emb = model.backbone.embedding.weight.detach()
    assert abs(emb.std().item() - 0.02) < 0.004


def test_rmsnorm_matches_formula():
    n = RMSNorm(8, eps=1e-5)
    with torch.no_grad():
        n.weight.copy_(torch.linspace(0.5, 2, 8))
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    want = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * n.weight.double()
    assert torch.allclose(n.double()(x), want, atol=1e-14)
    assert n.float()(x.bfloat16()).dtype == torch.bfloat16


@pytest.mark.parametrize("split", [1, 3, 11], ids=["split-1", "split-3", "split-11"])
def test_mixer_segments_and_steps_equal_one_pass(make_cfg, split):
    m = Mamba(make_cfg(), 0).double()
    x = torch.randn(2, 16, 16, dtype=torch.float64)
    y, _ = m(x)
    y1, s = m(x[:, :split], return_state=True)
    y2, _ = m(x[:, split:], s)
    assert torch.allclose(torch.cat([y1, y2], 1), y, atol=1e-12, rtol=0)
    state = m.allocate_state(2)
    assert state.ssm_state.dtype == torch.float64 and state.conv_state.shape == (2, 32, 3)
    ys = torch.stack([m.step(x[:, t], state) for t in range(16)], 1)
    assert torch.allclose(ys, y, atol=1e-12, rtol=0)


def test_mixer_float32_state_is_fp32(make_cfg):
    m = Mamba(make_cfg(), 0).to(torch.bfloat16)
    s = m.allocate_state(3)
    assert s.ssm_state.dtype == torch.float32 and s.conv_state.dtype == torch.bfloat16

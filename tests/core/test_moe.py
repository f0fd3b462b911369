"""Switch MoE feed-forward and MoE-Mamba interleaving: routing shapes, the load-balancing loss against the
formula by hand, exact counting of tokens dropped over capacity, router gradients, and model integration.

Dimension names: b batch · l length · d model width · E experts · T tokens.
"""

from __future__ import annotations

import math

import pytest
import torch

from seqssm import ConfigError, MambaLM
from seqssm.layers import SwitchMoE


def moe(make_cfg, d=2, E=2, cf=1.25, f=4):
    layer = SwitchMoE(make_cfg(d_model=d, n_experts=E, capacity_factor=cf, moe_d_ff=f), 0).double()
    return layer


def test_routing_shapes_and_counts(make_cfg):
    layer = moe(make_cfg, d=8, E=4).train()
    y = layer(torch.randn(3, 5, 8, dtype=torch.float64))
    assert y.shape == (3, 5, 8) and layer.last_expert_index.shape == (3, 5)
    assert layer.last_expert_index.min() >= 0 and layer.last_expert_index.max() < 4
    assert layer.last_tokens == 15 and layer.tokens_total == 15 and layer.last_aux_loss.dim() == 0
    assert layer.capacity(15) == math.ceil(1.25 * 15 / 4)


def test_aux_loss_equals_switch_formula_by_hand(make_cfg):
    layer = moe(make_cfg)
    with torch.no_grad():
        layer.router.weight.copy_(torch.eye(2))  # logits = x
    x = torch.tensor([[[2.0, 0.0], [1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    layer(x)
    s = lambda v: 1 / (1 + math.exp(-v))  # softmax of two logits: p_0 = sigmoid(x0 - x1)
    p0 = [s(2.0), s(1.0), s(-1.0)]
    P0, P1 = sum(p0) / 3, sum(1 - q for q in p0) / 3
    f0, f1 = 2 / 3, 1 / 3  # tokens 0, 1 -> expert 0; token 2 -> expert 1
    assert layer.last_aux_loss.item() == pytest.approx(2 * (f0 * P0 + f1 * P1), abs=1e-12)
    assert layer.last_expert_index.tolist() == [[0, 0, 1]]


def test_dropped_tokens_counted_exactly_and_pass_through(make_cfg):
    """8 tokens, 2 experts, capacity factor 0.5 -> capacity 2; 7 tokens choose expert 0, so 5 are dropped."""
    layer = moe(make_cfg, cf=0.5).train()
    with torch.no_grad():
        layer.router.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))  # logits (x0, 0)
    x = torch.tensor([[1.0, 0.3], [2.0, -1.0], [-1.0, 0.5], [0.5, 0.5], [1.5, 1.0], [0.2, -0.2], [3.0, 1.0],
                      [0.7, 2.0]], dtype=torch.float64).view(1, 8, 2)
    y = layer(x)
    assert layer.capacity(8) == 2
    assert layer.last_expert_index.tolist() == [[0, 0, 1, 0, 0, 0, 0, 0]]
    assert layer.last_dropped == 5 and layer.dropped_total == 5
    zero_rows = (y[0].abs().sum(-1) == 0).tolist()
    assert zero_rows == [False, False, False, True, True, True, True, True]  # first two of expert 0 are kept
    layer(x)
    assert layer.dropped_total == 10
    layer.eval()
    layer(x)
    assert layer.last_dropped == 0 and layer.dropped_total == 10  # eval mode: no capacity, nothing dropped


def test_gradient_reaches_router(make_cfg):
    layer = moe(make_cfg, d=6, E=3).train()
    y = layer(torch.randn(2, 7, 6, dtype=torch.float64))
    y.pow(2).sum().backward()  # through the gate value p_i(x) (Switch eq. 2)
    assert layer.router.weight.grad.abs().sum() > 0
    layer.zero_grad()
    layer(torch.randn(2, 7, 6, dtype=torch.float64))
    layer.last_aux_loss.backward()  # through P_i
    assert layer.router.weight.grad.abs().sum() > 0


def test_moe_mamba_model(make_cfg):
    cfg = make_cfg(n_layer=2, moe_layer_idx=[1], n_experts=3, moe_aux_weight=0.1, capacity_factor=0.5)
    model = MambaLM(cfg).double()
    assert model.backbone.layers[0].moe is None and isinstance(model.backbone.layers[1].moe, SwitchMoE)
    assert model.aux_loss().item() == 0.0
    ids = torch.randint(0, 13, (2, 12))
    logits = model(ids)
    layer = model.backbone.layers[1].moe
    assert model.aux_loss().item() == pytest.approx(0.1 * layer.last_aux_loss.item(), abs=1e-12)
    assert model.dropped_tokens() == layer.last_dropped > 0  # capacity ceil(0.5 * 24 / 3) = 4 per expert
    (logits.sum() + model.aux_loss()).backward()
    assert layer.router.weight.grad.abs().sum() > 0
    model.eval()
    full = model(ids)
    _, state = model(ids[:, :5], return_state=True)
    stepped = [model.step(ids[:, t], state) for t in range(5, 12)]
    assert (torch.stack(stepped, 1) - full[:, 5:]).abs().max() < 1e-10


def test_moe_config_errors(make_cfg):
    with pytest.raises(ConfigError, match="moe.layer_idx"):
        MambaLM(make_cfg(moe_layer_idx=[5]))
    with pytest.raises(ConfigError, match="capacity_factor"):
        MambaLM(make_cfg(capacity_factor=0.0))

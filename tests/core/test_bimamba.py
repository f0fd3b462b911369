"""The bidirectional mixer "bimamba": shapes, gradients, it sees the future (mamba does not), tying, no step."""

from __future__ import annotations

import pytest
import torch

from seqssm import ConfigError, LAYERS, MambaLM, SequenceClassifier, build_model
from seqssm.layers import BiMamba


def test_registered_in_layers():
    assert LAYERS.get("bimamba") is BiMamba


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_forward_shapes_and_gradients_flow(make_cfg, tied):
    cfg = make_cfg(layer="bimamba", bidirectional_weight_tie=tied)
    mixer = BiMamba(cfg, 0)
    x = torch.randn(2, 7, cfg.d_model, requires_grad=True)
    y, state = mixer(x)
    assert y.shape == (2, 7, cfg.d_model) and state is None
    y.square().sum().backward()
    assert x.grad is not None and bool(x.grad.abs().gt(0).all())
    params = dict(mixer.named_parameters())
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params.values())
    assert any(k.startswith("bwd.") for k in params) != tied  # tied: one Mamba's parameters only


@pytest.mark.parametrize("layer,sees_future", [("mamba", False), ("bimamba", True)])
def test_first_position_sees_the_last_token_only_when_bidirectional(make_cfg, layer, sees_future):
    model = MambaLM(make_cfg(layer=layer)).double().eval()
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    changed = ids.clone()
    changed[0, -1] = 7
    with torch.no_grad():
        first_a, first_b = model(ids)[0, 0], model(changed)[0, 0]
    assert (not torch.allclose(first_a, first_b, atol=1e-12)) == sees_future


def test_classifier_with_bimamba_and_checkpoint_round_trip(make_cfg, tmp_path):
    model = build_model(make_cfg(layer="bimamba", head="classify", num_classes=3, bidirectional_weight_tie=True))
    assert isinstance(model, SequenceClassifier)
    ids = torch.randint(0, 13, (2, 5))
    back = SequenceClassifier.from_pretrained(model.save_pretrained(tmp_path / "ck"))
    assert back.config.ssm.bidirectional_weight_tie is True
    with torch.no_grad():
        assert torch.equal(model(ids), back(ids))


def test_no_recurrent_mode(make_cfg):
    model = MambaLM(make_cfg(layer="bimamba"))
    with pytest.raises(ConfigError, match="bimamba.*no recurrent state or step") as err:
        model.generate(torch.tensor([[1, 2]]), max_new_tokens=2)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="bimamba"):
        model(torch.tensor([[1, 2]]), return_state=True)

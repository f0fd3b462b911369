"""The LTI S4D mixer: parallel scan equals the recurrence, streaming equals one pass, and it plugs into models."""

from __future__ import annotations

import pytest
import torch

from seqssm import LAYERS, build_model
from seqssm.layers.s4d import S4D


@pytest.mark.parametrize("backend", ["reference", "chunked"])
def test_parallel_forward_equals_step_by_step(make_cfg, backend):
    layer = S4D(make_cfg(scan_backend=backend)).double()
    u = torch.randn(2, 9, 16, dtype=torch.float64)
    y, _ = layer(u)
    state = layer.allocate_state(2)
    steps = torch.stack([layer.step(u[:, t], state) for t in range(u.shape[1])], dim=1)
    torch.testing.assert_close(steps, y, atol=1e-10, rtol=0)


@pytest.mark.parametrize("split", [1, 4, 8], ids=lambda s: f"split{s}")
def test_two_segments_equal_one_pass(make_cfg, split):
    layer = S4D(make_cfg()).double()
    u = torch.randn(2, 9, 16, dtype=torch.float64)
    whole, last = layer(u, return_state=True)
    a, state = layer(u[:, :split], return_state=True)
    b, state = layer(u[:, split:], state=state)
    torch.testing.assert_close(torch.cat([a, b], dim=1), whole, atol=1e-10, rtol=0)
    torch.testing.assert_close(state.ssm_state, last.ssm_state, atol=1e-10, rtol=0)


def test_registered_and_usable_as_model_layer(make_cfg):
    assert LAYERS.get("s4d") is S4D
    model = build_model(make_cfg(layer="s4d")).double()
    ids = torch.randint(13, (2, 7))
    logits = model(ids)
    state = model.allocate_state(batch_size=2)
    steps = torch.stack([model.step(ids[:, t], state) for t in range(7)], dim=1)
    torch.testing.assert_close(steps, logits, atol=1e-10, rtol=0)


def test_unknown_a_init_is_refused(make_cfg):
    with pytest.raises(ValueError, match="a_init"):
        S4D(make_cfg(), a_init="lin")

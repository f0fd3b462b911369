"""Segmented backpropagation (seqssm.tbptt): the exact mode gives the gradients of one full pass, for every
mixer with a recurrent state; the truncated mode gives the same loss and cuts the gradient at the boundaries."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqssm import MambaLM, build_model
from seqssm.tbptt import segmented_backward, state_tensors

MODELS = {
    "mamba-reference": dict(),
    "mamba-chunked": dict(scan_backend="chunked"),
    "mamba2": dict(layer="mamba2", mamba2_headdim=8),
    "s4d": dict(layer="s4d"),
    "attention-hybrid": dict(attn_layer_idx=[1]),
    "multiscale": dict(d_model=8, n_layer=1, pool_factors=[2, 2], stage_layers=["mamba", "s4d", "mamba"]),
}


def _grads(model) -> dict[str, torch.Tensor]:
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def _full_pass(model, inputs, targets):
    model.zero_grad()
    logits = model(inputs)
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    loss.backward()
    return float(loss.detach()), _grads(model)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


# the multi-scale model trains on segments of whole pooling groups (4 here): mid-group it runs decoding steps
CASES = [(k, s) for k in MODELS for s in (7, 16, 40) if not (k == "multiscale" and s % 4)]


@pytest.mark.parametrize("kind, segment", CASES, ids=[f"{k}-seg{s}" for k, s in CASES])
def test_exact_segments_give_the_full_pass_gradients(make_cfg, kind, segment):
    torch.manual_seed(1)
    model = build_model(make_cfg(**MODELS[kind])).double()
    ids = torch.randint(0, 13, (2, 49))
    inputs, targets = ids[:, :-1], ids[:, 1:]
    loss_full, g_full = _full_pass(model, inputs, targets)
    model.zero_grad()
    loss_seg = segmented_backward(model, inputs, targets, segment, mode="exact")
    g_seg = _grads(model)
    assert loss_seg == pytest.approx(loss_full, rel=1e-12)
    assert g_seg.keys() == g_full.keys() and len(g_full) > 5
    for k in g_full:
        assert _rel(g_seg[k], g_full[k]) < 1e-10, k


def test_truncated_segments_cut_the_gradient_at_the_boundary(make_cfg):
    """Same loss as the full pass; the gradient differs, and equals the sum of each segment's own gradient."""
    torch.manual_seed(2)
    model = MambaLM(make_cfg()).double()
    ids = torch.randint(0, 13, (2, 33))
    inputs, targets = ids[:, :-1], ids[:, 1:]
    loss_full, g_full = _full_pass(model, inputs, targets)
    model.zero_grad()
    loss_tr = segmented_backward(model, inputs, targets, 16, mode="truncated")
    g_tr = _grads(model)
    assert loss_tr == pytest.approx(loss_full, rel=1e-12)
    a_log = "backbone.layers.0.mixer.A_log"
    assert _rel(g_tr[a_log], g_full[a_log]) > 1e-4  # the first half's influence on the second half is dropped
    # by hand: segment 2 from a detached state
    model.zero_grad()
    _, state = model(inputs[:, :16], return_state=True)
    first = F.cross_entropy(model(inputs[:, :16]).flatten(0, 1), targets[:, :16].flatten(), reduction="sum")
    logits = model(inputs[:, 16:], state=state.detach())
    second = F.cross_entropy(logits.flatten(0, 1), targets[:, 16:].flatten(), reduction="sum")
    ((first + second) / targets.numel()).backward()
    for k, g in _grads(model).items():
        assert _rel(g_tr[k], g) < 1e-10, k


def test_state_tensors_cover_every_layer(make_cfg):
    model = MambaLM(make_cfg(attn_layer_idx=[1]))
    _, state = model(torch.randint(0, 13, (1, 5)), return_state=True)
    assert len(state_tensors(state)) == 4  # mamba: conv + ssm state; attention: keys + values


@pytest.mark.parametrize("kw, match", [(dict(mode="full"), "mode"), (dict(segment_len=0), "segment_len")],
                         ids=["bad-mode", "zero-segment"])
def test_bad_arguments(make_cfg, kw, match):
    model = MambaLM(make_cfg())
    ids = torch.randint(0, 13, (1, 9))
    args = dict(segment_len=4, mode="exact") | kw
    with pytest.raises(ValueError, match=match):
        segmented_backward(model, ids[:, :-1], ids[:, 1:], **args)

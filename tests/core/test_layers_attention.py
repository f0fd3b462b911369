"""The attention mixer and hybrid stacks: decoding equals the parallel pass, segments equal one pass, causality,
RoPE's relative-position property, ALiBi against its formula, NoPE's order-blindness within the prefix, and a hybrid
MambaLM that generates and round-trips a checkpoint.

Dimension names: b batch · l length · d model width · h heads · p head dim.
"""

from __future__ import annotations

import pytest
import torch

from seqssm import ConfigError, MambaLM, load_pretrained
from seqssm.layers import Attention, Mamba
from seqssm.layers.attention import apply_rope, rope_angles
from seqssm.state import KVCache

TOLS = [(torch.float64, 1e-10), (torch.float32, 1e-4)]


def rel(got, want):
    return ((got - want).norm() / want.norm()).item()


POSITIONS = ["rope", "alibi", "none"]


def layer(make_cfg, dtype, position="rope", **kw):
    cfg = make_cfg(d_model=16, n_heads=4, **kw)
    cfg.attention.position = position
    return Attention(cfg, 0).to(dtype)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("dtype, tol", TOLS, ids=["float64", "float32"])
@pytest.mark.parametrize("prefill", [0, 5], ids=["no-prefill", "prefill-5"])
def test_step_equals_parallel(make_cfg, dtype, tol, prefill, position):
    attn = layer(make_cfg, dtype, position)
    x = torch.randn(2, 12, 16, dtype=dtype)
    full, _ = attn(x)
    if prefill:
        first, state = attn(x[:, :prefill], return_state=True)
        outs = [first]
    else:
        state, outs = attn.allocate_state(2), []
    for t in range(prefill, 12):
        outs.append(attn.step(x[:, t], state).unsqueeze(1))
    assert state.offset == 12 and state.keys.shape == (2, 4, 12, 4)
    assert rel(torch.cat(outs, 1), full) < tol


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("dtype, tol", TOLS, ids=["float64", "float32"])
def test_segments_equal_one_pass(make_cfg, dtype, tol, position):
    attn = layer(make_cfg, dtype, position)
    x = torch.randn(2, 20, 16, dtype=dtype)
    full, _ = attn(x)
    pieces, state = [], None
    for a, b in [(0, 3), (3, 4), (4, 13), (13, 20)]:
        y, state = attn(x[:, a:b], state, return_state=True)
        pieces.append(y)
    assert rel(torch.cat(pieces, 1), full) < tol


@pytest.mark.parametrize("position", POSITIONS)
def test_causal(make_cfg, position):
    attn = layer(make_cfg, torch.float64, position)
    x = torch.randn(1, 10, 16, dtype=torch.float64)
    y, _ = attn(x)
    x2 = x.clone()
    x2[:, 6] += 1.0
    y2, _ = attn(x2)
    assert torch.equal(y[:, :6], y2[:, :6])
    assert (y[:, 6:] - y2[:, 6:]).abs().max() > 1e-3


def test_rope_scores_depend_on_relative_position():
    """<RoPE(q, m), RoPE(k, n)> depends on m - n only (RoFormer section 3.4.2), and the rotation keeps norms."""
    q, k = torch.randn(1, 1, 1, 8, dtype=torch.float64), torch.randn(1, 1, 1, 8, dtype=torch.float64)

    def score(m, n):
        cm, sm = rope_angles(torch.tensor([m]), 8, 100.0, torch.float64)
        cn, sn = rope_angles(torch.tensor([n]), 8, 100.0, torch.float64)
        return (apply_rope(q, cm, sm) * apply_rope(k, cn, sn)).sum().item()

    assert score(7, 3) == pytest.approx(score(104, 100), abs=1e-10)
    assert abs(score(7, 3) - score(3, 7)) > 1e-6
    c, s = rope_angles(torch.tensor([5]), 8, 100.0, torch.float64)
    assert apply_rope(q, c, s).norm().item() == pytest.approx(q.norm().item(), abs=1e-12)


def test_alibi_is_its_formula(make_cfg):
    """softmax(q kᵀ / sqrt(p) - m_h (i - j), causal) v with m_h = 2^(-8 (h + 1) / H), written out."""
    attn = layer(make_cfg, torch.float64, "alibi")
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    q, k, v = attn._heads(x)  # (b, h, l, p)
    i = torch.arange(9, dtype=torch.float64)
    slopes = torch.tensor([2.0 ** (-8 * (h + 1) / 4) for h in range(4)], dtype=torch.float64)
    scores = q @ k.transpose(-1, -2) / 2.0 - slopes[:, None, None] * (i[:, None] - i[None, :])
    scores = scores.masked_fill(torch.ones(9, 9, dtype=torch.bool).triu(1), float("-inf"))
    want = attn._merge(torch.softmax(scores, -1) @ v)
    assert rel(attn(x)[0], want) < 1e-12


@pytest.mark.parametrize("position, blind", [("none", True), ("rope", False), ("alibi", False)])
def test_only_nope_is_blind_to_order_within_the_prefix(make_cfg, position, blind):
    """Without a position signal, the last token's output depends on the set of earlier tokens, not their order."""
    attn = layer(make_cfg, torch.float64, position)
    x = torch.randn(1, 8, 16, dtype=torch.float64)
    shuffled = torch.cat([x[:, [3, 0, 6, 1, 5, 2, 4]], x[:, 7:]], dim=1)
    diff = (attn(x)[0][:, -1] - attn(shuffled)[0][:, -1]).abs().max().item()
    assert (diff < 1e-12) if blind else (diff > 1e-6)


def test_rope_base_changes_output(make_cfg):
    torch.manual_seed(1)
    a = layer(make_cfg, torch.float64)
    b = layer(make_cfg, torch.float64, rope_base=50.0)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 6, 16, dtype=torch.float64)
    assert (a(x)[0] - b(x)[0]).abs().max() > 1e-6


def test_config_errors(make_cfg):
    with pytest.raises(ConfigError, match="n_heads"):
        Attention(make_cfg(d_model=16, n_heads=3), 0)
    with pytest.raises(ConfigError, match="n_heads"):
        Attention(make_cfg(d_model=16, n_heads=16), 0)  # head dim 1 is odd
    with pytest.raises(ConfigError, match="attention.layer_idx"):
        MambaLM(make_cfg(attn_layer_idx=[2]))
    assert make_cfg(d_model=16).resolved_n_heads == 1 and make_cfg(d_model=256).resolved_n_heads == 4
    cfg = make_cfg(d_model=16, n_heads=16)
    cfg.attention.position = "alibi"
    Attention(cfg, 0)  # an odd head dim is fine without RoPE
    cfg.attention.position = "sinusoid"
    with pytest.raises(ConfigError, match="attention.position"):
        cfg.validate()


def test_wrong_state_names_state(make_cfg):
    attn = layer(make_cfg, torch.float32)
    with pytest.raises(ValueError, match="state"):
        attn(torch.randn(2, 3, 16), state=KVCache(torch.zeros(2, 3, 0, 4), torch.zeros(2, 3, 0, 4)))


def test_hybrid_lm_generates_and_round_trips(make_cfg, tmp_path):
    cfg = make_cfg(n_layer=3, attn_layer_idx=[1], n_heads=2)
    model = MambaLM(cfg).double().eval()
    kinds = [type(b.mixer) for b in model.backbone.layers]
    assert kinds == [Mamba, Attention, Mamba]
    ids = torch.randint(0, 13, (2, 9))
    full = model(ids)
    logits, state = model(ids[:, :4], return_state=True)
    stepped = [logits] + [model.step(ids[:, t], state).unsqueeze(1) for t in range(4, 9)]
    assert rel(torch.cat(stepped, 1), full) < 1e-10
    out = model.generate(ids[:, :3], max_new_tokens=5, temperature=0)
    assert out.shape == (2, 8)
    model.save_pretrained(tmp_path / "ckpt")
    loaded = load_pretrained(tmp_path / "ckpt").double()
    assert loaded.config.attention.layer_idx == [1]
    assert torch.equal(loaded(ids), full)
    assert torch.equal(loaded.generate(ids[:, :3], max_new_tokens=5, temperature=0), out)

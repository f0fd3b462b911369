"""Packed sequences (seq_idx) through the whole model, and padding with a bidirectional mixer.

Dimension names: b batch · l length · d model width.
"""

from __future__ import annotations

import pytest
import torch

from seqssm import ModelConfig, build_model

LAYERS = ["mamba", "s4d", "attention"]


def tiny(layer: str, head: str = "lm", **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig.from_flat(d_model=16, n_layer=2, vocab_size=10, layer=layer, head=head, scan_backend="chunked", **kw)
    return build_model(cfg).double().eval()


@pytest.mark.parametrize("layer", LAYERS)
def test_packed_row_equals_separate_sequences(layer):
    model = tiny(layer)
    lens = [5, 1, 11]
    ids = torch.randint(0, 10, (1, sum(lens)), generator=torch.Generator().manual_seed(1))
    seq_idx = torch.repeat_interleave(torch.arange(3), torch.tensor(lens))[None]
    packed, _ = model.backbone(ids, seq_idx=seq_idx)
    parts, start = [], 0
    for n in lens:
        parts.append(model.backbone(ids[:, start : start + n])[0])
        start += n
    assert torch.allclose(packed, torch.cat(parts, 1), rtol=0, atol=1e-12)


def test_mamba2_refuses_packing():
    model = tiny("mamba2", mamba2_headdim=8)
    with pytest.raises(ValueError, match="seq_idx: packed sequences are not supported by the mamba2 layer"):
        model.backbone(torch.zeros(1, 4, dtype=torch.long), seq_idx=torch.zeros(1, 4, dtype=torch.long))


@pytest.mark.parametrize("pooling", ["mean", "max", "last"])
def test_bimamba_classifier_ignores_right_padding(pooling):
    """The reversed scan of a bidirectional mixer would read the padding before the real tokens; the classifier
    marks padding with its own seq_idx, so a padded row scores exactly like the same row unpadded."""
    model = tiny("bimamba", head="classify", pooling=pooling)
    g = torch.Generator().manual_seed(2)
    short = torch.randint(0, 10, (1, 7), generator=g)
    padded = torch.cat([short, torch.randint(0, 10, (1, 5), generator=g)], 1)
    mask = torch.cat([torch.ones(1, 7), torch.zeros(1, 5)], 1).long()
    want = model(short)
    got = model(padded, attention_mask=mask)
    assert torch.allclose(got, want, rtol=0, atol=1e-12)


def test_classifier_mask_shape_is_checked_first():
    model = tiny("bimamba", head="classify")
    with pytest.raises(ValueError, match=r"attention_mask: expected shape \(1, 6\)"):
        model(torch.zeros(1, 6, dtype=torch.long), attention_mask=torch.ones(1, 5))


def test_bimamba_hidden_states_of_real_tokens_ignore_padding():
    """What `seqssm classify embed` writes: per-position states of the real tokens do not see the padding."""
    model = tiny("bimamba", head="classify")
    g = torch.Generator().manual_seed(3)
    short = torch.randint(0, 10, (1, 6), generator=g)
    padded = torch.cat([short, torch.randint(0, 10, (1, 4), generator=g)], 1)
    mask = torch.cat([torch.ones(1, 6), torch.zeros(1, 4)], 1).long()
    got = model.hidden_states(padded, mask)[:, :6]
    assert torch.allclose(got, model.hidden_states(short), rtol=0, atol=1e-12)

"""RC-equivariant parameter sharing (Caduceus-PS): hidden states flip with the reverse complement, the classifier
is exactly invariant (also with right padding), every weight is shared by both strands, and the config refuses
what cannot be equivariant."""

from __future__ import annotations

import pytest
import torch

from seqssm import ConfigError, build_model
from seqssm.layers.rcps import flip_ld

# a toy alphabet: 0 pad, 1 N (its own complement), A2 C3 G4 T5 (A<->T, C<->G), then 6..12 self-complementary
COMP = [0, 1, 5, 4, 3, 2] + list(range(6, 13))


def rc_cfg(make_cfg, **kw):
    base = dict(head="classify", num_classes=3, rc_equivariant=True, rc_complement=COMP, pooling="mean")
    base.update(kw)
    return make_cfg(**base)


def revcomp(ids: torch.Tensor, lengths) -> torch.Tensor:
    """Reverse complement of the real part of each right-padded row."""
    out = ids.clone()
    comp = torch.tensor(COMP)
    for i, n in enumerate(lengths):
        out[i, :n] = comp[ids[i, :n].flip(0)]
    return out


@pytest.mark.parametrize("layer", ["mamba", "s4d", "attention"])
def test_hidden_states_are_equivariant(make_cfg, layer):
    model = build_model(rc_cfg(make_cfg, layer=layer)).double()
    ids = torch.randint(2, 6, (2, 11))
    with torch.no_grad():
        h = model.backbone(ids)[0]
        h_rc = model.backbone(revcomp(ids, [11, 11]))[0]
    torch.testing.assert_close(h_rc, flip_ld(h), atol=1e-10, rtol=0)


@pytest.mark.parametrize("pooling", ["mean", "max"])
@pytest.mark.parametrize("layer", ["mamba", "s4d"])
def test_classifier_is_invariant_with_padding(make_cfg, layer, pooling):
    model = build_model(rc_cfg(make_cfg, layer=layer, pooling=pooling)).double()
    with torch.no_grad():
        model.classifier.weight.normal_()
    lengths = [9, 5, 1]
    ids = torch.randint(2, 6, (3, 9))
    mask = torch.zeros(3, 9, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        ids[i, n:] = 0
    with torch.no_grad():
        a, b = model(ids, mask), model(revcomp(ids, lengths), mask)
    assert (a - a.mean()).abs().max() > 1e-3  # the logits carry signal...
    torch.testing.assert_close(a, b, atol=1e-10, rtol=0)  # ...and the same for both strands
    # padding never reaches a real token: a padded row scores as it does alone
    with torch.no_grad():
        alone = model(ids[1:2, :5], mask[1:2, :5])
    torch.testing.assert_close(a[1:2], alone, atol=1e-10, rtol=0)


def test_weights_are_shared_by_both_strands(make_cfg):
    plain = build_model(make_cfg(head="classify", d_model=8))
    rc = build_model(rc_cfg(make_cfg, d_model=16))
    # the RC model of width 16 holds the parameters of a plain model of width 8 (plus its width-8 classifier)
    n_plain = sum(p.numel() for n, p in plain.named_parameters() if not n.startswith("classifier"))
    n_rc = sum(p.numel() for n, p in rc.named_parameters() if not n.startswith("classifier"))
    assert n_rc == n_plain


@pytest.mark.parametrize(
    "kw, key",
    [
        (dict(head="lm"), "head"),
        (dict(d_model=15), "d_model"),
        (dict(pooling="last"), "pooling"),
        (dict(rc_complement=[0, 1, 2]), "rc_complement"),
        (dict(rc_complement=[]), "rc_complement: empty"),
        (dict(rc_complement=[1, 2, 0] + list(range(3, 13))), "rc_complement"),
    ],
    ids=["lm-head", "odd-width", "last-pooling", "short-map", "empty-map", "not-an-involution"],
)
def test_config_refuses(make_cfg, kw, key):
    with pytest.raises(ConfigError, match=key):
        build_model(rc_cfg(make_cfg, **kw))

"""Models: streaming state equals one pass, input checks, parameter groups, heads and padding-aware pooling."""

from __future__ import annotations

import pytest
import torch

from seqssm import ConfigError, MambaLM, ModelState, SequenceClassifier, TokenClassifier, build_model
from seqssm.layers import RMSNorm


@pytest.mark.parametrize(
    "splits", [[5], [1, 2, 40], [17, 18, 30, 47]], ids=["one-cut", "short-first-segments", "four-cuts"]
)
@pytest.mark.parametrize(
    "dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["float64", "float32"]
)
def test_streaming_segments_equal_one_pass(make_cfg, splits, dtype, tol):
    model = MambaLM(make_cfg()).to(dtype)
    ids = torch.randint(0, 13, (2, 48))
    full = model(ids)
    assert full.shape == (2, 48, 13)
    pieces, state = [], None
    for a, b in zip([0] + splits, splits + [48]):
        logits, state = model(ids[:, a:b], state, return_state=True)
        pieces.append(logits)
    assert isinstance(state, ModelState) and len(state) == 2
    assert (torch.cat(pieces, 1) - full).abs().max().item() < tol


def test_state_carries_gradient_and_detach(make_cfg):
    model = MambaLM(make_cfg())
    ids = torch.randint(0, 13, (2, 12))
    _, state = model(ids[:, :6], return_state=True)
    assert state.layers[0].ssm_state.requires_grad
    model(ids[:, 6:], state.detach()).sum().backward()
    assert model.backbone.embedding.weight.grad is not None
    assert not state.detach().layers[1].conv_state.requires_grad


def test_logits_are_float32_and_sliced_to_vocab(make_cfg):
    cfg = make_cfg(vocab_size=13, pad_vocab_size_multiple=8)
    model = MambaLM(cfg)
    assert model.lm_head.weight.shape[0] == 16
    assert model.lm_head.weight is model.backbone.embedding.weight  # tied
    assert model(torch.zeros(1, 4, dtype=torch.long)).dtype == torch.float32
    untied = MambaLM(make_cfg(tie_embeddings=False))
    assert untied.lm_head.weight is not untied.backbone.embedding.weight


@pytest.mark.parametrize(
    "ids, fragment",
    [
        (torch.tensor([[0, 13]]), "token id 13"),
        (torch.tensor([[-1, 2]]), "token id -1"),
        (torch.tensor([0.0, 1.0]), "integer"),
        (torch.tensor([1, 2]), "shape"),
        (torch.zeros(1, 0, dtype=torch.long), "at least 1"),
    ],
    ids=["too-large", "negative", "float", "1d", "empty"],
)
def test_bad_input_ids(cfg, ids, fragment):
    with pytest.raises(ValueError, match="input_ids") as info:
        MambaLM(cfg)(ids)
    assert fragment in str(info.value)


def test_wrong_state_is_error(cfg):
    model = MambaLM(cfg)
    with pytest.raises(ValueError, match="state"):
        model(torch.zeros(1, 3, dtype=torch.long), ModelState([]))


def test_param_groups_exempt_ssm_norm_bias_embedding(make_cfg):
    model = MambaLM(make_cfg(bias=True)).double()  # conversion must keep the _no_weight_decay marks
    decay, no_decay = model.param_groups(0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    nd = {names[id(p)] for p in no_decay["params"]}
    d = {names[id(p)] for p in decay["params"]}
    assert not nd & d and nd | d == set(names.values())
    for n in nd:
        assert n.endswith(("A_log", ".D", "norm.weight", "norm_f.weight", ".bias", "embedding.weight")), n
    for n in d:
        assert n.endswith(("in_proj.weight", "conv1d.weight", "x_proj.weight", "dt_proj.weight", "out_proj.weight"))
    assert {"backbone.layers.0.mixer.A_log", "backbone.layers.1.mixer.D", "backbone.norm_f.weight",
            "backbone.embedding.weight", "backbone.layers.0.mixer.dt_proj.bias"} <= nd
    torch.optim.AdamW(model.param_groups(0.1), lr=1e-3)  # accepted as is


@pytest.mark.parametrize("head, cls", [("lm", MambaLM), ("classify", SequenceClassifier), ("token", TokenClassifier)])
def test_build_model_resolves_head(make_cfg, head, cls):
    assert type(build_model(make_cfg(head=head))) is cls


def test_unknown_head_and_layer_list_known_names(make_cfg):
    with pytest.raises(ConfigError, match="head: unknown name 'seq2seq'; known: classify, lm, token"):
        build_model(make_cfg(head="seq2seq"))
    with pytest.raises(ConfigError, match="layer: unknown name 'lstm'; known: .*mamba"):
        build_model(make_cfg(layer="lstm"))
    with pytest.raises(ConfigError, match="d_model"):
        build_model(make_cfg(d_model=0))


@pytest.mark.parametrize("pooling", ["mean", "max", "last"])
def test_classifier_ignores_padding(make_cfg, pooling):
    model = SequenceClassifier(make_cfg(head="classify", pooling=pooling, num_classes=3)).double()
    lengths = [9, 4, 12]
    seqs = [torch.randint(0, 13, (n,)) for n in lengths]
    ids = torch.randint(0, 13, (3, 12))  # random ids at padding positions: they must not matter
    mask = torch.zeros(3, 12, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    batched = model(ids, mask)
    assert batched.shape == (3, 3)
    alone = torch.cat([model(s[None]) for s in seqs])
    assert torch.allclose(batched, alone, atol=1e-12, rtol=0)
    # and the mask matters: without it the padded rows change
    assert not torch.allclose(model(ids)[:2], alone[:2], atol=1e-6)


@pytest.mark.parametrize(
    "mask, fragment",
    [([[1, 1, 0], [0, 0, 0]], "row 1 has no real tokens"), ([[0, 1, 1], [1, 1, 1]], "right padding"),
     ([[1, 1], [1, 1]], "shape")],
    ids=["empty-row", "left-padding", "wrong-shape"],
)
def test_bad_attention_mask(make_cfg, mask, fragment):
    model = SequenceClassifier(make_cfg(head="classify"))
    with pytest.raises(ValueError, match="attention_mask") as info:
        model(torch.zeros(2, 3, dtype=torch.long), torch.tensor(mask))
    assert fragment in str(info.value)


def test_token_classifier_shape_and_causality(make_cfg):
    model = TokenClassifier(make_cfg(head="token", num_classes=5)).double()
    ids = torch.randint(0, 13, (2, 10))
    out = model(ids)
    assert out.shape == (2, 10, 5)
    ids2 = ids.clone()
    ids2[:, 7:] = (ids2[:, 7:] + 1) % 13
    out2 = model(ids2)
    assert torch.allclose(out[:, :7], out2[:, :7], atol=1e-12) and not torch.allclose(out[:, 7:], out2[:, 7:])


def test_layernorm_variant(make_cfg):
    model = MambaLM(make_cfg(rms_norm=False))
    assert isinstance(model.backbone.norm_f, torch.nn.LayerNorm)
    assert not any(isinstance(m, RMSNorm) for m in model.modules())
    assert torch.isfinite(model(torch.zeros(1, 5, dtype=torch.long))).all()


@pytest.mark.parametrize("pools", [[], [2]], ids=["flat", "multiscale"])
def test_activation_checkpointing_gives_the_same_gradients(make_cfg, pools):
    from seqssm.model import set_activation_checkpointing

    torch.manual_seed(0)
    model = build_model(make_cfg(pool_factors=pools)).double()
    ids = torch.randint(0, 13, (2, 12))

    def grads():
        model.zero_grad()
        model(ids).logsumexp(-1).mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = grads()
    assert set_activation_checkpointing(model) == (3 if pools else 1) * model.config.n_layer
    again = grads()
    for name in plain:
        torch.testing.assert_close(again[name], plain[name], atol=1e-12, rtol=0)

"""Checkpoint folders (round trip, atomic replace, one-line errors) and mamba_ssm state-dict import."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from seqssm import (
    CheckpointError, ConfigError, MambaLM, SequenceClassifier, TokenClassifier, build_model,
    load_mamba_ssm_state_dict, load_pretrained,
)


@pytest.mark.parametrize("head", ["lm", "classify", "token"])
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_round_trip_is_exact(make_cfg, tmp_path, head, tie):
    model = build_model(make_cfg(head=head, tie_embeddings=tie, bias=True))
    with torch.no_grad():  # move every parameter off its init so a skipped tensor would show
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    out = model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "model.safetensors"]
    loaded = load_pretrained(tmp_path / "ckpt")
    assert type(loaded) is type(model) and loaded.config == model.config
    for (n1, t1), (n2, t2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and torch.equal(t1, t2), n1
    ids = torch.randint(0, 13, (2, 10))
    assert torch.equal(model(ids), loaded(ids))
    if head == "lm" and tie:
        assert loaded.lm_head.weight is loaded.backbone.embedding.weight
        with safe_open(str(out / "model.safetensors"), "pt") as f:
            assert "lm_head.weight" not in f.keys()  # stored once


def test_from_pretrained_on_class_checks_head(make_cfg, tmp_path):
    SequenceClassifier(make_cfg(head="classify")).save_pretrained(tmp_path / "c")
    assert isinstance(SequenceClassifier.from_pretrained(tmp_path / "c"), SequenceClassifier)
    with pytest.raises(CheckpointError, match="use seqssm.load_pretrained"):
        TokenClassifier.from_pretrained(tmp_path / "c")


def test_replace_existing_folder_and_extra_files(make_cfg, tmp_path):
    target = tmp_path / "ckpt"
    MambaLM(make_cfg(d_model=16)).save_pretrained(target)
    (target / "stale.txt").write_text("old")
    second = MambaLM(make_cfg(d_model=24))
    second.save_pretrained(target, extra_files={"tokenizer.json": '{"a": 1}'})
    assert sorted(p.name for p in target.iterdir()) == ["config.yaml", "model.safetensors", "tokenizer.json"]
    assert load_pretrained(target).config.d_model == 24
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary or backup folder left


def test_failed_save_keeps_old_checkpoint(make_cfg, tmp_path):
    target = tmp_path / "ckpt"
    MambaLM(make_cfg()).save_pretrained(target)
    before = (target / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="extra_files"):
        MambaLM(make_cfg()).save_pretrained(target, extra_files={"../escape": "x"})
    assert (target / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_load_errors_name_the_file(make_cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint folder not found"):
        load_pretrained(tmp_path / "absent")
    target = tmp_path / "ckpt"
    MambaLM(make_cfg()).save_pretrained(target)
    weights = target / "model.safetensors"
    weights.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="model.safetensors: not a readable safetensors file") as info:
        load_pretrained(target)
    assert "\n" not in str(info.value)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors: file not found"):
        load_pretrained(target)
    MambaLM(make_cfg()).save_pretrained(target)
    (target / "config.yaml").write_text("d_model: [1\n")
    with pytest.raises(ConfigError, match="config.yaml: not valid YAML"):
        load_pretrained(target)
    (target / "config.yaml").write_text("d_model: 16\nn_layers: 2\n")
    with pytest.raises(ConfigError, match="config.yaml: n_layers: unknown key"):
        load_pretrained(target)


def test_shape_mismatch_names_key(make_cfg, tmp_path):
    target = tmp_path / "ckpt"
    MambaLM(make_cfg(d_state=4)).save_pretrained(target)
    text = (target / "config.yaml").read_text().replace("d_state: 4", "d_state: 8")
    (target / "config.yaml").write_text(text)
    with pytest.raises(CheckpointError, match=r"A_log has shape \(32, 4\), the config expects \(32, 8\)"):
        load_pretrained(target)


def mamba_ssm_state_dict(cfg, v_rows, with_head=True):
    """Random tensors under mamba_ssm MambaLMHeadModel names and shapes."""
    d, e, n, k, r = cfg.d_model, cfg.d_inner, cfg.ssm.d_state, cfg.ssm.d_conv, cfg.resolved_dt_rank
    sd = {"backbone.embedding.weight": torch.randn(v_rows, d), "backbone.norm_f.weight": torch.rand(d) + 0.5}
    for i in range(cfg.n_layer):
        p = f"backbone.layers.{i}."
        sd.update({
            p + "norm.weight": torch.rand(d) + 0.5,
            p + "mixer.A_log": torch.rand(e, n),
            p + "mixer.D": torch.randn(e),
            p + "mixer.in_proj.weight": torch.randn(2 * e, d) * 0.1,
            p + "mixer.conv1d.weight": torch.randn(e, 1, k) * 0.3,
            p + "mixer.conv1d.bias": torch.randn(e) * 0.1,
            p + "mixer.x_proj.weight": torch.randn(r + 2 * n, e) * 0.1,
            p + "mixer.dt_proj.weight": torch.randn(e, r) * 0.1,
            p + "mixer.dt_proj.bias": torch.randn(e) - 4,
            p + "mixer.out_proj.weight": torch.randn(d, e) * 0.1,
        })
    if with_head:
        sd["lm_head.weight"] = sd["backbone.embedding.weight"]
    return sd


@pytest.mark.parametrize("v_rows", [16, 13], ids=["padded-vocab", "unpadded-vocab"])
@pytest.mark.parametrize("with_head", [True, False], ids=["with-lm-head", "without-lm-head"])
def test_load_mamba_ssm_names(make_cfg, v_rows, with_head):
    cfg = make_cfg(vocab_size=13)
    sd = mamba_ssm_state_dict(cfg, v_rows, with_head)
    model = load_mamba_ssm_state_dict(sd, cfg)
    mixer = model.backbone.layers[1].mixer
    assert torch.equal(mixer.conv1d.weight, sd["backbone.layers.1.mixer.conv1d.weight"])
    assert torch.equal(mixer._conv_weight(), sd["backbone.layers.1.mixer.conv1d.weight"][:, 0, :])
    assert torch.equal(mixer.A_log, sd["backbone.layers.1.mixer.A_log"])
    assert torch.equal(model.backbone.embedding.weight[:13], sd["backbone.embedding.weight"][:13])
    assert model.lm_head.weight is model.backbone.embedding.weight
    # the loaded parameters are the ones the forward uses: logits follow from the embedding and the head
    ids = torch.randint(0, 13, (1, 6))
    assert torch.isfinite(model(ids)).all()
    sd2 = dict(sd)
    sd2["backbone.norm_f.weight"] = sd["backbone.norm_f.weight"] * 2
    assert not torch.allclose(load_mamba_ssm_state_dict(sd2, cfg)(ids), model(ids))


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda sd: sd.pop("backbone.layers.1.mixer.D"), "missing keys: backbone.layers.1.mixer.D"),
        (lambda sd: sd.update({"backbone.layers.0.mixer.bogus": torch.zeros(1)}),
         "unexpected keys: backbone.layers.0.mixer.bogus"),
        (lambda sd: sd.update({"backbone.layers.0.mixer.conv1d.weight": torch.zeros(32, 4)}),
         "backbone.layers.0.mixer.conv1d.weight has shape (32, 4)"),
        (lambda sd: sd.update({"lm_head.weight": torch.zeros(16, 16)}), "lm_head.weight: differs"),
    ],
    ids=["missing", "unexpected", "wrong-shape", "untied-head"],
)
def test_load_mamba_ssm_errors(make_cfg, edit, fragment):
    cfg = make_cfg(vocab_size=13)
    sd = mamba_ssm_state_dict(cfg, 16)
    edit(sd)
    with pytest.raises(CheckpointError) as info:
        load_mamba_ssm_state_dict(sd, cfg)
    assert fragment in str(info.value) and "\n" not in str(info.value)

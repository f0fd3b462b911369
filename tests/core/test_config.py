"""load_config / save_config: merging, one-line errors naming the key and the file, atomic writes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from seqssm import ConfigError, GenerateConfig, ModelConfig, load_config, save_config


@dataclass
class Run:
    model: ModelConfig = field(default_factory=ModelConfig)
    lr: float = 1e-3


def write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_file_and_overrides_merge(tmp_path):
    p = write(tmp_path, "model:\n  d_model: 32\n  pooling: max\nlr: 0.01\n")
    run = load_config(Run, p, ["model.n_layer=3", "model.ssm.dt_rank=4"])
    assert isinstance(run, Run) and isinstance(run.model, ModelConfig)
    assert (run.model.d_model, run.model.n_layer, run.model.ssm.dt_rank, run.model.pooling, run.lr) == (
        32, 3, 4, "max", 0.01,
    )


def test_defaults_without_file():
    assert load_config(GenerateConfig) == GenerateConfig()


@pytest.mark.parametrize(
    "text, key",
    [
        ("model:\n  d_modle: 32\n", "model.d_modle"),
        ("model:\n  d_model: abc\n", "model.d_model"),
        ("lr: [1, 2]\n", "lr"),
        ("model:\n  d_model: 0\n", "model.d_model"),
        ("model:\n  pooling: median\n", "model.pooling"),
        ("model:\n  ssm:\n    dt_min: 0.5\n    dt_max: 0.1\n", "model.ssm.dt_max"),
        ("model:\n  dt_min: 0.5\n  dt_max: 0.1\n", "model.ssm.dt_max"),
        ("model:\n  d_state: 4\n  ssm:\n    d_state: 8\n", "d_state: given both flat and as ssm.d_state"),
    ],
    ids=["unknown-key", "wrong-type", "list-for-float", "non-positive", "bad-choice", "dt-range", "dt-range-flat-file",
         "flat-and-grouped"],
)
def test_file_errors_name_key_and_file(tmp_path, text, key):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(Run, p)
    msg = str(info.value)
    assert key in msg and str(p) in msg and "\n" not in msg


@pytest.mark.parametrize(
    "override, key",
    [("model.nope=1", "model.nope"), ("model.n_layer=two", "model.n_layer"), ("lr", "lr")],
    ids=["unknown-key", "wrong-type", "no-equals"],
)
def test_override_errors_name_key(override, key):
    with pytest.raises(ConfigError) as info:
        load_config(Run, None, [override])
    assert key in str(info.value) and "\n" not in str(info.value)


def test_missing_and_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Run, tmp_path / "absent.yaml")
    bad = write(tmp_path, "model: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(Run, bad)
    assert str(bad) in str(info.value)


def test_save_round_trip_and_no_temp_left(tmp_path):
    run = Run(model=ModelConfig.from_flat(d_model=48, dt_rank=None, head="classify"), lr=0.5)
    out = tmp_path / "sub" / "run.yaml"
    save_config(run, out)
    save_config(run, out)  # overwrite in place
    assert load_config(Run, out) == run
    assert sorted(p.name for p in out.parent.iterdir()) == ["run.yaml"]


def test_config_derived_sizes():
    c = ModelConfig.from_flat(d_model=40, vocab_size=13, pad_vocab_size_multiple=8, expand=2)
    assert (c.d_inner, c.resolved_dt_rank, c.padded_vocab_size) == (80, 3, 16)


def test_a_file_in_the_flat_layout_loads_into_the_groups(tmp_path):
    """Configs written before ModelConfig was grouped (checkpoints, run folders) name the old flat keys."""
    p = write(tmp_path, "model:\n  d_state: 4\n  attn_layer_idx: [1]\n  n_layer: 2\n  moe_aux_weight: 0.5\n"
                        "  rc_complement: []\n  pool_expand: 3\n  mamba2_headdim: 8\n")
    m = load_config(Run, p).model
    assert (m.ssm.d_state, m.attention.layer_idx, m.moe.aux_weight, m.multiscale.pool_expand, m.mamba2.headdim) == (
        4, [1], 0.5, 3, 8)
    assert m == ModelConfig.from_flat(d_state=4, attn_layer_idx=[1], n_layer=2, moe_aux_weight=0.5, pool_expand=3,
                                      mamba2_headdim=8)


def test_overrides_use_the_grouped_keys_only():
    with pytest.raises(ConfigError, match="model.d_state"):
        load_config(Run, None, ["model.d_state=4"])
    assert load_config(Run, None, ["model.ssm.d_state=4"]).model.ssm.d_state == 4


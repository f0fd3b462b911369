"""Every shipped configs/*.yaml loads against the schema of the command that reads it, key for key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

import seqssm
from seqssm.pipelines.cli import main
from seqssm.pipelines.lm.config import LMJobConfig
from seqssm.pipelines.schemas import SCHEMAS, schema_for_file

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def _leaf_keys(tree, prefix=""):
    keys = set()
    for k, v in tree.items():
        keys |= _leaf_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
    return keys


def _schema_keys(cls, prefix=""):
    keys = set()
    for f in dataclasses.fields(cls):
        t = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        keys |= _schema_keys(type(t), f"{prefix}{f.name}.") if dataclasses.is_dataclass(t) else {prefix + f.name}
    return keys


def test_there_are_shipped_configs():
    assert any(p.name == "lm_bytes.yaml" for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_loads_and_mirrors_its_schema(path):
    schema = schema_for_file(path.name)
    job = seqssm.load_config(schema, str(path))
    assert isinstance(job, schema)
    written = _leaf_keys(yaml.safe_load(path.read_text()))
    assert written == _schema_keys(schema), f"{path.name} does not mirror {schema.__name__} key for key"


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.name.startswith("lm_")], ids=lambda p: p.name)
def test_lm_configs_through_the_real_entry_point(path, capsys, tmp_path):
    assert main(["lm", "train", "--config", str(path), "--data", str(tmp_path / "x"), "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["path"] == str(tmp_path / "x")
    assert printed["model"]["head"] == "lm"


def test_shipped_config_by_name_is_the_default(capsys):
    assert main(["lm", "train", "--print-config"]) == 0
    default = yaml.safe_load(capsys.readouterr().out)
    assert main(["lm", "train", "--config", "lm_bytes", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == default


def test_unknown_key_fails_naming_the_key(tmp_path):
    src = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs" / "lm_bytes.yaml").read_text())
    src["model"]["d_modle"] = 64
    bad = tmp_path / "lm_bad.yaml"
    bad.write_text(yaml.safe_dump(src))
    with pytest.raises(seqssm.ConfigError) as err:
        seqssm.load_config(LMJobConfig, str(bad))
    assert "model.d_modle" in str(err.value) and str(bad) in str(err.value)
    assert "\n" not in str(err.value)


def test_every_prefix_has_a_schema_and_unknown_prefix_is_refused():
    assert SCHEMAS["lm"] is LMJobConfig
    with pytest.raises(ValueError, match="nosuchjob_x.yaml"):
        schema_for_file("nosuchjob_x.yaml")

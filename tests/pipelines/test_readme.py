"""The Python example in README.md runs as written, and what its comments claim holds."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "README.md has no python example"
    monkeypatch.chdir(tmp_path)  # it saves "my_model" into the working folder
    ns: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), ns)
    logits, ids = ns["logits"], ns["ids"]
    assert logits.shape == (1, 8, 256)
    assert ns["out"].shape == (1, 8 + 32) and torch.equal(ns["out"][:, :8], ids)
    assert torch.equal(ns["same"](ids), ns["model"](ids))
    torch.testing.assert_close(ns["logits_b"], logits[:, 4:], rtol=1e-4, atol=1e-4)  # streaming == one pass
    torch.testing.assert_close(ns["next_logits"], logits[:, 0], rtol=1e-4, atol=1e-4)
    assert (tmp_path / "my_model" / "model.safetensors").is_file()

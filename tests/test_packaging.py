"""Packaging and layering: what `pip install .` ships, and which layer may import which.

Layers (imports point down only): kernels <- seqssm (core) <- domains <- pipelines. Lightning is imported only in
pipelines/. Installed, everything lives under the one top-level name `seqssm`.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("seqssm", "kernels", "domains", "pipelines", "configs")


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _dir_to_package() -> dict[str, str]:
    """Source folder (relative to the repo root) -> import name, from [tool.setuptools.package-dir]."""
    return {folder: pkg for pkg, folder in _pyproject()["tool"]["setuptools"]["package-dir"].items()}


def _packages_on_disk() -> set[str]:
    mapping = _dir_to_package()
    found = set()
    for top in SOURCE_DIRS:
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT).parts
            assert rel[0] in mapping, f"{rel[0]}/ has no entry in [tool.setuptools.package-dir]"
            found.add(".".join((mapping[rel[0]],) + rel[1:]))
    return found


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    on_disk = _packages_on_disk()
    missing = sorted(on_disk - listed)
    assert not missing, f"folders with __init__.py not in pyproject [tool.setuptools] packages: {missing}"
    stale = sorted(listed - on_disk)
    assert not stale, f"pyproject lists packages with no folder/__init__.py: {stale}"


@pytest.mark.slow
def test_regular_install_ships_one_top_level_name(tmp_path):
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns(".venv", ".git", "runs", "data", "tests", "build", "dist", "*.egg-info",
                                    "__pycache__", ".pytest_cache")
    shutil.copytree(ROOT, src, ignore=ignore)
    target = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-compile", "-q",
         "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    top = sorted(p.name for p in target.iterdir() if not p.name.endswith(".dist-info"))
    assert set(top) <= {"seqssm", "bin"}, f"unexpected top-level names installed: {top}"
    assert "seqssm" in top
    for generic in ("kernels", "domains", "pipelines", "configs"):
        assert not (target / generic).exists(), f"a generic top-level package {generic!r} was installed"

    code = (
        "import seqssm, seqssm.kernels, seqssm.pipelines, seqssm.domains, seqssm.configs, seqssm.pipelines.cli\n"
        "from importlib.resources import files\n"
        "print(seqssm.__file__)\n"
        "print(sorted(p.name for p in files('seqssm.configs').iterdir() if p.name.endswith('.yaml')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert Path(lines[0]).resolve().is_relative_to(target.resolve()), f"imported seqssm from {lines[0]}, not the install"
    shipped = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
    assert lines[1] == repr(shipped), "the YAML configs are not all shipped as package data"
    assert (target / "seqssm" / "kernels" / "scan" / "cpu_scan.c").is_file(), "the cpu scan's C source is not shipped"


def _imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in a file; relative imports are resolved to absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    mapping = _dir_to_package()
    rel = path.relative_to(root).parts
    package = ".".join((mapping[rel[0]],) + rel[1:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
    return out


def _violations(folder: str, bad, root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted((root / folder).rglob("*.py")):
        for line, mod in _imports(path, root):
            if bad(mod):
                found.append(f"{path.relative_to(root)}:{line} imports {mod}")
    return found


def _is(mod: str, name: str) -> bool:
    return mod == name or mod.startswith(name + ".")


def test_layering_no_lightning_below_pipelines():
    bad = lambda m: _is(m, "lightning") or _is(m, "pytorch_lightning")  # noqa: E731
    assert not _violations("seqssm", bad) + _violations("kernels", bad)


def test_layering_kernels_import_only_kernels_from_seqssm():
    bad = lambda m: _is(m, "seqssm") and not _is(m, "seqssm.kernels")  # noqa: E731
    assert not _violations("kernels", bad)


def test_layering_core_does_not_import_domains_or_pipelines():
    bad = lambda m: _is(m, "seqssm.domains") or _is(m, "seqssm.pipelines")  # noqa: E731
    assert not _violations("seqssm", bad)


def test_layering_check_sees_a_violation(tmp_path):
    """The import scanner must catch plain, from- and relative imports (else the layering tests prove nothing)."""
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "probe.py").write_text(
        "import torch\nimport lightning\nfrom seqssm.config import ModelConfig\nfrom .. import registry\n"
        "from .selective_scan import selective_scan\n"
    )
    bad = lambda m: _is(m, "lightning") or (_is(m, "seqssm") and not _is(m, "seqssm.kernels"))  # noqa: E731
    found = _violations("kernels", bad, root=tmp_path)
    assert [f.split(" imports ")[1] for f in found] == ["lightning", "seqssm.config", "seqssm"]

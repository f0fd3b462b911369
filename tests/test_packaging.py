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


# ------------------------------------------------------------------ pipelines/ and domains/: names and cycles


def _module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).parts
    parts = (_dir_to_package()[rel[0]],) + rel[1:-1] + (() if path.name == "__init__.py" else (path.stem,))
    return ".".join(parts)


def _private_uses(path: Path, root: Path = ROOT) -> list[str]:
    """`from other import _name` and `other_module._name` where `other` is another seqssm module: a module's
    private names are its own."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = _module_name(path, root)
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and _is(node.module, "seqssm") and node.module != me:
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"{path.relative_to(root)}:{node.lineno} imports {node.module}.{a.name}")
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if _is(a.name, "seqssm"):
                    aliases[a.asname or a.name.split(".")[0]] = a.asname and a.name or a.name.split(".")[0]
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"{path.relative_to(root)}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    return found


def _import_graph(folders=("pipelines", "domains"), root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the seqssm modules (in `folders`) it imports, at the top or inside functions alike; `from pkg
    import name` counts as importing pkg.name when that is a module, else pkg."""
    modules = {_module_name(p, root): p for f in folders for p in sorted((root / f).rglob("*.py"))}
    graph = {}
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    if sub in modules:
                        edges.add(sub)
                    elif node.module in modules:
                        edges.add(node.module)
        graph[mod] = edges - {mod}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search (one per back edge), as the list of modules around it."""
    state, stack, found = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == "open":
                found.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return found


@pytest.mark.parametrize("folder", ["pipelines", "domains"])
def test_no_module_imports_another_modules_private_names(folder):
    found = [f for p in sorted((ROOT / folder).rglob("*.py")) for f in _private_uses(p)]
    assert not found, "\n".join(found)


def test_no_import_cycles_in_pipelines_and_domains():
    cycles = _cycles(_import_graph())
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_private_name_and_cycle_checks_see_violations(tmp_path):
    """The two checks above must catch what they look for (else they prove nothing)."""
    (tmp_path / "pipelines" / "sub").mkdir(parents=True)
    (tmp_path / "pipelines" / "a.py").write_text("from seqssm.pipelines import b\nx = b._hidden\n")
    (tmp_path / "pipelines" / "b.py").write_text("def f():\n    from seqssm.pipelines.sub.c import _y\n")
    (tmp_path / "pipelines" / "sub" / "c.py").write_text("import seqssm.pipelines.a\n_y = 1\n")
    private = [f for p in sorted((tmp_path / "pipelines").rglob("*.py")) for f in _private_uses(p, tmp_path)]
    assert [f.split(" ", 1)[1] for f in private] == ["uses seqssm.pipelines.b._hidden",
                                                    "imports seqssm.pipelines.sub.c._y"]
    cycles = _cycles(_import_graph(("pipelines",), tmp_path))
    assert cycles == [["seqssm.pipelines.a", "seqssm.pipelines.b", "seqssm.pipelines.sub.c", "seqssm.pipelines.a"]]


JOB_MODULES = ["lm/train.py", "classify/train.py", "audio/train.py", "pretrain/train.py"]


@pytest.mark.parametrize("module", JOB_MODULES)
def test_job_modules_import_lightning_at_the_top(module):
    tree = ast.parse((ROOT / "pipelines" / module).read_text(encoding="utf-8"))
    top = [a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names]
    assert "lightning" in top, f"pipelines/{module}: import lightning at module top"
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)
               and any(isinstance(b, ast.Attribute) and b.attr == "LightningModule" for b in n.bases)]
    assert classes, f"pipelines/{module}: the LightningModule is defined at module level"


def test_seqssm_info_does_not_load_lightning():
    """The CLI imports every subcommand's parser; the job modules (and Lightning) load only when a job runs."""
    code = ("import sys; from seqssm.pipelines.cli import main; rc = main(['info']); "
            "print('LIGHTNING' if any(m.split('.')[0] in ('lightning', 'pytorch_lightning') for m in sys.modules) "
            "else 'CLEAN', rc)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines()[-1] == "CLEAN 0"

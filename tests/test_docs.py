"""README.md stays a short front door and the documentation's relative links lead somewhere.

README.md is at most 200 lines; every relative link in README.md and docs/*.md names a file inside the repository
that exists, and a `#fragment` names a heading of the target page (GitHub's heading anchors); the README's layout
block states the folder-to-import mapping that pyproject.toml installs; each measurement page opens by saying what it
was measured on. (The Python example in README.md is executed by tests/pipelines/test_readme.py.)
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOC_FILES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200

# Pages linked before they are written: a link to one of them is accepted while the file does not exist yet.
# Remove a name once its page is committed; from then on it is checked like any other.
PENDING_PAGES: frozenset[str] = frozenset()  # pages linked before they exist (none now)

# Pages of measured numbers: each opens (first paragraph after the title) with what it was measured or tested on.
MEASUREMENT_PAGES = ("benchmarks.md", "dna.md", "audio.md", "synthetic-tasks.md", "status.md")

_FENCE = re.compile(r"^```.*?^```", flags=re.S | re.M)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)")  # [text](target); images would be ![..](..)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", flags=re.M)


def _prose(text: str) -> str:
    """The text without fenced blocks and code spans, where brackets are code, not links."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def relative_links(text: str) -> list[str]:
    """Targets of the inline links in markdown `text` that point into the repository (no scheme, no mailto)."""
    return [t for t in _LINK.findall(_prose(text)) if not re.match(r"^[a-z][a-z0-9+.-]*:", t, flags=re.I)]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = text.replace("`", "").replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a markdown page; repeated headings get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for heading in _HEADING.findall(_FENCE.sub("", text)):
        slug = _slug(heading)
        n = seen.get(slug, 0)
        out.add(slug if n == 0 else f"{slug}-{n}")
        seen[slug] = n + 1
    return out


def test_helpers_find_links_and_anchors():
    """The checks below depend on these two helpers; pin what they see on a small page."""
    page = (
        "# A title\n\nSee [b](docs/b.md#the-part), [web](https://x.org), [top](#a-title), `[no](code.md)`.\n"
        "```\n[not](fenced.md)\n```\n## The part: `x.y`\n## The part: `x.y`\n"
    )
    assert relative_links(page) == ["docs/b.md#the-part", "#a-title"]
    assert anchors(page) == {"a-title", "the-part-xy", "the-part-xy-1"}


def test_readme_is_at_most_200_lines():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; move detail to docs/ (at most {README_MAX_LINES})"


@pytest.mark.parametrize("page", DOC_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_existing_files_and_headings(page: Path):
    text = page.read_text(encoding="utf-8")
    links = relative_links(text)
    broken = []
    for link in links:
        path_part, _, fragment = link.partition("#")
        target = (page.parent / path_part).resolve() if path_part else page
        try:
            name = target.relative_to(ROOT).as_posix()
        except ValueError:
            broken.append(f"{link}: outside the repository")
            continue
        if not target.exists():
            if name not in PENDING_PAGES:
                broken.append(f"{link}: no file {name}")
            continue
        if fragment and target.suffix == ".md" and fragment not in anchors(target.read_text(encoding="utf-8")):
            broken.append(f"{link}: no heading #{fragment} in {name}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_readme_links_every_docs_page():
    """A page in docs/ that the README does not link is a page nobody finds."""
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in relative_links(README.read_text("utf-8"))}
    orphans = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not orphans, f"docs pages not linked from README.md: {orphans}"


def test_readme_layout_states_the_folder_to_import_mapping():
    """Each top-level source folder appears in the README's layout block with the import name pyproject gives it."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        package_dir = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    text = README.read_text(encoding="utf-8")
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    for package, folder in package_dir.items():
        assert re.search(rf"^{re.escape(folder)}/\s+{re.escape(package)}\s", section, flags=re.M), (
            f"README layout: no line '{folder}/  {package}'"
        )


@pytest.mark.parametrize("name", MEASUREMENT_PAGES)
def test_measurement_pages_open_with_what_they_were_measured_on(name: str):
    text = (ROOT / "docs" / name).read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0].startswith("# "), f"docs/{name}: no title on the first line"
    first_paragraph = text.split("\n\n", 2)[1]
    assert re.match(r"\*\*(Measured|Tested) on\*\*", first_paragraph), (
        f"docs/{name}: the first paragraph should say what it was measured (or tested) on"
    )
    assert "torch" in first_paragraph and "Python" in first_paragraph, f"docs/{name}: versions missing up front"

"""seqssm.domains: domain plugins (dna, audio), each registered through the `seqssm.domains` entry-point group.

A plugin imports the core; the core never imports a plugin. Discovery goes through installed package metadata
(`[project.entry-points."seqssm.domains"]` in pyproject.toml), so a third-party package can add a domain without
editing seqssm:

    >>> from seqssm import domains
    >>> "dna" in domains.available()
    True
    >>> dna = domains.load("dna")      # the plugin object: dna.name, dna.tokenizer(), ...
"""

from __future__ import annotations

from importlib.metadata import entry_points

GROUP = "seqssm.domains"


def _entry_points():
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    """Names of the installed domain plugins, sorted (reads metadata only; imports no plugin)."""
    return sorted(_entry_points())


def load(name: str):
    """The plugin object registered under `name`; ValueError (one line) naming the known plugins otherwise."""
    eps = _entry_points()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "(none installed)"
        raise ValueError(f"domain {name!r} is not installed; available: {known}")
    return eps[name].load()


__all__ = ["GROUP", "available", "load"]

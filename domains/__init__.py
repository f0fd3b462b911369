"""seqssm.domains (the folder domains/ of the source tree, installed as seqssm.domains): domain plugins (dna,
audio, bytes), each registered through the `seqssm.domains` entry-point group, and the data they own.

A plugin imports the core; the core never imports a plugin. Discovery goes through installed package metadata
(`[project.entry-points."seqssm.domains"]` in pyproject.toml), so a third-party package can add a domain without
editing seqssm:

    >>> from seqssm import domains
    >>> "dna" in domains.available()
    True
    >>> dna = domains.load("dna")      # the plugin object: dna.name, dna.tokenizer(), ...

What a plugin object offers (the jobs call only these; see docs/architecture.md, "Adding a domain"):

    name, description, source          names; `source` is what `pretrain`'s data.source calls its data
    user_errors                        exception types the CLI reports in one line (exit status 2)
    tokenizer(), load_tokenizer(path)  `classify`: encode_batch(seqs) -> (ids, mask, ...), vocab_size, to_json()
    read_labelled(path, option, max_length, truncation, classes, sequence_column, label_column)
    iter_records(path, option)         (id, sequence, label or None) for `classify predict` / `embed`
    corpus(path, holdout, options)     `pretrain`: a seqssm.domains.corpus.Corpus of the file or folder
    vocab_size(options)                the token count of corpus() with these options
    strands                            True when sequences have a reverse complement (rc_augment, rc_conjoin)
"""

from __future__ import annotations

from importlib.metadata import entry_points

GROUP = "seqssm.domains"


class DomainInputError(ValueError):
    """A domain's input file is unusable (too small, empty, malformed); one line naming the file or option. A
    plugin raises it, or a subclass, and the CLI prints it as `seqssm: error: ...` with exit status 2."""


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


def by_source(source: str):
    """The plugin whose `source` (the name a pretraining config gives its data, e.g. "fasta") is `source`: the
    plugin named `source` when there is one, else the first whose `source` attribute matches; ValueError naming
    the known sources otherwise."""
    eps = _entry_points()
    if source in eps and getattr(eps[source].load(), "source", source) == source:
        return eps[source].load()
    known = {}
    for name in sorted(eps):
        plugin = eps[name].load()
        known.setdefault(getattr(plugin, "source", name), plugin)
    if source not in known:
        raise ValueError(f"data source {source!r}: no installed domain reads it; known: {', '.join(sorted(known))}")
    return known[source]


def sources() -> list[str]:
    """The data sources of every installed plugin (loads the plugins)."""
    return sorted({getattr(ep.load(), "source", name) for name, ep in _entry_points().items()})


__all__ = ["GROUP", "DomainInputError", "available", "by_source", "load", "sources"]

"""Domain discovery through the `seqssm.domains` entry-point group."""

from __future__ import annotations

import pytest

from seqssm import domains


def test_entry_point_discovery_finds_dna():
    assert "dna" in domains.available()
    plugin = domains.load("dna")
    assert plugin.name == "dna"
    assert plugin.tokenizer().encode("ACGT") == [5, 6, 7, 8]


def test_unknown_domain_names_the_known_ones():
    with pytest.raises(ValueError, match=r"'nosuch' is not installed; available: .*dna"):
        domains.load("nosuch")

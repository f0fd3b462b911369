"""The nucleotide alphabet: IUPAC codes, complements, and the one error type of the DNA plugin.

IUPAC (Cornish-Bowden 1985): A C G T, N any base, and the two- and three-base ambiguity codes
R=AG Y=CT S=GC W=AT K=GT M=AC B=CGT D=AGT H=ACT V=ACG. U (RNA) is not accepted: a genome with U is a mistake.
The complement of an ambiguity code is the code of the complemented set (R=AG -> CT=Y), so S, W and N map to
themselves and reverse_complement is an involution on every IUPAC string.
"""

from __future__ import annotations

BASES = "ACGT"
AMBIGUOUS = "RYSWKMBDHV"
IUPAC = BASES + "N" + AMBIGUOUS
IUPAC_SET = frozenset(IUPAC + IUPAC.lower())

_PAIRS = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N", "R": "Y", "Y": "R", "S": "S", "W": "W",
          "K": "M", "M": "K", "B": "V", "V": "B", "D": "H", "H": "D"}
COMPLEMENT = {**_PAIRS, **{k.lower(): v.lower() for k, v in _PAIRS.items()}}
_TRANSLATE = str.maketrans(COMPLEMENT)


class DNAInputError(ValueError):
    """Bad DNA input (file, sequence or label); the message is one line naming the file and line or record."""


def where(source: str | None, line: int | None = None, record: str | None = None) -> str:
    """'file:line' or 'file: record X' prefix for messages (source None: 'sequence')."""
    out = str(source) if source is not None else "sequence"
    if line is not None:
        out += f":{line}"
    if record is not None:
        out += f": record {record!r}"
    return out


def first_non_iupac(seq: str) -> int:
    """Index of the first character outside IUPAC (either case), or -1."""
    for i, ch in enumerate(seq):
        if ch not in IUPAC_SET:
            return i
    return -1


def check_iupac(seq: str, context: str) -> None:
    """Raise a one-line DNAInputError naming `context` and the first bad character and its column."""
    i = first_non_iupac(seq)
    if i >= 0:
        raise DNAInputError(f"{context}: character {seq[i]!r} at column {i + 1} is not an IUPAC nucleotide code")


def reverse_complement(seq: str) -> str:
    """IUPAC-aware reverse complement of a string; case is kept (soft-masked bases stay lower case)."""
    check_iupac(seq, "reverse_complement")
    return seq.translate(_TRANSLATE)[::-1]


__all__ = ["AMBIGUOUS", "BASES", "COMPLEMENT", "DNAInputError", "IUPAC", "check_iupac", "reverse_complement"]

"""Single-nucleotide tokenizer with fixed ids, reverse complement on token ids, and RC augmentation.

Dimension names used in this file:
    b batch · l sequence length (padded)

Ids (fixed, part of the checkpoint format; never renumber):
    0 [PAD]  1 [UNK]  2 [CLS] (= bos)  3 [SEP] (= eos)  4 [MASK]  5 A  6 C  7 G  8 T  9 N
vocab_size is 10; the model's ModelConfig(vocab_size=10) pads its embedding to a multiple of 8 as the core does.
[UNK] is reserved (encode never emits it: a character outside IUPAC is an error, not an unknown token).

Policies:
    lowercase="upper"         soft-masked (lower case) bases are read as upper case (the default)
              "mask_channel"  also upper-cased, and encode_batch returns a 0/1 soft-mask tensor (1 = was lower case)
    iupac="N"                 ambiguity codes R Y S W K M B D H V become N (the default)
          "error"             they raise DNAInputError
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from seqssm.atomic import atomic_write_text
from seqssm.domains.dna.alphabet import AMBIGUOUS, DNAInputError

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
NUCLEOTIDES = ("A", "C", "G", "T", "N")
VOCAB = {tok: i for i, tok in enumerate(SPECIALS + NUCLEOTIDES)}
PAD, UNK, CLS, SEP, MASK = range(5)
FORMAT = "seqssm.NucleotideTokenizer"
FORMAT_VERSION = 1

_INVALID, _AMBIG = -1, -2
# Byte -> id lookup: one gather instead of a Python loop per base.
_LUT = torch.full((256,), _INVALID, dtype=torch.long)
for _ch in NUCLEOTIDES:
    _LUT[ord(_ch)] = _LUT[ord(_ch.lower())] = VOCAB[_ch]
for _ch in AMBIGUOUS:
    _LUT[ord(_ch)] = _LUT[ord(_ch.lower())] = _AMBIG
_LOWER = torch.zeros(256, dtype=torch.long)
for _c in range(ord("a"), ord("z") + 1):
    _LOWER[_c] = 1

# Complement on ids: A<->T, C<->G, N and every special map to themselves.
COMPLEMENT_IDS = torch.arange(len(VOCAB))
COMPLEMENT_IDS[VOCAB["A"]], COMPLEMENT_IDS[VOCAB["T"]] = VOCAB["T"], VOCAB["A"]
COMPLEMENT_IDS[VOCAB["C"]], COMPLEMENT_IDS[VOCAB["G"]] = VOCAB["G"], VOCAB["C"]


def _real_lengths(ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    if attention_mask is None:
        return torch.full((ids.shape[0],), ids.shape[1], dtype=torch.long, device=ids.device)
    if attention_mask.shape != ids.shape:
        raise ValueError(f"attention_mask: expected shape {tuple(ids.shape)} like ids, got {tuple(attention_mask.shape)}")
    return (attention_mask != 0).long().sum(1)


def reverse_complement_ids(ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Reverse complement of right-padded id rows (b, l) or one row (l,); padding stays where it is.

    A leading [CLS] and a trailing [SEP] stay in place, so this equals tokenizing the reverse-complement string
    with the same special tokens. Applying it twice gives the input back.
    """
    single = ids.dim() == 1
    ids2 = ids.unsqueeze(0) if single else ids
    mask2 = attention_mask.unsqueeze(0) if single and attention_mask is not None else attention_mask
    b, l = ids2.shape
    length = _real_lengths(ids2, mask2).unsqueeze(1)  # (b, 1)
    pos = torch.arange(l, device=ids2.device).unsqueeze(0)  # (1, l)
    first = ids2[:, :1]
    last = ids2.gather(1, (length - 1).clamp(min=0))
    start = (first == CLS).long()  # (b, 1): skip a leading [CLS]
    end = length - ((last == SEP) & (length - 1 >= start)).long()  # exclusive: keep a trailing [SEP]
    inside = (pos >= start) & (pos < end)
    src = torch.where(inside, start + end - 1 - pos, pos)  # mirror position inside [start, end)
    out = ids2.gather(1, src)
    out = torch.where(inside, COMPLEMENT_IDS.to(ids2.device)[out], out)
    return out[0] if single else out


class NucleotideTokenizer:
    """Bases to fixed ids (see the module docstring); encode / encode_batch / decode, save / from_file."""

    vocab = VOCAB
    vocab_size = len(VOCAB)
    pad_id, unk_id, cls_id, sep_id, mask_id = PAD, UNK, CLS, SEP, MASK
    bos_id, eos_id = CLS, SEP

    def __init__(self, lowercase: str = "upper", iupac: str = "N"):
        if lowercase not in ("upper", "mask_channel"):
            raise ValueError(f"lowercase: must be 'upper' or 'mask_channel', got {lowercase!r}")
        if iupac not in ("N", "error"):
            raise ValueError(f"iupac: must be 'N' or 'error', got {iupac!r}")
        self.lowercase, self.iupac = lowercase, iupac
        self.complement_ids = COMPLEMENT_IDS.clone()

    def __repr__(self) -> str:
        return f"NucleotideTokenizer(lowercase={self.lowercase!r}, iupac={self.iupac!r})"

    # ------------------------------------------------------------------ encoding
    def _bytes(self, seq: str) -> torch.Tensor:
        try:
            raw = seq.encode("ascii")
        except UnicodeEncodeError:
            i = next(i for i, c in enumerate(seq) if ord(c) > 127)
            raise DNAInputError(f"sequence: character {seq[i]!r} at column {i + 1} is not an IUPAC nucleotide code") from None
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8).long() if raw else torch.zeros(0, dtype=torch.long)

    def _encode_tensor(self, seq: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (l,), soft mask (l,)) without special tokens."""
        if not isinstance(seq, str):
            raise TypeError(f"sequence: expected str, got {type(seq).__name__}")
        codes = self._bytes(seq)
        ids = _LUT[codes]
        bad = (ids == _INVALID).nonzero()
        if len(bad):
            i = int(bad[0])
            raise DNAInputError(f"sequence: character {seq[i]!r} at column {i + 1} is not an IUPAC nucleotide code")
        amb = (ids == _AMBIG).nonzero()
        if len(amb):
            if self.iupac == "error":
                i = int(amb[0])
                raise DNAInputError(f"sequence: ambiguity code {seq[i]!r} at column {i + 1} (tokenizer iupac='error')")
            ids = torch.where(ids == _AMBIG, VOCAB["N"], ids)
        return ids, _LOWER[codes]

    def encode(self, seq: str, add_special_tokens: bool = False) -> list[int]:
        """A string of IUPAC codes -> ids; with add_special_tokens, [CLS] ... [SEP]."""
        ids = self._encode_tensor(seq)[0].tolist()
        return [CLS, *ids, SEP] if add_special_tokens else ids

    def soft_mask(self, seq: str) -> list[int]:
        """1 where the base was lower case (soft-masked repeat), else 0; no special tokens."""
        return self._encode_tensor(seq)[1].tolist()

    def encode_batch(self, seqs: list[str], max_length: int | None = None, truncation: str = "error",
                     add_special_tokens: bool = False):
        """Right-padded batch: (ids (b, l) long, attention_mask (b, l) long) [, soft_mask (b, l) long].

        l is max_length, or the longest row when max_length is None. truncation: "error" (a longer row raises),
        "right" (keep the start), "left" (keep the end); special tokens are kept either way. The soft mask is
        returned only with lowercase="mask_channel" (zeros on specials and padding).
        """
        if truncation not in ("error", "right", "left"):
            raise ValueError(f"truncation: must be 'error', 'right' or 'left', got {truncation!r}")
        if isinstance(seqs, str) or not len(seqs):
            raise ValueError("seqs: expected a non-empty list of strings")
        n_special = 2 if add_special_tokens else 0
        if max_length is not None and max_length < n_special + 1:
            raise ValueError(f"max_length: must be at least {n_special + 1}, got {max_length}")
        rows = []
        for r, s in enumerate(seqs):
            try:
                ids, soft = self._encode_tensor(s)
            except DNAInputError as err:
                raise DNAInputError(str(err).replace("sequence:", f"sequence {r}:", 1)) from None
            if len(ids) == 0:
                raise DNAInputError(f"sequence {r}: empty sequence")
            if max_length is not None and len(ids) + n_special > max_length:
                keep = max_length - n_special
                if truncation == "error":
                    raise DNAInputError(
                        f"sequence {r}: length {len(ids) + n_special} > max_length {max_length} (truncation='error')"
                    )
                ids, soft = (ids[:keep], soft[:keep]) if truncation == "right" else (ids[-keep:], soft[-keep:])
            if add_special_tokens:
                ids = torch.cat([ids.new_tensor([CLS]), ids, ids.new_tensor([SEP])])
                soft = torch.cat([soft.new_zeros(1), soft, soft.new_zeros(1)])
            rows.append((ids, soft))
        l = max_length if max_length is not None else max(len(i) for i, _ in rows)
        ids_out = torch.full((len(rows), l), PAD, dtype=torch.long)
        mask_out = torch.zeros(len(rows), l, dtype=torch.long)
        soft_out = torch.zeros(len(rows), l, dtype=torch.long)
        for r, (ids, soft) in enumerate(rows):
            ids_out[r, : len(ids)], mask_out[r, : len(ids)], soft_out[r, : len(ids)] = ids, 1, soft
        if self.lowercase == "mask_channel":
            return ids_out, mask_out, soft_out
        return ids_out, mask_out

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Ids -> string; [PAD] is always dropped, other specials written as [CLS] etc. unless skipped."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        names = SPECIALS + NUCLEOTIDES
        out = []
        for i in ids:
            if not 0 <= i < len(names):
                raise ValueError(f"ids: token id {i} is outside [0, {len(names)})")
            if i == PAD or (i < len(SPECIALS) and skip_special_tokens):
                continue
            out.append(names[i])
        return "".join(out)

    def reverse_complement_ids(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return reverse_complement_ids(ids, attention_mask)

    # ------------------------------------------------------------------ files
    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "vocab": VOCAB,
                           "lowercase": self.lowercase, "iupac": self.iupac}, indent=2) + "\n"

    def save(self, path: str | os.PathLike) -> Path:
        """Write tokenizer.json atomically (a folder is given: <folder>/tokenizer.json)."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        atomic_write_text(path, self.to_json())
        return path

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "NucleotideTokenizer":
        """Read tokenizer.json (or a folder holding it); one-line DNAInputError for a foreign or edited file."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: file not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DNAInputError(f"{path}: not valid JSON ({str(err).splitlines()[0]})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DNAInputError(f"{path}: not a {FORMAT} file")
        if data.get("version") != FORMAT_VERSION:
            raise DNAInputError(f"{path}: unsupported version {data.get('version')!r} (expected {FORMAT_VERSION})")
        if data.get("vocab") != VOCAB:
            raise DNAInputError(f"{path}: vocab differs from the fixed nucleotide ids (the ids must never change)")
        try:
            return cls(lowercase=data.get("lowercase", "upper"), iupac=data.get("iupac", "N"))
        except ValueError as err:
            raise DNAInputError(f"{path}: {err}") from None


class RandomReverseComplement:
    """Training augmentation: each row of a right-padded batch becomes its reverse complement with probability p.

    Seeded with its own torch.Generator, so a run is reproducible and independent of other random draws.
    """

    def __init__(self, p: float = 0.5, seed: int = 0):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p: must be in [0, 1], got {p}")
        self.p = p
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """ids (b, l) -> (b, l); the attention mask is unchanged (padding stays on the right)."""
        flip = torch.rand(ids.shape[0], generator=self.generator) < self.p  # (b,)
        if not bool(flip.any()):
            return ids
        rc = reverse_complement_ids(ids, attention_mask)
        return torch.where(flip.to(ids.device).unsqueeze(1), rc, ids)


__all__ = ["COMPLEMENT_IDS", "NucleotideTokenizer", "RandomReverseComplement", "VOCAB", "reverse_complement_ids"]

"""Nucleotide tokenizer: fixed ids, policies, batching, reverse complement on strings and ids, save/load."""

from __future__ import annotations

import random

import pytest
import torch

from seqssm import ModelConfig, build_model
from seqssm.domains.dna import DNAInputError, NucleotideTokenizer, RandomReverseComplement, reverse_complement
from seqssm.domains.dna.alphabet import IUPAC
from seqssm.domains.dna.tokenizer import VOCAB, reverse_complement_ids


def _random_dna(rng, n, alphabet="ACGT"):
    return "".join(rng.choice(alphabet) for _ in range(n))


def test_fixed_documented_ids():
    assert VOCAB == {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4,
                     "A": 5, "C": 6, "G": 7, "T": 8, "N": 9}
    tok = NucleotideTokenizer()
    assert tok.vocab_size == 10 and ModelConfig(vocab_size=tok.vocab_size).padded_vocab_size == 16
    assert tok.encode("ACGTN") == [5, 6, 7, 8, 9]
    assert tok.encode("AC", add_special_tokens=True) == [2, 5, 6, 3]


@pytest.mark.parametrize("seq,want", [("acgt", [5, 6, 7, 8]), ("RYSWKMBDHV", [9] * 10), ("aCnr", [5, 6, 9, 9])],
                         ids=["lowercase", "ambiguity_to_N", "mixed"])
def test_default_policies(seq, want):
    assert NucleotideTokenizer().encode(seq) == want


def test_mask_channel_returns_soft_mask():
    tok = NucleotideTokenizer(lowercase="mask_channel")
    ids, mask, soft = tok.encode_batch(["ACgt", "a"], add_special_tokens=True)
    assert ids.tolist() == [[2, 5, 6, 7, 8, 3], [2, 5, 3, 0, 0, 0]]
    assert soft.tolist() == [[0, 0, 0, 1, 1, 0], [0, 1, 0, 0, 0, 0]]
    assert len(NucleotideTokenizer().encode_batch(["ac"])) == 2  # default policy: no third tensor


@pytest.mark.parametrize(
    "tok,seq,what",
    [(NucleotideTokenizer(iupac="error"), "ACRT", "ambiguity code 'R' at column 3"),
     (NucleotideTokenizer(), "ACXT", "'X' at column 3"), (NucleotideTokenizer(), "ACGé", "'é' at column 4"),
     (NucleotideTokenizer(), "AC GT", "' ' at column 3")],
    ids=["iupac_error", "non_iupac", "non_ascii", "space"],
)
def test_encode_errors(tok, seq, what):
    with pytest.raises(DNAInputError, match=what):
        tok.encode(seq)


def test_encode_batch_padding_and_truncation():
    tok = NucleotideTokenizer()
    ids, mask = tok.encode_batch(["ACGTA", "GG"])
    assert ids.tolist() == [[5, 6, 7, 8, 5], [7, 7, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert tok.encode_batch(["ACGTA"], max_length=4, truncation="right", add_special_tokens=True)[0].tolist() == [
        [2, 5, 6, 3]]
    assert tok.encode_batch(["ACGTA"], max_length=3, truncation="left")[0].tolist() == [[7, 8, 5]]
    with pytest.raises(DNAInputError, match="sequence 1: length 5 > max_length 4"):
        tok.encode_batch(["A", "ACGTA"], max_length=4)
    with pytest.raises(DNAInputError, match="sequence 1: empty"):
        tok.encode_batch(["A", ""])
    with pytest.raises(DNAInputError, match="sequence 0: character 'Z'"):
        tok.encode_batch(["AZ"])


def test_decode_round_trip():
    tok = NucleotideTokenizer()
    seq = _random_dna(random.Random(0), 50, "ACGTN")
    assert tok.decode(tok.encode(seq, add_special_tokens=True)) == seq
    assert tok.decode([2, 5, 3, 0, 0], skip_special_tokens=False) == "[CLS]A[SEP]"


def test_string_reverse_complement_known_and_involution():
    assert reverse_complement("AACGTRYKMBVDHSWNacg") == "cgtNWSDHBVKMRYACGTT"
    rng = random.Random(1)
    for n in (1, 7, 40):
        s = _random_dna(rng, n, IUPAC + IUPAC.lower())
        assert reverse_complement(reverse_complement(s)) == s
    with pytest.raises(DNAInputError, match="'X'"):
        reverse_complement("AXG")


@pytest.mark.parametrize("specials", [False, True], ids=["plain", "cls_sep"])
def test_rc_ids_match_tokenizing_rc_string_and_padding_is_untouched(specials):
    tok = NucleotideTokenizer()
    rng = random.Random(2)
    seqs = [_random_dna(rng, n, "ACGTN") for n in (9, 1, 4, 6)]
    ids, mask = tok.encode_batch(seqs, add_special_tokens=specials)
    rc = reverse_complement_ids(ids, mask)
    want, want_mask = tok.encode_batch([reverse_complement(s) for s in seqs], add_special_tokens=specials)
    assert torch.equal(rc, want) and torch.equal(mask, want_mask)
    assert torch.equal(rc[mask == 0], ids[mask == 0])  # padding untouched
    assert torch.equal(reverse_complement_ids(rc, mask), ids)  # involution on ids
    assert torch.equal(reverse_complement_ids(ids[0]), want[0][: len(ids[0])])  # one row, no mask


def test_complement_map_fixes_specials():
    comp = NucleotideTokenizer().complement_ids
    assert comp[:5].tolist() == [0, 1, 2, 3, 4] and comp[5:].tolist() == [8, 7, 6, 5, 9]


def test_random_reverse_complement_is_seeded_and_mixes():
    tok = NucleotideTokenizer()
    ids, mask = tok.encode_batch([_random_dna(random.Random(i), 12) for i in range(64)])
    a, b = RandomReverseComplement(seed=3)(ids, mask), RandomReverseComplement(seed=3)(ids, mask)
    assert torch.equal(a, b)
    flipped = (a != ids).any(1)
    assert 10 < int(flipped.sum()) < 54  # p=0.5 over 64 rows
    rc = reverse_complement_ids(ids, mask)
    assert torch.equal(a[flipped], rc[flipped])
    assert torch.equal(RandomReverseComplement(p=0.0)(ids, mask), ids)


def test_save_load_and_beside_model_weights(tmp_path):
    tok = NucleotideTokenizer(lowercase="mask_channel", iupac="error")
    back = NucleotideTokenizer.from_file(tok.save(tmp_path / "tokenizer.json"))
    assert (back.lowercase, back.iupac) == ("mask_channel", "error")
    model = build_model(ModelConfig(d_model=16, n_layer=1, vocab_size=tok.vocab_size, head="classify"))
    folder = model.save_pretrained(tmp_path / "ckpt", extra_files={"tokenizer.json": tok.to_json()})
    assert NucleotideTokenizer.from_file(folder).iupac == "error"


@pytest.mark.parametrize(
    "text,what",
    [("{", "not valid JSON"), ('{"format": "other"}', "not a seqssm.NucleotideTokenizer"),
     ('{"format": "seqssm.NucleotideTokenizer", "version": 1, "vocab": {"A": 0}}', "vocab differs")],
    ids=["not_json", "foreign", "edited_vocab"],
)
def test_from_file_errors(tmp_path, text, what):
    p = tmp_path / "tokenizer.json"
    p.write_text(text)
    with pytest.raises(DNAInputError, match=what) as err:
        NucleotideTokenizer.from_file(p)
    assert str(p) in str(err.value) and "\n" not in str(err.value)

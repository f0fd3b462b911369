"""Order-k Markov baselines: proper distributions, the right answer on sequences with known entropy, no
overfitting on random bases, strands counted, and the `seqssm baseline markov` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from seqssm.domains.dna.markov import MarkovModel, encode, fit_markov, markov_table, reverse_complement_codes
from seqssm.pipelines.cli import main


def test_encode_and_reverse_complement():
    assert encode("ACGTacgtN-").tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 4]
    assert reverse_complement_codes(encode("AACGN")).tolist() == encode("NCGTT").tolist()


@pytest.mark.parametrize("order", [0, 2, 5])
def test_probabilities_sum_to_one_after_any_context(order):
    rng = np.random.default_rng(order)
    model = MarkovModel(order, alphas=[0.7] * (order + 1))
    model.add(rng.integers(0, 4, 5000).astype(np.uint8))
    for _ in range(5):
        ctx = rng.integers(0, 4, order).astype(np.uint8)
        total = sum(2.0 ** -model.bits(np.array([x], np.uint8), order, context=ctx)[0] for x in range(4))
        assert total == pytest.approx(1.0, abs=1e-12)


def test_random_bases_cost_two_bits_at_every_order():
    """Smoothing chosen on the training tail keeps high orders from overfitting i.i.d. uniform bases."""
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 4, 100_000).astype(np.uint8), rng.integers(0, 4, 20_000).astype(np.uint8)
    bits = [r["bits_per_nt"] for r in markov_table(train, test, 9, both_strands=False)]
    assert max(bits) < 2.03 and min(bits) > 1.98


def test_a_periodic_sequence_is_free_once_the_context_covers_it():
    seq = np.tile(np.array([0, 1, 2, 3, 3, 2, 1], np.uint8), 3000)
    rows = markov_table(seq[:15000], seq[15000:], 4, both_strands=False)
    assert rows[0]["bits_per_nt"] > 1.9 and rows[2]["bits_per_nt"] < 0.01


def test_markov_chain_of_known_entropy():
    """An order-1 chain: the order-1 model reaches the chain's entropy rate, order 0 does not."""
    rng = np.random.default_rng(1)
    T = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1], [0.1, 0.1, 0.1, 0.7]])
    x = np.zeros(60_000, np.uint8)
    for i in range(1, len(x)):
        x[i] = rng.choice(4, p=T[x[i - 1]])
    rate = -(0.7 * math.log2(0.7) + 3 * 0.1 * math.log2(0.1))
    rows = markov_table(x[:50_000], x[50_000:], 3, both_strands=False)
    assert rows[1]["bits_per_nt"] == pytest.approx(rate, abs=0.02)
    assert rows[0]["bits_per_nt"] > rate + 0.3


def test_both_strands_double_the_counts():
    seq = encode("AACGTTTGCA" * 10)
    one, two = MarkovModel(2), MarkovModel(2)
    one.add(seq, both_strands=False)
    two.add(seq, both_strands=True)
    assert two.counts[0].sum() == 2 * one.counts[0].sum()
    # a reverse-complement-symmetric count table: C(A) = C(T), C(C) = C(G)
    assert two.counts[0][0] == two.counts[0][3] and two.counts[0][1] == two.counts[0][2]


def test_non_acgt_positions_are_not_scored():
    model = fit_markov(encode("ACGTTGCA" * 200), 2)
    _, n = model.bits(encode("ACGNACGT"), 2)
    assert n == 3  # order 2: positions 2..7 have a full context; the three whose window holds the N are skipped


def test_baseline_command(tmp_path, capsys):
    rng = np.random.default_rng(2)
    fa = tmp_path / "g.fa"
    fa.write_text(">chr1\n" + "".join("ACGT"[i] for i in rng.integers(0, 4, 20_000)) + "\n>chr2\nACGTACGTAC\n")
    out = tmp_path / "m.json"
    assert main(["baseline", "markov", "--fasta", str(fa), "--max-order", "4", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["bases"] == 20_010 and res["test_bases"] == 2001 and len(res["rows"]) == 5
    assert "<- best" in capsys.readouterr().out
    assert main(["baseline", "markov", "--fasta", str(fa), "--holdout", "1.5"]) == 2
    assert "--holdout" in capsys.readouterr().err

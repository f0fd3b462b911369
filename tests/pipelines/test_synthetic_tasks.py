"""The synthetic tasks of `seqssm eval` hold what they claim: the scored answers are exactly what the task defines."""

from __future__ import annotations

import pytest
import torch

import seqssm
from seqssm.pipelines.synthetic import tasks as T
from seqssm.pipelines.synthetic.train import scored_logits


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_selective_copying_targets_are_the_data_tokens_in_order():
    b, length, n_data, vocab = 16, 40, 5, 6
    batch = T.selective_copying(b, length, n_data, vocab, gen())
    x = batch.inputs
    assert x.shape == (b, length + n_data)
    assert torch.equal(batch.positions, torch.arange(length, length + n_data))
    assert (x[:, length:] == T.SC_MARKER).all()
    for row in range(b):
        region = x[row, :length]
        data = region[region != T.SC_NOISE]
        assert data.numel() == n_data  # exactly n_data data tokens, none lost to a collision
        assert torch.equal(batch.targets[row], data)  # in order of appearance
    assert batch.targets.min() >= T.SC_DATA0 and batch.targets.max() < T.SC_DATA0 + vocab
    assert not (x[:, :length] == T.SC_MARKER).any()
    # the data positions differ between rows (they are drawn, not fixed)
    assert len({tuple((x[r, :length] != 0).nonzero().flatten().tolist()) for r in range(b)}) > 1


def test_selective_copying_is_reproducible_and_refuses_a_short_region():
    a = T.selective_copying(3, 20, 4, 8, gen(5))
    b = T.selective_copying(3, 20, 4, 8, gen(5))
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    with pytest.raises(ValueError, match="length"):
        T.selective_copying(1, 3, 4, 8, gen())


def test_induction_heads_answer_is_the_token_after_the_first_trigger():
    b, length, vocab = 64, 12, 5
    batch = T.induction_heads(b, length, vocab, gen(1))
    x = batch.inputs
    assert x.shape == (b, length) and torch.equal(batch.positions, torch.tensor([length - 1]))
    for row in range(b):
        where = (x[row] == vocab).nonzero().flatten().tolist()
        assert len(where) == 2 and where[1] == length - 1  # one trigger inside, one at the end
        first = where[0]
        assert first <= length - 3  # its target comes before the final trigger
        assert batch.targets[row, 0] == x[row, first + 1] and batch.targets[row, 0] < vocab
    assert len(set(batch.targets.flatten().tolist())) > 1
    with pytest.raises(ValueError):
        T.induction_heads(1, 2, vocab, gen())


@pytest.mark.parametrize("within", [1, 4, 100], ids=lambda w: f"within{w}")
def test_induction_heads_trigger_within_puts_the_first_trigger_early(within):
    b, length, vocab = 256, 12, 5
    batch = T.induction_heads(b, length, vocab, gen(3), within)
    first = (batch.inputs == vocab).int().argmax(dim=1)
    span = min(within, length - 2)  # 100 is clamped: the target must come before the final trigger
    assert int(first.max()) == span - 1 and int(first.min()) == 0  # 256 draws cover every allowed position
    rows = torch.arange(b)
    assert torch.equal(batch.targets[:, 0], batch.inputs[rows, first + 1])
    assert ((batch.inputs == vocab).sum(dim=1) == 2).all()
    with pytest.raises(ValueError, match="within"):
        T.induction_heads(1, length, vocab, gen(), -1)


def test_copy_second_half_repeats_the_string():
    n, vocab = 7, 4
    batch = T.copy_string(5, n, vocab, gen(2))
    x, s = batch.inputs, batch.targets
    assert x.shape == (5, 2 * n) and s.shape == (5, n)
    assert torch.equal(x[:, :n], s) and (x[:, n] == vocab).all()
    assert torch.equal(x[:, n + 1 :], s[:, :-1])  # teacher forcing: the copy so far
    assert torch.equal(batch.positions, torch.arange(n, 2 * n))


def test_phonebook_answer_is_the_queried_entrys_number():
    b, n, k, alphabet, m = 8, 9, 2, 4, 3
    tok = T.phonebook_tokens(alphabet)
    batch = T.phonebook(b, n, k, alphabet, m, gen(3))
    entry = k + m + 2
    assert batch.inputs.shape == (b, n * entry + k + 2 + m - 1)
    for row in range(b):
        x = batch.inputs[row].tolist()
        book = {}
        for i in range(n):
            e = x[i * entry : (i + 1) * entry]
            assert e[k] == tok["sep"] and e[-1] == tok["end"]
            assert all(tok["letter0"] <= c < tok["sep"] for c in e[:k]) and all(0 <= c < 10 for c in e[k + 1 : -1])
            book[tuple(e[:k])] = e[k + 1 : -1]
        assert len(book) == n  # names are distinct
        q = x[n * entry :]
        assert q[0] == tok["query"] and q[k + 1] == tok["sep"]
        answer = book[tuple(q[1 : k + 1])]
        assert batch.targets[row].tolist() == answer
        assert q[k + 2 :] == answer[:-1]  # teacher forcing
        assert batch.positions.tolist() == list(range(len(x) - m, len(x)))
    with pytest.raises(ValueError):
        T.phonebook(1, alphabet**k + 1, k, alphabet, m, gen())  # more entries than distinct names


def test_scored_logits_streamed_in_segments_equal_one_pass():
    torch.manual_seed(0)
    model = seqssm.build_model(seqssm.ModelConfig.from_flat(d_model=16, n_layer=2, vocab_size=17, d_state=4)).eval()
    batch = T.induction_heads(2, 50, 16, gen(4))
    positions = torch.tensor([3, 17, 18, 40, 49])
    with torch.no_grad():
        one = scored_logits(model, batch.inputs, positions)
        seg = scored_logits(model, batch.inputs, positions, segment=16)
    assert one.shape == (2, 5, 17)
    torch.testing.assert_close(seg, one, rtol=1e-4, atol=1e-4)

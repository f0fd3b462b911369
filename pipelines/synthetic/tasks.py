"""The synthetic tasks of `seqssm eval` (generators): batches of token ids, the positions whose outputs are scored,
and the answers.

Dimension names used in this file:
    b batch · l input length · m scored positions per row

Every generator returns an `EvalBatch`: inputs (b, l) long, positions (m,) (the same columns in every row) and
targets (b, m). The model is a causal LM; its output at input position positions[j] must be targets[:, j]. Only
these m outputs enter the loss and the accuracy (the other positions are unpredictable noise by construction).

Tasks and what "length" means for each (the x axis of the accuracy-vs-length results):

- selective-copying (Gu & Dao 2023, section 4.1.1 and appendix E.1): `length` = L, the noise region. L positions
  of noise with n_data data tokens (vocabulary `vocab`) at random positions, then n_data markers; at marker j the
  model outputs data token j. Content-aware (selective) forgetting of the noise is what the task tests.
- induction-heads (section 4.1.2, after Olsson et al. 2022): `length` = L, the whole input. Random tokens, one
  trigger token somewhere followed by a target token, and the trigger again at the last position; the model
  outputs the target there.
- copy (Jelassi et al. 2024, "Repeat After Me", arXiv 2402.01032, section 2): `length` = n, the string length. A
  random string, a separator, and the string again (teacher forced); every output of the second half is scored.
  All n predictions right under teacher forcing is exactly "greedy generation reproduces the string".
- phonebook (same paper, section 4.2, phone-book lookup): `length` = n entries "name : number ;" with distinct
  names, then "? name :" of one entry and its number (teacher forced); the number's digits are scored.

Randomness comes only from the torch.Generator passed in, so a seed fixes every batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class EvalBatch:
    inputs: torch.Tensor  # (b, l) long
    positions: torch.Tensor  # (m,) long: input positions whose next-token outputs are scored
    targets: torch.Tensor  # (b, m) long


def _random_subset_sorted(b: int, population: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """(b, k) distinct values in [0, population) per row, increasing: the first k of a random permutation."""
    keys = torch.rand(b, population, generator=gen)
    return keys.topk(k, dim=1, largest=False).indices.sort(dim=1).values


# ------------------------------------------------------------------------------------------ selective copying
# token ids: 0 noise, 1 marker, 2 .. 2 + vocab - 1 data

SC_NOISE, SC_MARKER, SC_DATA0 = 0, 1, 2


def selective_copying(b: int, length: int, n_data: int, vocab: int, gen: torch.Generator) -> EvalBatch:
    """Noise region of `length` positions holding n_data data tokens at random positions, then n_data markers."""
    if length < n_data:
        raise ValueError(f"length: the noise region ({length}) must hold the {n_data} data tokens")
    data = torch.randint(vocab, (b, n_data), generator=gen) + SC_DATA0  # (b, m)
    where = _random_subset_sorted(b, length, n_data, gen)  # (b, m), in order of appearance
    inputs = torch.full((b, length + n_data), SC_NOISE, dtype=torch.long)
    inputs.scatter_(1, where, data)
    inputs[:, length:] = SC_MARKER
    positions = torch.arange(length, length + n_data)  # the output at marker j is data token j
    return EvalBatch(inputs, positions, data)


# ---------------------------------------------------------------------------------------------- induction heads
# token ids: 0 .. vocab - 1 ordinary, vocab the trigger (it appears nowhere else)


def induction_heads(b: int, length: int, vocab: int, gen: torch.Generator, within: int = 0) -> EvalBatch:
    """`length` random tokens; trigger at a random position p <= length - 3, the target at p + 1, and the trigger
    again at the last position, where the output must be the target. within > 0: p is drawn from the first
    `within` positions only (at most length - 2), so the answer lies about `length` positions back, as in the
    public reproduction of the paper's Table 2 (first trigger at a fixed early position); 0: anywhere."""
    if length < 3:
        raise ValueError(f"length: induction heads needs at least 3 positions, got {length}")
    if within < 0:
        raise ValueError(f"within: must be >= 0 (0: anywhere), got {within}")
    trigger = vocab
    inputs = torch.randint(vocab, (b, length), generator=gen)
    span = length - 2 if within == 0 else min(within, length - 2)
    p = torch.randint(span, (b,), generator=gen)  # trigger position; target at p + 1 <= length - 2
    rows = torch.arange(b)
    inputs[rows, p] = trigger
    inputs[:, -1] = trigger
    targets = inputs[rows, p + 1].clone().unsqueeze(1)  # (b, 1)
    return EvalBatch(inputs, torch.tensor([length - 1]), targets)


# ------------------------------------------------------------------------------------------------------ copying
# token ids: 0 .. vocab - 1 string characters, vocab the separator


def copy_string(b: int, length: int, vocab: int, gen: torch.Generator) -> EvalBatch:
    """A random string s of `length` tokens, the separator, then s again; input = that minus its last token."""
    if length < 1:
        raise ValueError(f"length: the string needs at least 1 token, got {length}")
    s = torch.randint(vocab, (b, length), generator=gen)
    sep = torch.full((b, 1), vocab, dtype=torch.long)
    inputs = torch.cat([s, sep, s[:, :-1]], dim=1)  # (b, 2n)
    positions = torch.arange(length, 2 * length)  # the separator predicts s[0], ..., s[n-2] predicts s[n-1]
    return EvalBatch(inputs, positions, s)


# ---------------------------------------------------------------------------------------------------- phonebook
# token ids: 0 .. 9 digits, 10 .. 10 + A - 1 name letters, then ':' (name/number), ';' (end of entry), '?' (query)


def phonebook_tokens(name_alphabet: int) -> dict[str, int]:
    letters = 10 + name_alphabet
    return {"letter0": 10, "sep": letters, "end": letters + 1, "query": letters + 2, "vocab": letters + 3}


def phonebook(b: int, length: int, name_length: int, name_alphabet: int, number_length: int,
              gen: torch.Generator) -> EvalBatch:
    """`length` entries "name : number ;" with distinct names, then "? name : number" for one of them."""
    tok = phonebook_tokens(name_alphabet)
    n, k, m = length, name_length, number_length
    if n < 1 or name_alphabet**k < n:
        raise ValueError(f"length: {n} entries need 1 <= n <= name_alphabet ** name_length = {name_alphabet ** k}")
    codes = _random_subset_sorted(b, name_alphabet**k, n, gen)  # (b, n) distinct names as integers
    codes = codes.gather(1, torch.rand(b, n, generator=gen).argsort(dim=1))  # in random order in the book
    powers = name_alphabet ** torch.arange(k - 1, -1, -1)  # (k,) base-A digits of the name code
    names = (codes[..., None] // powers) % name_alphabet + tok["letter0"]  # (b, n, k)
    numbers = torch.randint(10, (b, n, m), generator=gen)  # (b, n, m) digits; numbers may repeat
    sep = torch.full((b, n, 1), tok["sep"], dtype=torch.long)
    end = torch.full((b, n, 1), tok["end"], dtype=torch.long)
    book = torch.cat([names, sep, numbers, end], dim=2).reshape(b, n * (k + m + 2))
    q = torch.randint(n, (b,), generator=gen)
    rows = torch.arange(b)
    answer = numbers[rows, q]  # (b, m)
    query = torch.cat([torch.full((b, 1), tok["query"]), names[rows, q], torch.full((b, 1), tok["sep"])], dim=1)
    inputs = torch.cat([book, query, answer[:, :-1]], dim=1)
    total = inputs.shape[1]
    positions = torch.arange(total - m, total)  # ':' predicts digit 0, digit j predicts digit j + 1
    return EvalBatch(inputs, positions, answer)


__all__ = ["EvalBatch", "copy_string", "induction_heads", "phonebook", "phonebook_tokens", "selective_copying"]

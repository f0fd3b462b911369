"""Post-hoc reverse-complement conjoining: average a classifier's logits over a sequence and its reverse complement.

Dimension names used in this file:
    b batch · l sequence length (right-padded) · c classes

DNA is double-stranded, so a label usually belongs to both strands. Averaging f(x) and f(rc(x)) (Zhou et al.
2021, "post-hoc conjoining"; Caduceus section 3) makes any classifier exactly RC-invariant at inference:
conjoin(rc(x)) = (f(rc(x)) + f(x)) / 2 = conjoin(x), since rc is an involution and float addition commutes.
"""

from __future__ import annotations

import torch

from seqssm.domains.dna.tokenizer import NucleotideTokenizer


def rc_conjoin(model: torch.nn.Module, ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               tokenizer: NucleotideTokenizer | None = None) -> torch.Tensor:
    """ids (b, l), attention_mask (b, l) or None -> logits (b, c), the mean over both strands.

    `model(ids, attention_mask)` must return (b, c) logits (seqssm's SequenceClassifier does). The tokenizer
    supplies the id complement map (default: the standard NucleotideTokenizer ids).
    """
    tok = tokenizer if tokenizer is not None else NucleotideTokenizer()
    rc_ids = tok.reverse_complement_ids(ids, attention_mask)
    forward = model(ids, attention_mask)
    reverse = model(rc_ids, attention_mask)  # right padding is kept, so the same mask applies
    return (forward + reverse) / 2


__all__ = ["rc_conjoin"]

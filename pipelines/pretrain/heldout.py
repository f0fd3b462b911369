"""The held-out scores of `seqssm pretrain` and BERT masking (no Lightning: also used on a loaded model).

Dimension names: b batch · l window length · v vocabulary.

Causal: the held-out part of every record, streamed in segments with the state carried, each token predicted from
everything before it (warmed up on data.eval_context tokens before the cut, not scored). Masked: non-overlapping
windows of the held-out parts with a fixed masking seed. Bits per token = nats / ln 2.
"""

from __future__ import annotations

import torch

from seqssm.domains import DomainInputError
from seqssm.pipelines.training import LN2

N_ID, MASK_ID, BASE_IDS = 9, 4, (5, 6, 7, 8)  # the NucleotideTokenizer's fixed ids (checked in the tests)


def mask_tokens(ids: torch.Tensor, fraction: float, generator: torch.Generator):
    """BERT masking (Devlin et al. 2019, section 3.1; Caduceus's MLM): ids (b, l) -> (corrupted ids, chosen (b, l)
    bool). Chosen positions become [MASK] (80%), a random base (10%) or stay (10%)."""
    u = torch.rand(ids.shape, generator=generator)
    chosen = u < fraction
    v = torch.rand(ids.shape, generator=generator)
    random_base = torch.tensor(BASE_IDS)[torch.randint(4, ids.shape, generator=generator)]
    out = torch.where(chosen & (v < 0.8), torch.full_like(ids, MASK_ID), ids)
    out = torch.where(chosen & (v >= 0.8) & (v < 0.9), random_base, out)
    return out, chosen


@torch.no_grad()
def heldout_bits(model, corpus, context: int, segment: int, max_tokens: int = 0) -> dict:
    """Nats and bits per token of the held-out parts, streamed with the recurrent state carried."""
    model.eval()
    device = next(model.parameters()).device
    nll, count = 0.0, 0
    for _, ctx, tail in corpus.heldout(context):
        if max_tokens:
            tail = tail[: max(0, max_tokens - count)]
        if len(tail) == 0:
            continue
        state, prev = None, None
        if len(ctx):
            logits, state = model(torch.from_numpy(ctx)[None].to(device), return_state=True)
            prev = logits[0, -1:]
        for s0 in range(0, len(tail), segment):
            seg = torch.from_numpy(tail[s0:s0 + segment])[None].to(device)
            logits, state = model(seg, state=state, return_state=True)
            preds = logits[0] if prev is None else torch.cat([prev, logits[0]])
            targets = seg[0] if prev is not None else seg[0, 1:]
            nll += float(torch.nn.functional.cross_entropy(preds[:len(targets)], targets, reduction="sum"))
            count += len(targets)
            prev = logits[0, -1:]
        if max_tokens and count >= max_tokens:
            break
    model.train()
    if count == 0:
        raise DomainInputError(f"{corpus.path}: the held-out part has no tokens to score")
    return {"nats_per_token": nll / count, "bits_per_token": nll / count / LN2, "tokens": count}


@torch.no_grad()
def heldout_masked_bits(model, corpus, window: int, fraction: float, max_tokens: int = 0,
                        seed: int = 0) -> dict:
    """Bits per masked token on non-overlapping windows of the held-out parts, with a fixed masking seed."""
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    nll, count, seen = 0.0, 0, 0
    for _, _, tail in corpus.heldout(0):
        for s0 in range(0, len(tail) - window + 1, window):
            if max_tokens and seen >= max_tokens:
                break
            ids = torch.from_numpy(tail[s0:s0 + window])[None]
            corrupted, chosen = mask_tokens(ids, fraction, gen)
            if chosen.any():
                ids, corrupted, chosen = ids.to(device), corrupted.to(device), chosen.to(device)
                logits = model(corrupted)
                nll += float(torch.nn.functional.cross_entropy(logits[chosen], ids[chosen], reduction="sum"))
                count += int(chosen.sum())
            seen += window
    model.train()
    if count == 0:
        raise DomainInputError(f"{corpus.path}: the held-out part has no window of {window} tokens to score")
    return {"nats_per_token": nll / count, "bits_per_token": nll / count / LN2, "tokens": count}


def score_heldout(model, corpus, job, final: bool = False) -> dict:
    """The objective's held-out score: bits per token (causal) or per masked token (masked)."""
    d = job.data
    limit = 0 if final else d.eval_max_tokens
    if job.objective.kind == "masked":
        window = job.schedule.stages[-1].seq_len
        return heldout_masked_bits(model, corpus, window, job.objective.mask_fraction, limit, job.train.seed)
    return heldout_bits(model, corpus, d.eval_context, d.eval_segment, limit)

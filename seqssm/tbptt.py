"""Backpropagation through a long sequence fed in segments, with the recurrent state carried between them.

Dimension names: b batch · l sequence length · s segment length · v vocabulary.

A selective SSM's whole memory of the past is its state (paper section 3.3), so a sequence of any length can be
run as consecutive segments, each starting from the state the previous one ended in; the forward pass is then
exactly one pass over the whole sequence. Two ways to get gradients with memory bounded by one segment:

truncated  the classic truncated BPTT (Williams & Peng 1990): each segment's loss is back-propagated at once and
           the graph is cut at the boundary, so no gradient flows from a segment into the state it started from.
           One forward per token. Gradients are an approximation of the full pass's.
exact      the same gradients as one pass over the whole sequence. A first pass without a graph stores only the
           boundary states (O(layers * state) each); then segments are re-run last to first with a graph, and
           the gradient with respect to a segment's final state (from the segment after it) is back-propagated
           together with the segment's own loss, giving the gradient of its initial state for the segment before
           it. This is activation checkpointing at segment granularity: two forwards per token.

Both take any model whose forward is `model(ids, state=..., return_state=True) -> (logits, state)` and whose
state is built from dataclasses, lists and tensors (seqssm.state). Nothing here knows about Lightning.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
import torch.nn.functional as F

MODES = ("exact", "truncated")


def state_tensors(state: Any) -> list[torch.Tensor]:
    """The tensors of a state (ModelState, LayerState, KVCache, a multi-scale state ...) in a fixed order."""
    if state is None:
        return []
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, (list, tuple)):
        return [t for s in state for t in state_tensors(s)]
    if dataclasses.is_dataclass(state):
        return [t for f in dataclasses.fields(state) for t in state_tensors(getattr(state, f.name))]
    return []  # ints (a KV cache's offset) and other plain values carry no gradient


def map_state(state: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """A copy of `state` with every tensor t replaced by fn(t), the structure kept."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return fn(state)
    if isinstance(state, (list, tuple)):
        return type(state)(map_state(s, fn) for s in state)
    if dataclasses.is_dataclass(state):
        return dataclasses.replace(state, **{f.name: map_state(getattr(state, f.name), fn)
                                             for f in dataclasses.fields(state) if f.init})
    return state


def _segment_loss(model, x, y, state, reduction_scale: float):
    logits, new_state = model(x, state=state, return_state=True)  # logits (b, s, v)
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum")  # logits are float32 or wider
    return loss * reduction_scale, loss.detach(), new_state


def segmented_backward(model, inputs: torch.Tensor, targets: torch.Tensor, segment_len: int,
                       mode: str = "exact", backward: Callable[[torch.Tensor], None] | None = None) -> float:
    """Back-propagate the mean next-token cross-entropy of `inputs` (b, l) against `targets` (b, l) through
    `model`, fed in segments of `segment_len` tokens with the state carried; returns the mean loss (nats).

    `backward(tensor)` runs the backward pass (default `tensor.backward()`; Lightning passes manual_backward).
    Gradients accumulate into the parameters' .grad as a single call to backward on the full loss would.

    Example:
        >>> loss = segmented_backward(model, ids[:, :-1], ids[:, 1:], segment_len=4096, mode="exact")
    """
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")
    if inputs.shape != targets.shape or inputs.dim() != 2:
        raise ValueError(f"inputs and targets: need the same (b, l) shape, got {tuple(inputs.shape)} and "
                         f"{tuple(targets.shape)}")
    if segment_len < 1:
        raise ValueError(f"segment_len: must be >= 1, got {segment_len}")
    backward = backward or (lambda t: t.backward())
    b, l = inputs.shape
    scale = 1.0 / (b * l)
    starts = list(range(0, l, segment_len))
    total = 0.0
    if mode == "truncated":
        state = None
        for s0 in starts:
            loss, raw, state = _segment_loss(model, inputs[:, s0:s0 + segment_len], targets[:, s0:s0 + segment_len],
                                             state, scale)
            backward(loss)
            state = state.detach()  # cut the graph at the boundary
            total += float(raw)
        return total / (b * l)

    # exact: the states at every boundary, without a graph (the first segment starts from no state)
    boundary = [None]
    with torch.no_grad():
        state = None
        for s0 in starts[:-1]:
            _, state = model(inputs[:, s0:s0 + segment_len], state=state, return_state=True)
            boundary.append(map_state(state, torch.Tensor.detach))
    grad_out: list[torch.Tensor] | None = None  # d loss / d (this segment's final state tensors)
    for i in reversed(range(len(starts))):
        s0 = starts[i]
        leaves: list[torch.Tensor] = []

        def _leaf(t: torch.Tensor) -> torch.Tensor:
            leaf = t.detach().requires_grad_(t.is_floating_point())
            leaves.append(leaf)
            # a copy, not the leaf itself: decoding steps (the multi-scale model mid-group) update states in place
            return leaf.clone() if leaf.requires_grad else leaf

        start_state = map_state(boundary[i], _leaf)
        loss, raw, end_state = _segment_loss(model, inputs[:, s0:s0 + segment_len],
                                             targets[:, s0:s0 + segment_len], start_state, scale)
        total += float(raw)
        if grad_out is not None:
            # the later segments' loss depends on this segment only through its final state: add <state, grad>
            ends = state_tensors(end_state)
            loss = loss + sum((e * g).sum() for e, g in zip(ends, grad_out) if g is not None and e.requires_grad)
        backward(loss)
        grad_out = [t.grad if t.requires_grad else None for t in leaves]
    return total / (b * l)


__all__ = ["MODES", "map_state", "segmented_backward", "state_tensors"]

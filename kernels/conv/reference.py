"""Causal depthwise convolution, the executable spec (the short convolution of the Mamba block, paper section 3.4).

Dimension names: b batch · d channels · l sequence length · k kernel width.

    out[b, d, t] = bias[d] + sum_{j=0}^{k-1} weight[d, j] · x[b, d, t - (k - 1) + j]

where x at negative times is read from `initial_state` (b, d, k-1) (zeros when absent): the last k-1 inputs of the
previous segment, so that two segments convolved in turn equal one. The final state is the last k-1 inputs.

With seq_idx (b, l) (several sequences packed in one row) a tap reads only inputs of the same sequence as its
output; the carried inputs count as part of the first sequence, and the final state keeps only the last sequence's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def causal_conv1d_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
    initial_state: torch.Tensor | None = None,
    return_final_state: bool = False,
    seq_idx: torch.Tensor | None = None,
):
    b, d, l = x.shape
    k = weight.shape[1]
    wide = torch.float64 if x.dtype == torch.float64 else torch.float32
    head = x.new_zeros(b, d, k - 1) if initial_state is None else initial_state
    xp = torch.cat([head.to(wide), x.to(wide)], dim=-1)  # (b, d, k-1+l)
    out = torch.zeros(b, d, l, dtype=wide, device=x.device)
    same = _same_sequence_masks(seq_idx, k, l, wide)
    for j in range(k):  # one tap at a time: readable, not fast
        tap = weight[:, j, None].to(wide) * xp[:, :, j : j + l]
        out = out + (tap if same is None else tap * same[j])
    if bias is not None:
        out = out + bias.to(wide)[:, None]
    if activation in ("silu", "swish"):
        out = F.silu(out)
    out = out.to(x.dtype)
    if return_final_state:
        return out, final_state(xp, seq_idx, k).to(x.dtype)
    return out


def _padded_seq(seq_idx: torch.Tensor, k: int) -> torch.Tensor:
    """(b, k-1+l): the sequence id of every input a tap can read, the carried ones counted in the first sequence."""
    return torch.cat([seq_idx[:, :1].expand(-1, k - 1), seq_idx], dim=1)


def _same_sequence_masks(seq_idx, k: int, l: int, dtype):
    """[mask_j (b, 1, l)]: 1 where tap j reads an input of the output's own sequence."""
    if seq_idx is None:
        return None
    sp = _padded_seq(seq_idx, k)
    return [(sp[:, j : j + l] == seq_idx).to(dtype)[:, None, :] for j in range(k)]


def final_state(xp: torch.Tensor, seq_idx, k: int) -> torch.Tensor:
    """The last k-1 inputs of xp (b, d, k-1+l) — zero where they belong to an earlier packed sequence."""
    tail = xp[:, :, xp.shape[-1] - (k - 1) :]
    if seq_idx is None:
        return tail
    sp = _padded_seq(seq_idx, k)
    mask = (sp[:, sp.shape[1] - (k - 1) :] == seq_idx[:, -1:]).to(tail.dtype)[:, None, :]
    return tail * mask


def causal_conv1d_update_reference(
    x: torch.Tensor,
    conv_state: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
) -> torch.Tensor:
    """One decoding step: x (b, d), conv_state (b, d, k-1) updated in place; returns (b, d)."""
    window = torch.cat([conv_state, x.unsqueeze(-1)], dim=-1)  # (b, d, k)
    out = (window * weight).sum(-1)
    if bias is not None:
        out = out + bias
    if activation in ("silu", "swish"):
        out = F.silu(out)
    conv_state.copy_(window[:, :, 1:])
    return out

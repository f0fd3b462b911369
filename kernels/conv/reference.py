"""Causal depthwise convolution, the executable spec (the short convolution of the Mamba block, paper section 3.4).

Dimension names: b batch · d channels · l sequence length · k kernel width.

    out[b, d, t] = bias[d] + sum_{j=0}^{k-1} weight[d, j] · x[b, d, t - (k - 1) + j]

where x at negative times is read from `initial_state` (b, d, k-1) (zeros when absent): the last k-1 inputs of the
previous segment, so that two segments convolved in turn equal one. The final state is the last k-1 inputs.
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
):
    b, d, l = x.shape
    k = weight.shape[1]
    wide = torch.float64 if x.dtype == torch.float64 else torch.float32
    head = x.new_zeros(b, d, k - 1) if initial_state is None else initial_state
    xp = torch.cat([head.to(wide), x.to(wide)], dim=-1)  # (b, d, k-1+l)
    out = torch.zeros(b, d, l, dtype=wide, device=x.device)
    for j in range(k):  # one tap at a time: readable, not fast
        out = out + weight[:, j, None].to(wide) * xp[:, :, j : j + l]
    if bias is not None:
        out = out + bias.to(wide)[:, None]
    if activation in ("silu", "swish"):
        out = F.silu(out)
    out = out.to(x.dtype)
    if return_final_state:
        return out, xp[:, :, xp.shape[-1] - (k - 1) :].to(x.dtype)
    return out


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

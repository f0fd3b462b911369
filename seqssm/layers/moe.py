"""Switch (top-1) mixture-of-experts feed-forward, interleaved with Mamba blocks as in MoE-Mamba.

Dimension names used in this file:
    b batch · l sequence length · d model width · f expert hidden width (moe_d_ff) · E experts · T tokens (b·l)

Switch Transformer (Fedus, Zoph & Shazeer 2021, arXiv 2101.03961), section 2.1-2.2:
    p(x)      = softmax(W_r x)                        router probabilities over E experts (eq. 1)
    i(x)      = argmax_i p_i(x)                       top-1 routing
    y(x)      = p_{i(x)}(x) · FFN_{i(x)}(x)           the gate value keeps the router differentiable (eq. 2)
    capacity  = ceil(capacity_factor · T / E)         tokens an expert takes per batch (eq. 3)
    aux loss  = E · Σ_i f_i · P_i                      load balancing (eq. 4): f_i the fraction of tokens routed
                                                      to i (eq. 5), P_i the mean router probability of i (eq. 6)

Tokens past an expert's capacity (in order of position in the flattened batch) are dropped: their output is 0, so
in a residual block they pass through the residual stream unchanged. Drops are counted, never silent:
`last_dropped` (this call) and `dropped_total` (since construction or `reset_counts`).

MoE-Mamba (Pióro et al. 2024, arXiv 2401.04081, section 3) follows every chosen Mamba block with such a layer;
here `moe_layer_idx` lists the blocks (seqssm.model.Block adds the norm and residual around it).

Capacity applies in training mode only. In eval mode every token goes to its expert: with a capacity, whether a
token is dropped depends on the other tokens of the batch (other sequences, later positions), which would break
causality, streaming and step-by-step decoding; in eval the layer is per-token, so those stay exact.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqssm.config import ModelConfig


class Expert(nn.Module):
    """One feed-forward expert: fc2(gelu(fc1(x))); `fc2` is rescaled by the model's residual init."""

    def __init__(self, d: int, f: int, bias: bool):
        super().__init__()
        self.fc1 = nn.Linear(d, f, bias=bias)
        self.fc2 = nn.Linear(f, d, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def switch_aux_loss(probs: torch.Tensor, expert_index: torch.Tensor) -> torch.Tensor:
    """probs (T, E), expert_index (T,) -> E · Σ_i f_i P_i (Switch Transformer eq. 4-6); 1.0 when perfectly balanced."""
    n_experts = probs.shape[-1]
    f = F.one_hot(expert_index, n_experts).to(probs.dtype).mean(0)  # fraction routed (no gradient: argmax)
    P = probs.mean(0)  # mean router probability (carries the gradient)
    return n_experts * (f * P).sum()


class SwitchMoE(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int = 0):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_experts, self.capacity_factor = cfg.moe.n_experts, float(cfg.moe.capacity_factor)
        self.router = nn.Linear(cfg.d_model, cfg.moe.n_experts, bias=False)
        self.experts = nn.ModuleList(Expert(cfg.d_model, cfg.resolved_moe_d_ff, cfg.bias) for _ in range(cfg.moe.n_experts))
        self.last_aux_loss: torch.Tensor | None = None
        self.last_expert_index: torch.Tensor | None = None  # (b, l) expert chosen for each token
        self.last_dropped = 0
        self.last_tokens = 0
        self.dropped_total = 0
        self.tokens_total = 0

    def reset_counts(self) -> None:
        self.dropped_total = self.tokens_total = 0

    def capacity(self, n_tokens: int) -> int:
        """Tokens one expert accepts (training mode); eval mode accepts all."""
        if not self.training:
            return n_tokens
        return math.ceil(self.capacity_factor * n_tokens / self.n_experts)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (b, l, d) -> (b, l, d); dropped tokens give 0. Sets last_aux_loss, last_dropped, counters."""
        if hidden.dim() != 3:
            raise ValueError(f"hidden: expected shape (b, l, d), got {tuple(hidden.shape)}")
        b, l, d = hidden.shape
        x = hidden.reshape(b * l, d)
        wide = torch.promote_types(x.dtype, torch.float32)
        probs = torch.softmax(self.router(x).to(wide), dim=-1)  # (T, E), router in float32 (section 2.4)
        gate, index = probs.max(dim=-1)  # (T,)
        one_hot = F.one_hot(index, self.n_experts)  # (T, E)
        rank = (one_hot.cumsum(0) * one_hot).sum(-1)  # 1-based position of each token in its expert's queue
        kept = rank <= self.capacity(b * l)

        out = torch.zeros_like(x)
        for i, expert in enumerate(self.experts):
            rows = ((index == i) & kept).nonzero(as_tuple=True)[0]
            if rows.numel():
                y = expert(x[rows]) * gate[rows, None].to(x.dtype)
                out = out.index_copy(0, rows, y)

        self.last_aux_loss = switch_aux_loss(probs, index)
        self.last_expert_index = index.view(b, l)
        self.last_dropped = int((~kept).sum())
        self.last_tokens = b * l
        self.dropped_total += self.last_dropped
        self.tokens_total += b * l
        return out.view(b, l, d)


__all__ = ["Expert", "SwitchMoE", "switch_aux_loss"]

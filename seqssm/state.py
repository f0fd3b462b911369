"""Recurrent state carried between segments (streaming, truncated BPTT) and between decoding steps.

Dimension names: b batch · e inner width (expand·d) · n state size · k conv width · h heads · p head dim ·
t cached positions.

A Mamba layer's whole memory of the past is its short-convolution window and its SSM state (paper section 3.3:
the recurrent mode), so a model's state is O(1) in the sequence length. An attention layer's memory is its KV
cache, which grows with the context (KVCache). Every state class has detach / clone / to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class LayerState:
    """State of one SSM mixer: conv_state (b, channels, k-1) in the model dtype and ssm_state in float32 (or 64).

    Mamba: conv (b, e, k-1), ssm (b, e, n). Mamba-2: conv (b, e + 2·g·n, k-1), ssm (b, h, p, n).
    """

    conv_state: torch.Tensor
    ssm_state: torch.Tensor

    def detach(self) -> "LayerState":
        return LayerState(self.conv_state.detach(), self.ssm_state.detach())

    def clone(self) -> "LayerState":
        return LayerState(self.conv_state.clone(), self.ssm_state.clone())

    def to(self, device) -> "LayerState":
        return LayerState(self.conv_state.to(device), self.ssm_state.to(device))


@dataclass
class KVCache:
    """State of one attention mixer: keys and values of the past (b, h, t, p), already rotated by RoPE, and
    `offset`, the absolute position of the next token (t == offset unless the cache was built by hand)."""

    keys: torch.Tensor
    values: torch.Tensor
    offset: int = 0

    def detach(self) -> "KVCache":
        return KVCache(self.keys.detach(), self.values.detach(), self.offset)

    def clone(self) -> "KVCache":
        return KVCache(self.keys.clone(), self.values.clone(), self.offset)

    def to(self, device) -> "KVCache":
        return KVCache(self.keys.to(device), self.values.to(device), self.offset)


@dataclass
class ModelState:
    """One state per layer, in layer order (a layer type may define its own state class with the same methods)."""

    layers: list[Any] = field(default_factory=list)

    def detach(self) -> "ModelState":
        """Cut the graph between segments (truncated backpropagation through time)."""
        return ModelState([s.detach() for s in self.layers])

    def clone(self) -> "ModelState":
        return ModelState([s.clone() for s in self.layers])

    def to(self, device) -> "ModelState":
        return ModelState([s.to(device) for s in self.layers])

    def __len__(self) -> int:
        return len(self.layers)


__all__ = ["KVCache", "LayerState", "ModelState"]

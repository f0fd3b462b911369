"""Recurrent state carried between segments (streaming, truncated BPTT) and between decoding steps.

Dimension names: b batch · e inner width (expand·d) · n state size · k conv width.

A Mamba layer's whole memory of the past is its short-convolution window and its SSM state (paper section 3.3:
the recurrent mode), so a model's state is O(1) in the sequence length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class LayerState:
    """State of one Mamba mixer: conv_state (b, e, k-1) in the model dtype, ssm_state (b, e, n) float32 (or 64)."""

    conv_state: torch.Tensor
    ssm_state: torch.Tensor

    def detach(self) -> "LayerState":
        return LayerState(self.conv_state.detach(), self.ssm_state.detach())

    def clone(self) -> "LayerState":
        return LayerState(self.conv_state.clone(), self.ssm_state.clone())

    def to(self, device) -> "LayerState":
        return LayerState(self.conv_state.to(device), self.ssm_state.to(device))


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


__all__ = ["LayerState", "ModelState"]

"""Bidirectional Mamba mixer ("bimamba"): a forward Mamba plus a Mamba over the flipped sequence, outputs added.

Dimension names used in this file:
    b batch · l sequence length · d model width

    y = Mamba_f(x) + flip(Mamba_b(flip(x)))          (flip reverses the l axis)

This is the BiMamba idea of Vision Mamba (Zhu et al. 2024) and Caduceus (Schiff et al. 2024): position t sees
the whole sequence, which suits classification of a whole sequence (DNA, audio clips) rather than generation.
With cfg.ssm.bidirectional_weight_tie the two directions share one Mamba (Caduceus ties them to halve the
parameters); otherwise each has its own.

No recurrent mode: the backward direction needs the end of the sequence before the first output, so there is no
O(1) `step` and no carried state; asking for either raises a ConfigError that says so.

Padding: the backward direction reads a right-padded row from the padding end, so padding tokens do reach real
positions. Pooling still ignores the padded positions themselves; batches of equal-length rows avoid the effect.
"""

from __future__ import annotations

import torch
from torch import nn

from seqssm.config import ConfigError, ModelConfig
from seqssm.layers.mamba import Mamba
from seqssm.registry import LAYERS

_NO_STATE = ("layer 'bimamba' is bidirectional: it has no recurrent state or step (the backward direction needs "
             "the whole sequence); use layer 'mamba' to stream segments or generate")


@LAYERS.register("bimamba")
class BiMamba(nn.Module):
    """Sequence mixer with the Mamba mixer interface, minus streaming: forward(x) -> (y, None)."""

    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        self.cfg, self.layer_idx = cfg, layer_idx
        self.tied = bool(cfg.ssm.bidirectional_weight_tie)
        self.fwd = Mamba(cfg, layer_idx)
        # Tied: no second module at all (not the same module under two names), so the state dict has one copy.
        self.bwd = None if self.tied else Mamba(cfg, layer_idx)

    causal = False  # the reversed scan reads later positions: padding must be marked with seq_idx

    def forward(self, hidden: torch.Tensor, state=None, return_state: bool = False, seq_idx=None):
        """hidden (b, l, d) -> (out (b, l, d), None). With seq_idx (b, l) each direction restarts at every change
        of it, so right padding given its own id never reaches the real tokens through the reversed scan."""
        if state is not None or return_state:
            raise ConfigError(_NO_STATE)
        backward = self.fwd if self.tied else self.bwd
        y_f, _ = self.fwd(hidden, seq_idx=seq_idx)
        y_b, _ = backward(hidden.flip(1), seq_idx=None if seq_idx is None else seq_idx.flip(1))
        return y_f + y_b.flip(1), None

    def allocate_state(self, batch_size: int, device=None, dtype=None):
        raise ConfigError(_NO_STATE)

    def step(self, hidden: torch.Tensor, state) -> torch.Tensor:
        raise ConfigError(_NO_STATE)


__all__ = ["BiMamba"]

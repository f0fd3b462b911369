"""Reverse-complement equivariance by parameter sharing (RCPS; Caduceus-PS, Schiff et al. 2024, section 3.2).

Dimension names used in this file:
    b batch · l sequence length · d model width (even) · h = d / 2, the width of each half

The hidden state has two halves of h channels. The first half reads the sequence as given; the second half holds
the reverse-complement strand, stored flipped in length and in channels. Every module applies ONE set of weights
to both halves:

    RC(h)           = flip over l and over d of h         (so RC swaps the halves and flips each)
    embedding(x)    = [E x_t ; flip_d(E comp(x_t))]                         comp: the token complement map
    mixer(h)        = [M(h_a) ; flip_ld(M(flip_ld(h_b)))]                  one M of width h for both halves
    norm(h)         = [N(h_a) ; flip_d(N(flip_d(h_b)))]

so that model(RC(x)) = RC(model(x)) exactly, with RC(x) the reverse complement of the token sequence; a pooled
head that adds the first half to the channel-flipped second half is RC-invariant. The second half scans the
sequence from its end, so the model is bidirectional: fit for classification (and masked LM), not for causal
generation (the config refuses head "lm"). Padding: the second half reads a right-padded row from its padding
end, so the classifier marks padding with seq_idx (as for bimamba) and the scans restart at the real tokens.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from seqssm.config import ModelConfig, StrandConfig
from seqssm.layers.norm import make_norm
from seqssm.registry import LAYERS


def half_config(cfg: ModelConfig) -> ModelConfig:
    """The config of the shared inner modules: half the width, no RC wrapping of its own."""
    return dataclasses.replace(cfg, d_model=cfg.d_model // 2, strand=StrandConfig())


def flip_ld(x: torch.Tensor) -> torch.Tensor:
    return x.flip(1).flip(-1)


class RCPSEmbedding(nn.Module):
    """Token ids (b, l) -> (b, l, d): [E x ; flip_d(E comp(x))] with one table E of width d / 2."""

    def __init__(self, vocab_size: int, d_model: int, complement: list[int]):
        super().__init__()
        if not complement:
            from seqssm.config import ConfigError

            raise ConfigError("rc_complement: empty; rc_equivariant needs the token complement map (the DNA "
                              "pipeline fills it from its tokenizer)")
        self.weight_half = nn.Embedding(vocab_size, d_model // 2)
        self.register_buffer("complement", torch.tensor(complement, dtype=torch.long), persistent=False)

    @property
    def weight(self) -> torch.Tensor:  # the dtype / device of the model, for code that asks the embedding
        return self.weight_half.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.weight_half(ids), self.weight_half(self.complement[ids]).flip(-1)], dim=-1)


class RCNorm(nn.Module):
    """One norm of width d / 2 applied to both halves: [N(h_a) ; flip_d(N(flip_d(h_b)))]."""

    def __init__(self, d_model: int, eps: float, rms_norm: bool):
        super().__init__()
        self.inner = make_norm(d_model // 2, eps, rms_norm)

    @property
    def weight(self) -> torch.Tensor:
        return self.inner.weight

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a, b = h.chunk(2, dim=-1)
        return torch.cat([self.inner(a), self.inner(b.flip(-1)).flip(-1)], dim=-1)


class RCPSMixer(nn.Module):
    """One mixer of width d / 2 (any registered layer) over both halves; the second half runs on the
    reverse-complement strand, i.e. flipped in length and channels, then flipped back."""

    causal = False  # the second half reads later positions: padding must be marked with seq_idx

    def __init__(self, cfg: ModelConfig, layer_idx: int, inner_name: str):
        super().__init__()
        self.inner = LAYERS.get(inner_name)(half_config(cfg), layer_idx)

    def forward(self, hidden: torch.Tensor, state=None, return_state: bool = False, seq_idx=None):
        if state is not None or return_state:
            from seqssm.config import ConfigError

            raise ConfigError("rc_equivariant: the reverse-complement half reads the sequence from its end, so there "
                              "is no recurrent state or step")
        a, b = hidden.chunk(2, dim=-1)
        kw = {} if seq_idx is None else {"seq_idx": seq_idx}
        y_a, _ = self.inner(a, **kw)
        kw_b = {} if seq_idx is None else {"seq_idx": seq_idx.flip(1)}
        y_b, _ = self.inner(flip_ld(b), **kw_b)
        return torch.cat([y_a, flip_ld(y_b)], dim=-1), None


def invariant_features(pooled: torch.Tensor) -> torch.Tensor:
    """(b, d) pooled hidden -> (b, d / 2) features unchanged by reverse-complementing the input."""
    a, b = pooled.chunk(2, dim=-1)
    return a + b.flip(-1)


__all__ = ["RCNorm", "RCPSEmbedding", "RCPSMixer", "flip_ld", "half_config", "invariant_features"]

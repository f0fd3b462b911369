"""Causal multi-head self-attention, the mixer of hybrid stacks; position by RoPE, ALiBi or nothing (NoPE).

Dimension names used in this file:
    b batch · l sequence length (new tokens) · d model width · h heads · p head dim (d / h) · t cached positions

    q, k, v = qkv_proj(u) split into h heads of width p       (Vaswani et al. 2017, section 3.2.2)
    q, k    = RoPE(q, pos), RoPE(k, pos)                       (Su et al. 2021, RoFormer, section 3.4.2 eq. 34)
    y       = softmax(q kᵀ / sqrt(p) + bias + causal mask) v   (scaled dot-product attention, eq. 1)
    out     = out_proj(concat heads)

`attention.position` picks how position enters: `rope` rotates q and k (above; bias 0); `alibi` leaves them as they
are and adds bias[h, i, j] = -m_h (i - j), slopes m_h = 2^(-8 (h + 1) / H) (Press et al. 2022, "Train Short, Test
Long", section 3; their geometric sequence, used here for any H); `none` (NoPE, Kazemnejad et al. 2023) adds
nothing: the causal mask is the only source of order.

Hybrid Mamba-attention stacks (Dao & Gu 2024, section 9.2.3; mamba_ssm's `attn_layer_idx`) place this mixer at a few
block indices. Its memory of the past is a KV cache (seqssm.state.KVCache): the keys (rotated under RoPE), the values of
every earlier position plus the absolute position offset, so a forward over a segment with the cache of the
previous segments equals one pass over the whole sequence, and a decoding step costs O(context), as attention does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqssm.config import ConfigError, ModelConfig
from seqssm.registry import LAYERS
from seqssm.state import KVCache


def rope_angles(positions: torch.Tensor, head_dim: int, base: float, dtype: torch.dtype):
    """positions (l,) -> cos, sin (l, p): θ_i = base^(-2i/p) for i < p/2, each used for a pair of dims (eq. 34)."""
    wide = torch.promote_types(dtype, torch.float32)
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=wide) / head_dim)  # (p/2,)
    angles = positions.to(wide)[:, None] * inv_freq[None, :]  # (l, p/2)
    angles = torch.cat([angles, angles], dim=-1)  # (l, p): dims i and i + p/2 rotate together
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (b, h, l, p) rotated pairwise: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin), the "rotate half" layout."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos + rotated * sin


@LAYERS.register("attention")
class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int = 0):
        super().__init__()
        self.cfg, self.layer_idx = cfg, layer_idx
        d, h = cfg.d_model, cfg.resolved_n_heads
        if d % h:
            raise ConfigError(f"n_heads: {h} heads do not divide d_model {d}")
        if cfg.attention.position == "rope" and (d // h) % 2:
            raise ConfigError(f"n_heads: head dim d_model / n_heads = {d // h} must be even for RoPE")
        self.n_heads, self.head_dim, self.rope_base = h, d // h, float(cfg.attention.rope_base)
        self.position = cfg.attention.position
        self.qkv_proj = nn.Linear(d, 3 * d, bias=cfg.bias)
        self.out_proj = nn.Linear(d, d, bias=cfg.bias)

    def _heads(self, hidden: torch.Tensor):
        """hidden (b, l, d) -> q, k, v (b, h, l, p)."""
        b, l, _ = hidden.shape
        qkv = self.qkv_proj(hidden).view(b, l, 3, self.n_heads, self.head_dim)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)

    def _rotate(self, q, k, offset: int):
        if self.position != "rope":
            return q, k
        l = q.shape[2]
        pos = torch.arange(offset, offset + l, device=q.device)
        cos, sin = rope_angles(pos, self.head_dim, self.rope_base, q.dtype)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin)

    def alibi_slopes(self) -> torch.Tensor:
        """(h,) m_h = 2^(-8 (h + 1) / H): the heads' distance penalties, steepest first (Press et al. 2022, sec. 3)."""
        return 2.0 ** (-8.0 * torch.arange(1, self.n_heads + 1, dtype=torch.float64) / self.n_heads)

    def _mask(self, allowed: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor, dtype: torch.dtype):
        """allowed (…, l, t) bool -> the attn_mask: `allowed` itself, or for ALiBi a float bias (…, h, l, t) with
        -m_h (q_pos - k_pos) where allowed and -inf elsewhere."""
        if self.position != "alibi":
            return allowed
        distance = (q_pos[:, None] - k_pos[None, :]).to(torch.float64)  # (l, t)
        bias = (-self.alibi_slopes().to(q_pos.device)[:, None, None] * distance).to(dtype)  # (h, l, t)
        return bias.masked_fill(~allowed.unsqueeze(-3), float("-inf"))

    def _merge(self, y: torch.Tensor) -> torch.Tensor:
        b, _, l, _ = y.shape
        return self.out_proj(y.transpose(1, 2).reshape(b, l, self.n_heads * self.head_dim))

    def _check_cache(self, state, b: int) -> None:
        if not isinstance(state, KVCache):
            raise ValueError(f"state: attention layer {self.layer_idx} expects a KVCache, got {type(state).__name__}")
        want = (b, self.n_heads, state.keys.shape[2], self.head_dim)
        if tuple(state.keys.shape) != want or tuple(state.values.shape) != want:
            raise ValueError(f"state: KV cache of shape {tuple(state.keys.shape)}, expected (b, h, t, p) = {want}")

    # ---------------------------------------------------------------- parallel (training / prefill) mode
    causal = True

    def forward(self, hidden: torch.Tensor, state: KVCache | None = None, return_state: bool = False,
                seq_idx: torch.Tensor | None = None):
        """hidden (b, l, d) -> (out (b, l, d), new KVCache or None); `state` holds the previous segments.

        seq_idx (b, l): packed sequences; a query attends only to keys of its own sequence (positions are not
        restarted: RoPE scores depend on relative positions only)."""
        if seq_idx is not None and state is not None:
            raise ValueError("seq_idx: packed sequences cannot be combined with a KV cache")
        q, k, v = self._heads(hidden)
        offset = 0
        if state is not None:
            self._check_cache(state, hidden.shape[0])
            offset = state.offset
        q, k = self._rotate(q, k, offset)
        if state is not None and state.keys.shape[2] > 0:
            k_all = torch.cat([state.keys.to(k.dtype), k], dim=2)
            v_all = torch.cat([state.values.to(v.dtype), v], dim=2)
            # query i (absolute position offset + i) sees cached keys and new keys j <= i
            t, l = state.keys.shape[2], q.shape[2]
            mask = torch.ones(l, t + l, dtype=torch.bool, device=q.device).tril(diagonal=t)
            pos = torch.arange(offset - t, offset + l, device=q.device)
            y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=self._mask(mask, pos[t:], pos, q.dtype))
        elif seq_idx is not None:
            k_all, v_all = k, v
            l = q.shape[2]
            causal = torch.ones(l, l, dtype=torch.bool, device=q.device).tril()
            same = seq_idx[:, None, :, None] == seq_idx[:, None, None, :]  # (b, 1, l, l)
            pos = torch.arange(l, device=q.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=self._mask(same & causal, pos, pos, q.dtype))
        elif self.position == "alibi":
            k_all, v_all = k, v
            l = q.shape[2]
            pos = torch.arange(offset, offset + l, device=q.device)
            causal = torch.ones(l, l, dtype=torch.bool, device=q.device).tril()
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=self._mask(causal, pos, pos, q.dtype))
        else:
            k_all, v_all = k, v
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        new_state = None
        if state is not None or return_state:
            new_state = KVCache(k_all, v_all, offset + q.shape[2])
        return self._merge(y), new_state

    # ---------------------------------------------------------------- recurrent (decoding) mode
    def allocate_state(self, batch_size: int, device=None, dtype=None) -> KVCache:
        """An empty cache (b, h, 0, p) at position 0."""
        dtype = dtype or self.qkv_proj.weight.dtype
        device = device or self.qkv_proj.weight.device
        empty = torch.zeros(batch_size, self.n_heads, 0, self.head_dim, device=device, dtype=dtype)
        return KVCache(empty, empty.clone(), 0)

    def step(self, hidden: torch.Tensor, state: KVCache) -> torch.Tensor:
        """One token: hidden (b, d) -> (b, d); the token's key and value are appended to `state` (O(t) work)."""
        self._check_cache(state, hidden.shape[0])
        q, k, v = self._heads(hidden.unsqueeze(1))  # (b, h, 1, p)
        q, k = self._rotate(q, k, state.offset)
        state.keys = torch.cat([state.keys.to(k.dtype), k], dim=2)
        state.values = torch.cat([state.values.to(v.dtype), v], dim=2)
        state.offset += 1
        mask = None  # the newest token sees every position; ALiBi still weighs them by distance
        if self.position == "alibi":
            t = state.keys.shape[2]
            everything = torch.ones(1, t, dtype=torch.bool, device=q.device)
            mask = self._mask(everything, torch.tensor([state.offset - 1], device=q.device),
                              torch.arange(state.offset - t, state.offset, device=q.device), q.dtype)
        y = F.scaled_dot_product_attention(q, state.keys, state.values, attn_mask=mask)
        return self._merge(y)[:, 0]


__all__ = ["Attention", "apply_rope", "rope_angles"]

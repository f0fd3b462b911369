"""Mamba-2's SSD recurrence, the executable spec: a plain loop over time (Dao & Gu 2024, arXiv 2405.21060).

Dimension names used in this file:
    b batch · l sequence length · h heads · p head dim · n state size · g groups of B/C (h divisible by g)

The state space dual (SSD) layer restricts Mamba's A to a scalar times identity per head (section 3, eq. 1 with
A_t = a_t I). Per head, with a_t = exp(Δ_t A) and the head's group of B and C:

    h_t = exp(Δ_t A) · h_{t-1} + Δ_t · x_t ⊗ B_t        state (p, n); h_{-1} = initial_state or 0
    y_t = h_t C_t + D · x_t                              readout (p,), plus the skip connection

which is section 6's linear (recurrent) mode. The h heads share B and C in g groups: head i uses group
i // (h / g) (section 7.2, grouped-value heads). This file computes in float64 for float64 inputs
and in float32 otherwise, one step per t, slow on purpose; the chunked backend is tested against it.
"""

from __future__ import annotations

import torch


def heads_of_groups(X: torch.Tensor, h: int) -> torch.Tensor:
    """(..., g, n) -> (..., h, n): head i reads group i // (h / g)."""
    return X.repeat_interleave(h // X.shape[-2], dim=-2)


def ssd_reference(x, dt, A, B, C, D=None, initial_state=None, return_final_state=False):
    """x (b, l, h, p), dt (b, l, h) (positive), A (h,), B, C (b, l, g, n), D (h,) or None,
    initial_state (b, h, p, n) or None -> y (b, l, h, p) in x's dtype [, final state (b, h, p, n) wide]."""
    dtype_in = x.dtype
    wide = torch.float64 if x.dtype == torch.float64 else torch.float32
    x, dt, A, B, C = (t.to(wide) for t in (x, dt, A, B, C))
    b, l, h, p = x.shape
    n = B.shape[-1]
    Bh, Ch = heads_of_groups(B, h), heads_of_groups(C, h)  # (b, l, h, n)
    state = x.new_zeros(b, h, p, n) if initial_state is None else initial_state.to(wide).clone()
    ys = []
    for t in range(l):
        decay = torch.exp(dt[:, t] * A)  # (b, h)
        state = decay[:, :, None, None] * state + (dt[:, t, :, None] * x[:, t])[..., None] * Bh[:, t, :, None, :]
        ys.append((state * Ch[:, t, :, None, :]).sum(-1))  # (b, h, p)
    y = torch.stack(ys, dim=1) if l > 0 else x.new_zeros(b, 0, h, p)
    if D is not None:
        y = y + D.to(wide)[:, None] * x
    out = y.to(dtype_in)
    return (out, state) if return_final_state else out


def ssd_state_update_reference(state, x, dt, A, B, C, D=None):
    """One decoding step: state (b, h, p, n) updated in place; x (b, h, p), dt (b, h), B, C (b, g, n) -> (b, h, p)."""
    wide = state.dtype
    h = x.shape[1]
    x_w, dt_w = x.to(wide), dt.to(wide)
    Bh, Ch = heads_of_groups(B.to(wide), h), heads_of_groups(C.to(wide), h)  # (b, h, n)
    decay = torch.exp(dt_w * A.to(wide))  # (b, h)
    new = decay[:, :, None, None] * state + (dt_w[:, :, None] * x_w)[..., None] * Bh[:, :, None, :]
    state.copy_(new)
    y = (new * Ch[:, :, None, :]).sum(-1)
    if D is not None:
        y = y + D.to(wide)[:, None] * x_w
    return y.to(x.dtype)

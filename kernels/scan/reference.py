"""Selective scan, the executable spec: a plain loop over time (Mamba, Gu & Dao 2023, Algorithm 2 / eq. 2a-2b).

Dimension names used in this file:
    b batch · d channels (the block's inner width) · l sequence length · n state size · g groups of B/C

For every channel d and time t, with Δ = softplus(delta + delta_bias) (or delta + delta_bias when softplus is off):

    Ā_t = exp(Δ_t · A)                          zero-order-hold discretisation of A (paper eq. 4)
    h_t = Ā_t ⊙ h_{t-1} + Δ_t · B_t · u_t        the recurrence (paper eq. 2a), h_{-1} = initial_state or 0
    y_t = <C_t, h_t> + D · u_t                   readout (eq. 2b) plus the skip connection
    out_t = y_t · silu(z_t)                      the gate of the Mamba block, when z is given

B and C come in three layouts: (d, n) time-invariant, (b, n, l) shared by all channels, or (b, g, n, l) shared by
the d/g channels of each group. Discretising B as Δ·B (Euler) rather than exactly follows the paper's section 3.5.

This file is the spec the fast backends are tested against: it computes in float64 when the inputs are float64
and in float32 otherwise, never materialises the (b, d, l, n) tensor, and is slow on purpose (one step per t).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def expand_bc(X: torch.Tensor, t: int, dim: int) -> torch.Tensor:
    """The (b or 1, d, n) slice of B or C at time t, whatever its layout."""
    if X.dim() == 2:  # (d, n): time-invariant
        return X.unsqueeze(0)
    if X.dim() == 3:  # (b, n, l): one B for all channels
        return X[:, :, t].unsqueeze(1)
    # (b, g, n, l): channel c belongs to group c // (d / g)
    Xt = X[:, :, :, t]  # (b, g, n)
    return Xt.repeat_interleave(dim // X.shape[1], dim=1)  # (b, d, n)


def selective_scan_reference(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    initial_state: torch.Tensor | None = None,
    return_last_state: bool = False,
    seq_idx: torch.Tensor | None = None,
):
    """out (b, d, l) in u's dtype; with return_last_state also h_{l-1} (b, d, n) in the compute dtype.

    seq_idx (b, l): packed sequences; where it changes, the state restarts from zero (no leak across them).
    """
    dtype_in = u.dtype
    wide = torch.float64 if u.dtype == torch.float64 else torch.float32
    u, delta, A, B, C = (x.to(wide) for x in (u, delta, A, B, C))
    b, d, l = u.shape
    n = A.shape[-1]

    if delta_bias is not None:
        delta = delta + delta_bias.to(wide)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)

    h = u.new_zeros(b, d, n) if initial_state is None else initial_state.to(wide).clone()
    ys = []
    for t in range(l):
        dt = delta[:, :, t, None]  # (b, d, 1)
        if seq_idx is not None and t > 0:
            h = h * (seq_idx[:, t] == seq_idx[:, t - 1]).to(h.dtype)[:, None, None]
        h = torch.exp(dt * A) * h + dt * expand_bc(B, t, d) * u[:, :, t, None]
        ys.append((h * expand_bc(C, t, d)).sum(-1))  # (b, d)
    y = torch.stack(ys, dim=-1) if l > 0 else u.new_zeros(b, d, 0)

    if D is not None:
        y = y + D.to(wide)[:, None] * u
    if z is not None:
        y = y * F.silu(z.to(wide))
    out = y.to(dtype_in)
    return (out, h) if return_last_state else out


def selective_state_update_reference(
    state: torch.Tensor,
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    dt_bias: torch.Tensor | None = None,
    dt_softplus: bool = False,
) -> torch.Tensor:
    """One recurrent step for decoding; updates `state` (b, d, n) in place and returns out (b, d).

    x, dt, z: (b, d); B, C: (b, n) or (b, g, n). Exactly one iteration of the loop above.
    """
    wide = state.dtype
    dt = dt.to(wide)
    if dt_bias is not None:
        dt = dt + dt_bias.to(wide)
    if dt_softplus:
        dt = F.softplus(dt)
    d = x.shape[1]
    if B.dim() == 3:
        B = B.repeat_interleave(d // B.shape[1], dim=1)
        C = C.repeat_interleave(d // C.shape[1], dim=1)
    else:
        B, C = B.unsqueeze(1), C.unsqueeze(1)
    xw = x.to(wide)
    state.mul_(torch.exp(dt[..., None] * A.to(wide))).add_(dt[..., None] * B.to(wide) * xw[..., None])
    y = (state * C.to(wide)).sum(-1)
    if D is not None:
        y = y + D.to(wide) * xw
    if z is not None:
        y = y * F.silu(z.to(wide))
    return y.to(x.dtype)

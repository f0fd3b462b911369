"""Mamba-2's SSD in its chunked (block-decomposition) form, pure PyTorch (Dao & Gu 2024, section 6, Listing 1).

Dimension names used in this file:
    b batch · l sequence length · h heads · p head dim · n state size · g groups of B/C
    c number of chunks · s chunk length (Q in the paper) · i, j positions inside a chunk

The sequence is cut into chunks of s steps (zero-padded at the end: dt = 0 and x = 0 there, so a padded step
neither decays nor writes the state). With a_t = Δ_t A and its running sum inside the chunk cum_i:

    1. diagonal blocks (section 6.1):   y_i  = Σ_{j<=i} (C_i·B_j) exp(cum_i - cum_j) Δ_j x_j      quadratic in s
    2. chunk states (6.2, "right"):     S_c  = Σ_j exp(cum_last - cum_j) Δ_j x_j ⊗ B_j               (h, p, n)
    3. state passing (6.3, "center"):   H_c  = exp(total a of chunk c-1) H_{c-1} + S_{c-1}, H_0 = initial state
    4. state to output (6.4, "left"):   y_i += exp(cum_i) · H_c C_i

Every exponent is a sum of a_t <= 0 over a segment, never a difference of two large cumulative sums that could
cancel: the segment sums of step 1 are cumsums of a lower-triangular masked copy (`segment_sum`), and steps 2-4
use differences cum_last - cum_j and cum_i inside one chunk, which are <= 0 and bounded by one chunk's decay.
The whole function is differentiable with ordinary autograd (no custom backward); memory is O(b·l·h·(s + p·n/s)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK = 64  # s: the paper's block size Q; the quadratic step costs O(s) per position


def segment_sum(a: torch.Tensor) -> torch.Tensor:
    """a (..., s) -> (..., s, s) with [i, j] = a_{j+1} + ... + a_i for i >= j (0 on the diagonal), -inf for i < j.

    Built as a cumulative sum of a masked copy, so no difference of two running sums is taken (stable).
    """
    s = a.shape[-1]
    rep = a[..., :, None].expand(*a.shape, s)  # [i, j] = a_i
    strictly_lower = torch.ones(s, s, dtype=torch.bool, device=a.device).tril(-1)
    seg = rep.masked_fill(~strictly_lower, 0.0).cumsum(dim=-2)  # [i, j] = Σ_{j<k<=i} a_k
    lower = torch.ones(s, s, dtype=torch.bool, device=a.device).tril(0)
    return seg.masked_fill(~lower, float("-inf"))


def ssd_chunked(x, dt, A, B, C, D=None, initial_state=None, return_final_state=False, chunk_size: int = CHUNK):
    """Same arguments and results as ssd_reference; computes in float32 (float64 for float64 inputs)."""
    dtype_in = x.dtype
    wide = torch.float64 if x.dtype == torch.float64 else torch.float32
    x_w, dt, A, B, C = (t.to(wide) for t in (x, dt, A, B, C))
    b, l, h, p = x_w.shape
    g, n = B.shape[-2], B.shape[-1]
    s = max(1, min(chunk_size, l))
    pad = (-l) % s
    if pad:
        x_p, dt_p = F.pad(x_w, (0, 0, 0, 0, 0, pad)), F.pad(dt, (0, 0, 0, pad))
        B_p, C_p = F.pad(B, (0, 0, 0, 0, 0, pad)), F.pad(C, (0, 0, 0, 0, 0, pad))
    else:
        x_p, dt_p, B_p, C_p = x_w, dt, B, C
    c = (l + pad) // s
    hg = h // g  # heads per group
    xd = (x_p * dt_p[..., None]).view(b, c, s, g, hg, p)  # Δ_j x_j
    Bc, Cc = B_p.view(b, c, s, g, n), C_p.view(b, c, s, g, n)
    a = (dt_p * A).view(b, c, s, g, hg).permute(0, 3, 4, 1, 2)  # (b, g, hg, c, s), a_t = Δ_t A <= 0
    cum = a.cumsum(dim=-1)

    # 1. diagonal blocks: masked "attention" (C_i·B_j) L_ij inside each chunk, L = exp(segment sums)
    L = torch.exp(segment_sum(a))  # (b, g, hg, c, s, s)
    CB = torch.einsum("bcign,bcjgn->bgcij", Cc, Bc)  # (b, g, c, s, s)
    y = torch.einsum("bgcij,bgkcij,bcjgkp->bcigkp", CB, L, xd)

    # 2. the state each chunk writes, decayed to the chunk's end
    decay_to_end = torch.exp(cum[..., -1:] - cum)  # (b, g, hg, c, s), exponents <= 0
    chunk_states = torch.einsum("bcjgn,bgkcj,bcjgkp->bcgkpn", Bc, decay_to_end, xd)  # (b, c, g, hg, p, n)

    # 3. pass states across chunks: H_0 = initial state, H_c = exp(Σ a over chunk c-1) H_{c-1} + S_{c-1}
    chunk_decay = torch.exp(cum[..., -1]).permute(0, 3, 1, 2)  # (b, c, g, hg)
    if initial_state is None:
        H = x_w.new_zeros(b, g, hg, p, n)
    else:
        H = initial_state.to(wide).view(b, g, hg, p, n)
    starts = []
    for k in range(c):  # c = l / s steps on (b, h, p, n) tensors: cheap next to the quadratic step
        starts.append(H)
        H = chunk_decay[:, k, :, :, None, None] * H + chunk_states[:, k]
    H_start = torch.stack(starts, dim=1)  # (b, c, g, hg, p, n)

    # 4. contribution of the state entering the chunk, decayed to position i
    decay_from_start = torch.exp(cum)  # (b, g, hg, c, s)
    y = y + torch.einsum("bcign,bcgkpn,bgkci->bcigkp", Cc, H_start, decay_from_start)

    y = y.reshape(b, c * s, h, p)[:, :l]
    if D is not None:
        y = y + D.to(wide)[:, None] * x_w
    out = y.to(dtype_in)
    return (out, H.reshape(b, h, p, n)) if return_final_state else out

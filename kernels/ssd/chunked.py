"""Mamba-2's SSD in its chunked (block-decomposition) form, pure PyTorch (Dao & Gu 2024, section 6, Listing 1).

Dimension names used in this file:
    b batch · l sequence length · h heads · p head dim · n state size · g groups of B/C · k heads in a group
    c number of chunks · s chunk length (Q in the paper) · i, j positions inside a chunk · z chunk boundaries

The sequence is cut into chunks of s steps (zero-padded at the end: dt = 0 and x = 0 there, so a padded step
neither decays nor writes the state). With a_t = Δ_t A and its running sum inside the chunk cum_i:

    1. diagonal blocks (section 6.1):   y_i  = Σ_{j<=i} (C_i·B_j) exp(cum_i - cum_j) Δ_j x_j      quadratic in s
    2. chunk states (6.2, "right"):     S_c  = Σ_j exp(cum_last - cum_j) Δ_j x_j ⊗ B_j               (h, p, n)
    3. state passing (6.3, "center"):   H_c  = exp(total a of chunk c-1) H_{c-1} + S_{c-1}, H_0 = initial state
    4. state to output (6.4, "left"):   y_i += exp(cum_i) · H_c C_i

Every exponent is a sum of a_t <= 0 over a segment, never a difference of two large cumulative sums that could
cancel: the segment sums of step 1 and 3 are cumsums of a lower-triangular masked copy (`segment_sum`), and steps
2 and 4 use differences cum_last - cum_j and cum_i inside one chunk, which are <= 0 and bounded by one chunk's decay.

Memory traffic (why the sequence is also cut into blocks). Steps 1-4 materialise several (s, s) tensors per
chunk and head: a few hundred bytes per token each, so a whole 256K-token sequence makes tensors of 100+ MB that
every step reads and writes from DRAM, and autograd keeps them all for backward. Here the sequence is cut into
blocks of BLOCK tokens (a whole number of chunks); steps 1-4 run on one block at a time, whose tensors fit in the
CPU's cache, the state carried from block to block. Backward (`_BlockedSSD`) walks the blocks in reverse: it
recomputes one block's graph from its saved inputs and entry state, back-propagates the block's output gradient
and the gradient arriving at its exit state, and hands the entry state's gradient to the block before (exact
segmented backprop; the chunk-level state passing of step 3 is a (c+1) x (c+1) matrix product inside a block).
Time and memory per token are therefore the same at every length; saved for backward: the inputs and one state
(b, h, p, n) per block. A sequence of at most one block runs as one plain autograd graph (no recomputation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

CHUNK = 64  # s: the paper's block size Q; the quadratic step costs O(s) per position
BLOCK = 4096  # tokens per cache-resident block (rounded down to whole chunks); see the module docstring


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


def ssd_block(x, dt, A, B, C, H0, s: int):
    """Steps 1-4 on one stretch of the sequence, everything in one (wide) dtype, no D term.

    x (b, l, h, p), dt (b, l, h), A (h,), B, C (b, l, g, n), H0 (b, h, p, n) -> y (b, l, h, p), final state.
    Time and memory are linear in l (quadratic in l/s for step 3's matrix), so callers keep l to one block.
    """
    b, l, h, p = x.shape
    g, n = B.shape[-2], B.shape[-1]
    s = max(1, min(s, l))
    pad = (-l) % s
    if pad:
        x, dt = F.pad(x, (0, 0, 0, 0, 0, pad)), F.pad(dt, (0, 0, 0, pad))
        B, C = F.pad(B, (0, 0, 0, 0, 0, pad)), F.pad(C, (0, 0, 0, 0, 0, pad))
    c = (l + pad) // s
    k = h // g  # heads per group
    xd = (x * dt[..., None]).view(b, c, s, g, k, p)  # Δ_j x_j
    Bc, Cc = B.reshape(b, c, s, g, n), C.reshape(b, c, s, g, n)
    a = (dt * A).view(b, c, s, g, k).permute(0, 3, 4, 1, 2)  # (b, g, k, c, s), a_t = Δ_t A <= 0
    cum = a.cumsum(dim=-1)

    # 1. diagonal blocks: masked "attention" (C_i·B_j) L_ij inside each chunk, L = exp(segment sums)
    CB = torch.einsum("bcign,bcjgn->bgcij", Cc, Bc)  # (b, g, c, s, s)
    M = CB[:, :, None] * torch.exp(segment_sum(a))  # (b, g, k, c, s, s)
    y = torch.einsum("bgkcij,bcjgkp->bcigkp", M, xd)

    # 2. the state each chunk writes, decayed to the chunk's end
    decay_to_end = torch.exp(cum[..., -1:] - cum).permute(0, 3, 4, 1, 2)  # (b, c, s, g, k), exponents <= 0
    chunk_states = torch.einsum("bcjgkp,bcjgn->bcgkpn", xd * decay_to_end[..., None], Bc)  # (b, c, g, k, p, n)

    # 3. state passing as one matrix product over chunk boundaries z = 0..c: H_z = Σ_{z'<=z} exp(segsum) S'_{z'}
    #    with S'_0 = H0 and S'_{z'} = S_{z'-1}; H_c is the final state
    chunk_a = F.pad(cum[..., -1], (1, 0))  # (b, g, k, c+1): 0, then each chunk's total decay
    passing = torch.exp(segment_sum(chunk_a))  # (b, g, k, c+1, c+1)
    sources = torch.cat([H0.view(b, 1, g, k, p, n), chunk_states], dim=1)  # (b, c+1, g, k, p, n)
    H = torch.einsum("bgkzy,bygkpn->bzgkpn", passing, sources)  # (b, c+1, g, k, p, n)

    # 4. contribution of the state entering each chunk, decayed to position i
    decay_from_start = torch.exp(cum).permute(0, 3, 4, 1, 2)  # (b, c, s, g, k)
    y = y + torch.einsum("bcign,bcgkpn->bcigkp", Cc, H[:, :-1]) * decay_from_start[..., None]
    return y.reshape(b, c * s, h, p)[:, :l], H[:, -1].reshape(b, h, p, n)


def _run_blocks(x, dt, A, B, C, H0, s: int, blk: int):
    """ssd_block over consecutive blocks of `blk` tokens, the state carried -> y, final state, entry states."""
    y = torch.empty_like(x)
    H, entry_states = H0, []
    for t0 in range(0, x.shape[1], blk):
        entry_states.append(H)
        cut = slice(t0, t0 + blk)
        y[:, cut], H = ssd_block(x[:, cut], dt[:, cut], A, B[:, cut], C[:, cut], H, s)
    return y, H, entry_states


class _BlockedSSD(torch.autograd.Function):
    """_run_blocks with a backward that recomputes and back-propagates one block at a time, last block first."""

    @staticmethod
    def forward(ctx, x, dt, A, B, C, H0, s: int, blk: int):
        y, H, entry_states = _run_blocks(x, dt, A, B, C, H0, s, blk)
        ctx.save_for_backward(x, dt, A, B, C, *entry_states)
        ctx.s, ctx.blk = s, blk
        return y, H

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dH):
        x, dt, A, B, C, *entry_states = ctx.saved_tensors
        s, blk = ctx.s, ctx.blk
        grads = [torch.empty_like(t) for t in (x, dt, B, C)]
        dA = torch.zeros_like(A)
        for i in reversed(range(len(entry_states))):
            cut = slice(i * blk, (i + 1) * blk)
            with torch.enable_grad():
                leaves = [t[:, cut].detach().requires_grad_() for t in (x, dt, B, C)]
                A_, H_ = A.detach().requires_grad_(), entry_states[i].detach().requires_grad_()
                y_blk, H_out = ssd_block(leaves[0], leaves[1], A_, leaves[2], leaves[3], H_, s)
                *g_in, g_A, dH = torch.autograd.grad((y_blk, H_out), (*leaves, A_, H_), (dy[:, cut], dH))
            for full, part in zip(grads, g_in):
                full[:, cut] = part
            dA += g_A
        dx, ddt, dB, dC = grads
        return dx, ddt, dA, dB, dC, dH, None, None


def ssd_chunked(x, dt, A, B, C, D=None, initial_state=None, return_final_state=False, chunk_size: int = CHUNK,
                block_size: int = BLOCK):
    """Same arguments and results as ssd_reference; computes in float32 (float64 for float64 inputs).

    chunk_size: s, the chunk length of steps 1-4. block_size: tokens per cache-resident block, rounded down to a
    whole number of chunks (at least one).
    """
    dtype_in = x.dtype
    wide = torch.float64 if x.dtype == torch.float64 else torch.float32
    x_w, dt, A, B, C = (t.to(wide) for t in (x, dt, A, B, C))
    b, l, h, p = x_w.shape
    n = B.shape[-1]
    H0 = x_w.new_zeros(b, h, p, n) if initial_state is None else initial_state.to(wide)
    s = max(1, chunk_size)
    blk = max(s, block_size // s * s)
    if l == 0:
        y, H = x_w.clone(), H0.clone()
    elif l <= blk:  # one block: a plain autograd graph, nothing to recompute
        y, H = ssd_block(x_w, dt, A, B, C, H0, s)
    elif torch.is_grad_enabled() and any(t.requires_grad for t in (x_w, dt, A, B, C, H0)):
        y, H = _BlockedSSD.apply(x_w, dt, A, B, C, H0, s, blk)
    else:
        y, H, _ = _run_blocks(x_w, dt, A, B, C, H0, s, blk)
    if D is not None:
        y = y + D.to(wide)[:, None] * x_w
    out = y.to(dtype_in)
    return (out, H) if return_final_state else out

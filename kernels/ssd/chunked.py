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

No exponent suffers from cancellation: step 1's segment sums are differences of float64 running sums
(`decay_matrix`), step 3's segment sums over chunk totals are cumsums of a lower-triangular masked copy
(`segment_sum`), and steps 2 and 4 use differences cum_last - cum_j and cum_i inside one chunk, which are <= 0
and bounded by one chunk's decay.

Memory traffic (why the sequence is also cut into blocks). Steps 1-4 materialise several (s, s) tensors per
chunk and head: a few hundred bytes per token each, so a whole 256K-token sequence makes tensors of 100+ MB that
every step reads and writes from DRAM, and autograd keeps them all for backward. Here the sequence is cut into
blocks of BLOCK tokens (a whole number of chunks); steps 1-4 run on one block at a time, whose tensors fit in the
CPU's cache, the state carried from block to block.

Backward (`_BlockedSSD`, `_Block.backward`) is written out by hand, steps 4 to 1 in reverse, and walks the blocks
last to first: it recomputes one block's intermediates (`_Block`: Δx, segment sums, C·B, chunk states, the
states H entering each chunk) from its saved inputs and entry state, back-propagates the block's output gradient
and the gradient arriving at its exit state, and hands the entry state's gradient to the block before (exact
segmented backprop). The last block's intermediates are kept from forward, so a sequence of one block recomputes
nothing. Every length runs this one path: time and memory per token are the same at every length (an earlier
version ran one block as a plain autograd graph and longer sequences through autograd recomputation, which made
every length past one block about 1.3x slower per token). Saved for backward: the inputs, one state (b, h, p, n)
per block and one block's intermediates. The gradient of each step, with M = CB ∘ L, L = exp(segment sums):
    y = M Δx + exp(cum) (C H):  ∂Δx += Mᵀ ∂y;  ∂M = ∂y Δxᵀ;  ∂CB = Σ_k ∂M ∘ L;  ∂seg = ∂M ∘ M;
                                ∂(CH) = exp(cum) ∂y
    H = P sources:              ∂P ∘ P = ∂seg of the chunk totals;  ∂sources = Pᵀ ∂H (row 0: the initial state)
    S = Σ_j w_j ⊗ B_j:          ∂w = ∂S B;  ∂B += wᵀ ∂S;  w = Δx exp(cum_last - cum_j)
and segment_sum_backward, reverse_cumsum carry ∂seg and ∂cum back to a = ΔA.
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


def segment_sum_backward(G: torch.Tensor) -> torch.Tensor:
    """The gradient of segment_sum: G (..., s, s), zero above the diagonal -> (..., s) with
    [m] = Σ_{i >= m} Σ_{j < m} G[i, j] (a_m sits in every segment (j, i] with j < m <= i).

    (The shortcut "exclusive cumsum of colsum - rowsum" needs no (s, s) pass but subtracts two large totals:
    5e-5 relative error in dA under strong decay, against 4e-6 here.)"""
    before = G.cumsum(dim=-1) - G  # [i, m] = Σ_{j<m} G[i, j]
    return before.tril_().sum(dim=-2)  # keep i >= m, sum over i


def decay_matrix(a: torch.Tensor) -> torch.Tensor:
    """a (..., s), a_t <= 0 -> (..., s, s) with [i, j] = exp(a_{j+1} + ... + a_i) for i >= j, 0 above the diagonal:
    exp(segment_sum(a)) in three passes over (s, s) instead of five.

    Running sums and their differences are taken in float64: the exponent's absolute error is then about
    1e-16 s max|a| (a few thousand at most), far below the float32 rounding of the result. A float32 running sum
    would not do: at |cum| ~ 2000 its rounding alone is 1e-4, a 1e-4 relative error after exp."""
    c64 = a.to(torch.float64).cumsum(dim=-1)
    d = (c64[..., :, None] - c64[..., None, :]).to(a.dtype)
    return d.clamp_max_(0.0).exp_().tril_()  # above the diagonal d >= 0: clamped, then zeroed


def reverse_cumsum(t: torch.Tensor) -> torch.Tensor:
    """[m] = Σ_{i >= m} t[i] along the last dimension (the gradient of cumsum)."""
    return t.sum(dim=-1, keepdim=True) - t.cumsum(dim=-1) + t


class _Block:
    """The intermediates of steps 1-3 on one stretch of the sequence, shared by the forward and its recomputation
    in backward. x (b, l, h, p), dt (b, l, h), A (h,), B, C (b, l, g, n), H0 (b, h, p, n), all in one wide dtype;
    l is zero-padded to a whole number c of chunks of s (dt = 0, x = 0 there: no decay, no write).

    Inside a block every tensor is head-major, so that each product is a plain batched matmul over (b, g, k, c)
    with contiguous operands (strided operands sent torch's bmm to a path 2x slower): x-like (b, g, k, c, s, p);
    B, C (b, g, c, s, n); a, cum and decays (b, g, k, c, s); (s, s) matrices (b, g, k, c, i, j); states
    (b, g, k, z, p, n). Inputs are permuted in once per block and results permuted back as views."""

    def __init__(self, x, dt, A, B, C, H0, s: int):
        b, l, h, p = x.shape
        g, n = B.shape[-2], B.shape[-1]
        s = max(1, min(s, l))
        pad = (-l) % s
        if pad:
            x, dt = F.pad(x, (0, 0, 0, 0, 0, pad)), F.pad(dt, (0, 0, 0, pad))
            B, C = F.pad(B, (0, 0, 0, 0, 0, pad)), F.pad(C, (0, 0, 0, 0, 0, pad))
        c, k = (l + pad) // s, h // g  # chunks, heads per group
        self.dims = b, l, h, p, g, n, c, s, k
        self.A = A.view(1, g, k, 1, 1)
        self.x = x.view(b, c, s, g, k, p).permute(0, 3, 4, 1, 2, 5)  # views, head-major
        self.dt = dt.view(b, c, s, g, k).permute(0, 3, 4, 1, 2)
        self.xd = torch.mul(self.x, self.dt[..., None], out=x.new_empty(b, g, k, c, s, p))  # Δ_j x_j
        self.Bh, self.Ch = (t.view(b, c, s, g, n).permute(0, 3, 1, 2, 4).contiguous() for t in (B, C))
        self.a = (self.dt * self.A).contiguous()  # a_t = Δ_t A <= 0
        self.cum = self.a.cumsum(dim=-1)
        # 1. diagonal blocks: M = (C_i·B_j) L_ij inside each chunk, L = exp(segment sums)
        self.CB = self.Ch @ self.Bh.transpose(-1, -2)  # (b, g, c, i, j)
        self.L = decay_matrix(self.a)  # (b, g, k, c, i, j)
        self.M = self.CB[:, :, None] * self.L
        # 2. the state each chunk writes, decayed to the chunk's end (exponents <= 0)
        self.decay_to_end = torch.exp(self.cum[..., -1:] - self.cum)  # (b, g, k, c, s)
        self.w = self.xd * self.decay_to_end[..., None]
        S = self.w.transpose(-1, -2) @ self.Bh[:, :, None]  # (b, g, k, c, p, n)
        # 3. state passing as one matrix product over chunk boundaries z = 0..c: H_z = Σ_{z'<=z} P_zz' S'_z'
        #    with S'_0 = H0, S'_z' = S_{z'-1}; H_c is the final state
        self.P = torch.exp(segment_sum(F.pad(self.cum[..., -1], (1, 0))))  # (b, g, k, c+1, c+1)
        self.sources = torch.cat([H0.reshape(b, g, k, 1, p, n), S], dim=3)  # (b, g, k, c+1, p, n)
        self.H = (self.P @ self.sources.view(b, g, k, c + 1, p * n)).view(b, g, k, c + 1, p, n)
        self.decay_from_start = torch.exp(self.cum)  # (b, g, k, c, s)

    def _state_readout(self):
        """C_i · H_c for every position i of chunk c: (b, g, k, c, s, p)."""
        return self.Ch[:, :, None] @ self.H[:, :, :, :-1].transpose(-1, -2)

    def _to_sequence(self, t):
        """(b, g, k, c, s, ...) head-major -> (b, l, h, ...) view."""
        b, l, h, p, g, n, c, s, k = self.dims
        perm = (0, 3, 4, 1, 2) + tuple(range(5, t.dim()))
        return t.permute(perm).reshape(b, c * s, h, *t.shape[5:])[:, :l]

    def forward(self):
        """-> y (b, l, h, p) without the D term (a strided view), final state (b, h, p, n)."""
        b, l, h, p, g, n, c, s, k = self.dims
        y = self.M @ self.xd
        # 4. the state entering each chunk, read out by C_i and decayed to position i
        y += self._state_readout() * self.decay_from_start[..., None]
        # the final state as its own tensor: a view would keep all of H alive and could not be updated in place
        return self._to_sequence(y), self.H[:, :, :, -1].reshape(b, h, p, n).clone()

    def backward(self, dy, dH_final):
        """Steps 4 to 1 in reverse: dy (b, l, h, p), dH_final (b, h, p, n) -> dx, ddt, dB, dC, dA, dH0."""
        b, l, h, p, g, n, c, s, k = self.dims
        if c * s > l:
            dy = F.pad(dy, (0, 0, 0, 0, 0, c * s - l))
        dy = dy.reshape(b, c, s, g, k, p).permute(0, 3, 4, 1, 2, 5).contiguous()  # head-major
        dH = torch.empty_like(self.H)
        dH[:, :, :, -1] = dH_final.view(b, g, k, p, n)
        # 4. y += (C_i·H_c) exp(cum_i)
        dCH = dy * self.decay_from_start[..., None]
        dcum = (dy * self._state_readout()).sum(-1) * self.decay_from_start  # (b, g, k, c, s)
        dH[:, :, :, :-1] = dCH.transpose(-1, -2) @ self.Ch[:, :, None]
        dC = (dCH @ self.H[:, :, :, :-1]).sum(2)  # (b, g, c, s, n)
        # 3. H = P sources, P = exp(segment_sum(0, chunk totals))
        dH2, src2 = dH.view(b, g, k, c + 1, p * n), self.sources.view(b, g, k, c + 1, p * n)
        dseg = (dH2 @ src2.transpose(-1, -2)) * self.P
        dsources = (self.P.transpose(-1, -2) @ dH2).view(b, g, k, c + 1, p, n)
        dcum_last = segment_sum_backward(dseg)[..., 1:]  # (b, g, k, c)
        dS = dsources[:, :, :, 1:]
        # 2. S = Σ_j w_j ⊗ B_j, w = Δx exp(cum_last - cum_j)
        dw = self.Bh[:, :, None] @ dS.transpose(-1, -2)  # (b, g, k, c, s, p)
        dB = (self.w @ dS).sum(2)  # (b, g, c, s, n)
        dxd = dw * self.decay_to_end[..., None]
        d_exp = (dw * self.w).sum(-1)  # d(cum_last - cum_j), (b, g, k, c, s)
        dcum -= d_exp
        dcum_last += d_exp.sum(-1)
        # 1. y += M xd, M = CB L
        dM = dy @ self.xd.transpose(-1, -2)  # (b, g, k, c, i, j)
        dxd += self.M.transpose(-1, -2) @ dy
        dML = dM.mul_(self.L)  # in place: dM is not needed on its own
        dCB = dML.sum(2)  # (b, g, c, i, j)
        da = segment_sum_backward(dML.mul_(self.CB[:, :, None]))  # d(seg) = dM CB L; (b, g, k, c, s)
        dC += dCB @ self.Bh
        dB += dCB.transpose(-1, -2) @ self.Ch
        # cum = cumsum(a), a = Δ A, xd = Δ x
        dcum[..., -1] += dcum_last
        da += reverse_cumsum(dcum)
        ddt = da * self.A + (dxd * self.x).sum(-1)
        dA = (da * self.dt).sum((0, 3, 4)).reshape(h)
        dx = dxd * self.dt[..., None]
        dB, dC = (t.permute(0, 2, 3, 1, 4).reshape(b, c * s, g, n)[:, :l] for t in (dB, dC))
        return (self._to_sequence(dx), self._to_sequence(ddt[..., None])[..., 0], dB, dC, dA,
                dsources[:, :, :, 0].reshape(b, h, p, n))


def _forward_blocks(x, dt, A, B, C, D, H0, s: int, blk: int):
    """Steps 1-4 (and the D skip) block by block, the state carried -> y, final state, each block's entry state,
    and the last block's intermediates (backward starts there, so it need not recompute that block)."""
    y = torch.empty_like(x)
    H, entry_states = H0, []
    for t0 in range(0, x.shape[1], blk):
        entry_states.append(H)
        cut = slice(t0, t0 + blk)
        block = _Block(x[:, cut], dt[:, cut], A, B[:, cut], C[:, cut], H, s)
        y_blk, H = block.forward()
        if D is not None:
            y_blk += D[:, None] * x[:, cut]
        y[:, cut] = y_blk
    return y, H, entry_states, block


class _BlockedSSD(torch.autograd.Function):
    """_forward_blocks, with a backward that recomputes one block's intermediates at a time, last block first, and
    back-propagates through them by the hand-written _Block.backward."""

    @staticmethod
    def forward(ctx, x, dt, A, B, C, D, H0, s: int, blk: int):
        y, H, entry_states, ctx.last_block = _forward_blocks(x, dt, A, B, C, D, H0, s, blk)
        ctx.save_for_backward(x, dt, A, B, C, D, *entry_states)
        ctx.s, ctx.blk = s, blk
        return y, H

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dH):
        x, dt, A, B, C, D, *entry_states = ctx.saved_tensors
        s, blk = ctx.s, ctx.blk
        dy = dy.to(x.dtype)
        grads = [torch.empty_like(t) for t in (x, dt, B, C)]
        dA = torch.zeros_like(A)
        dD = None if D is None else torch.zeros_like(D)
        for i in reversed(range(len(entry_states))):
            cut = slice(i * blk, (i + 1) * blk)
            if i == len(entry_states) - 1:
                block, ctx.last_block = ctx.last_block, None
            else:
                block = _Block(x[:, cut], dt[:, cut], A, B[:, cut], C[:, cut], entry_states[i], s)
            *g_in, g_A, dH = block.backward(dy[:, cut], dH)
            if D is not None:  # y += D x
                g_in[0] += D[:, None] * dy[:, cut]
                dD += (dy[:, cut] * x[:, cut]).sum((0, 1, 3))
            for full, part in zip(grads, g_in):
                full[:, cut] = part
            dA += g_A
        dx, ddt, dB, dC = grads
        return dx, ddt, dA, dB, dC, dD, dH, None, None


def ssd_chunked(x, dt, A, B, C, D=None, initial_state=None, return_final_state=False, chunk_size: int = CHUNK,
                block_size: int = BLOCK):
    """Same arguments and results as ssd_reference; computes in float32 (float64 for float64 inputs).

    chunk_size: s, the chunk length of steps 1-4. block_size: tokens per cache-resident block, rounded down to a
    whole number of chunks (at least one).
    """
    dtype_in = x.dtype
    wide = torch.float64 if x.dtype == torch.float64 else torch.float32
    x_w, dt, A, B, C = (t.to(wide) for t in (x, dt, A, B, C))
    D = None if D is None else D.to(wide)
    b, l, h, p = x_w.shape
    n = B.shape[-1]
    H0 = x_w.new_zeros(b, h, p, n) if initial_state is None else initial_state.to(wide)
    s = max(1, chunk_size)
    blk = max(s, block_size // s * s)
    if l == 0:
        y, H = x_w.clone(), H0.clone()
    elif torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x_w, dt, A, B, C, D, H0)):
        y, H = _BlockedSSD.apply(x_w, dt, A, B, C, D, H0, s, blk)
    else:
        y, H, _, _ = _forward_blocks(x_w, dt, A, B, C, D, H0, s, blk)
    out = y.to(dtype_in)
    return (out, H) if return_final_state else out

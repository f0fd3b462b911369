"""Selective scan in Triton, the time-parallel design: tiles along L scanned with tl.associative_scan.

Dimension names: b batch · d channels · l length · n state size · g groups of B/C (dg = d/g channels a group) ·
                 k tile (BLOCK_L steps).

Why a second design (docs/kernels.md, "Mamba-1 scan: the two Triton designs"): the sequential design
(triton_kernels.py) loads, at every step, one value per channel for u, Δ and z, L elements apart, so each 32-byte
sector brings one useful value. Here a program owns one batch row and BLOCK_D channels and walks the sequence tile
by tile; a tile loads u, Δ, z (and dout) as (BLOCK_D, BLOCK_L) blocks contiguous along L, and each state index n
reads one row B[n, tile], C[n, tile], also contiguous along L, so the loads coalesce. This is the shape of
mamba_ssm's CUDA kernel: a block of threads over a run of consecutive steps, the states n one after another, a
block-wide scan, a running prefix carried from chunk to chunk.

The recurrence h_t = a_t h_{t-1} + b_t (Mamba eq. 2a; a_t = exp(Δ_t A), b_t = Δ_t u_t B_t) is a composition of
affine maps, so for each n the pairs (a_t, b_t) of a (BLOCK_D, BLOCK_L) tile are combined along L by an associative
scan (Blelloch 1993, section 1.4): (a1, b1) then (a2, b2) is (a1 a2, a2 b1 + b2). The combine only multiplies and
adds; it never divides by a cumulative decay (the "cumsum of b / Πa" form overflows once Πa underflows), so a decay
that underflows, or that a packed sequence start (seq_idx) sets to 0, stays exact. The scan starts each tile from
zero; the state H entering the tile enters as h_t = (Πa)_t H + (scan b)_t, and the tile's last state is the next
tile's H. State and arithmetic are float32 whatever the input dtype. Offsets are 64-bit.

The state entering every tile lives in ckpt (b, d, K + 1, n) (slot K: the last state): the forward writes it, the
next tile of the same program reads it back (a few bytes per tile and n, behind a block barrier), and the backward
recomputes each tile's states from it. Per-(d, n) sums that run over tiles (∂A, ∂B and ∂C of the time-invariant
layout, the running adjoint) are kept the same way in their output buffers.

Backward, tiles from the end (Mamba section 3.3.2, recomputation). Each tile's states are recomputed by the same
scan; the adjoint g_t = ∂loss/∂h_t,
    g_t = C_t dy_t + a_{t+1} g_{t+1},
is a reverse scan of the pairs (a_{t+1}, C_t dy_t), a_{t+1} recomputed from Δ loaded one step ahead (the same cache
lines), and the running adjoint G = g at the tile's first step is carried to the tile before (in gcarry, two slots
used in turn so that no tile reads a slot it writes; in the first tile ∂h_{-1} = a_0 g_0 instead). With a_t h_{t-1} = h_t - b_t (mamba_ssm's backward does the same; no shifted state
is needed):
    ∂u_t = Δ_t Σ_n g_t B_t + D dy_t      ∂Δ_t = u_t Σ_n g_t B_t + Σ_n g_t (h_t - b_t) A
    ∂A  += Σ_t Δ_t g_t (h_t - b_t)        ∂B_t = Σ_d g_t Δ_t u_t       ∂C_t = Σ_d h_t dy_t
B and C come in the strided form of triton_kernels.py ((b, g, n, l); time-invariant (d, n) with flag *_TI). A channel
block never straddles two groups, so a block reads one group's B and C. ∂B_t and ∂C_t of a time-varying layout sum
over the channels of a group: a block sums its own channels and adds the result to a float32 (b, g, n, l) buffer
with an atomic add, as mamba_ssm's backward does. Per-block partial sums (the sequential design's deterministic
way) would be (b, d / BLOCK_D, n, l) float32 here, with BLOCK_D = 1: the (b, d, l, n) tensor twice over. The price
is the order of those float32 additions, which varies from run to run (differences at float32 rounding).
"""

from __future__ import annotations

import triton
import triton.language as tl

from seqssm.kernels.scan.triton_kernels import _softplus


@triton.jit
def _combine(a1, b1, a2, b2):
    """The affine map h -> a1 h + b1 followed by h -> a2 h + b2 (in scan order; with reverse=True the first pair is
    the one later in time). Products and one multiply-add: nothing divides, nothing overflows that the sequential
    recurrence would not."""
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _delta_tile(dt_ptr, off, mask, bias, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """(delta + bias, Δ) as float32 (BLOCK_D, BLOCK_L); Δ is 0 where masked, so a = exp(0) = 1 and b = 0 there and
    the state passes unchanged through the steps past L."""
    pre = tl.load(dt_ptr + off, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        pre += bias[:, None]
    if SOFTPLUS:
        dt = _softplus(pre)
    else:
        dt = pre
    return pre, tl.where(mask, dt, 0.0)


@triton.jit
def _keep_tile(seq_ptr, b, t, L):
    """(BLOCK_L,) 0.0 where a packed sequence starts at step t (seq_idx changes), else 1.0; 1.0 past L."""
    now = tl.load(seq_ptr + b * L + t, mask=t < L, other=0)
    before = tl.load(seq_ptr + b * L + t - 1, mask=(t > 0) & (t < L), other=0)
    return tl.where((t > 0) & (t < L) & (now != before), 0.0, 1.0)


@triton.jit
def _bc_row(ptr, b, grp, n, offs_d, md, t, ml, s_b, s_g, s_n, s_l, TI: tl.constexpr):
    """B or C at state index n for the tile, broadcastable to (BLOCK_D, BLOCK_L): a row (1, BLOCK_L) contiguous
    along L for a time-varying layout, a column (BLOCK_D, 1) for the time-invariant (d, n)."""
    if TI:
        return tl.load(ptr + offs_d * s_g + n * s_n, mask=md, other=0.0).to(tl.float32)[:, None]
    else:
        return tl.load(ptr + b * s_b + grp * s_g + n * s_n + t * s_l, mask=ml, other=0.0).to(tl.float32)[None, :]


@triton.jit
def _col(x, offs_l, j):
    """x[:, j] of a (BLOCK_D, BLOCK_L) tile (a select and a sum: no dynamic indexing of registers)."""
    return tl.sum(tl.where(offs_l[None, :] == j, x, 0.0), axis=1)


@triton.jit
def _pscan_fwd_kernel(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, h0_ptr, seq_ptr,
    out_ptr, ckpt_ptr,
    L, DIM, N, DG_B, DG_C, N_TILES,
    s_b, s_d,  # u, delta, z, out: (b, d, l) with unit stride along l
    s_Bb, s_Bg, s_Bn, s_Bl, s_Cb, s_Cg, s_Cn, s_Cl,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_H0: tl.constexpr, HAS_SEQ: tl.constexpr, B_TI: tl.constexpr, C_TI: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
):
    """One program per (batch row, channel block), every tile in turn; writes out and ckpt (the state entering each
    tile, and the last state in slot N_TILES)."""
    b = tl.program_id(0).to(tl.int64)
    pid_d = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D).to(tl.int64)
    offs_l = tl.arange(0, BLOCK_L).to(tl.int64)
    md = offs_d < DIM
    row = b * s_b + offs_d * s_d
    ck = (b * DIM + offs_d) * (N_TILES + 1) * N  # + k·N + n: state n entering tile k
    Dv = tl.zeros((BLOCK_D,), dtype=tl.float32)
    bias = tl.zeros((BLOCK_D,), dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=md, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=md, other=0.0).to(tl.float32)
    grp_b = (pid_d * BLOCK_D) // DG_B  # one group per block (the launcher picks BLOCK_D dividing every dg)
    grp_c = (pid_d * BLOCK_D) // DG_C

    for n in range(N):  # the state entering tile 0
        if HAS_H0:
            h = tl.load(h0_ptr + (b * DIM + offs_d) * N + n, mask=md, other=0.0).to(tl.float32)
        else:
            h = tl.zeros((BLOCK_D,), dtype=tl.float32)
        tl.store(ckpt_ptr + ck + n, h, mask=md)
    tl.debug_barrier()

    for k in range(N_TILES):
        t = k * BLOCK_L + offs_l
        ml = t < L
        mdl = md[:, None] & ml[None, :]
        off = row[:, None] + t[None, :]
        u = tl.load(u_ptr + off, mask=mdl, other=0.0).to(tl.float32)
        _, dt = _delta_tile(dt_ptr, off, mdl, bias, HAS_BIAS, SOFTPLUS)
        dtu = dt * u
        if HAS_SEQ:
            keep = _keep_tile(seq_ptr, b, t, L)[None, :]
        y = tl.zeros((BLOCK_D, BLOCK_L), dtype=tl.float32)
        for n in range(N):
            A_n = tl.load(A_ptr + offs_d * N + n, mask=md, other=0.0)[:, None]
            B_n = _bc_row(B_ptr, b, grp_b, n, offs_d, md, t, ml, s_Bb, s_Bg, s_Bn, s_Bl, B_TI)
            C_n = _bc_row(C_ptr, b, grp_c, n, offs_d, md, t, ml, s_Cb, s_Cg, s_Cn, s_Cl, C_TI)
            a = tl.exp(dt * A_n)  # ZOH Ā (paper eq. 4); Euler B̄ = Δ B below (section 3.5)
            if HAS_SEQ:
                a = a * keep
            pa, pb = tl.associative_scan((a, dtu * B_n), axis=1, combine_fn=_combine)
            h_in = tl.load(ckpt_ptr + ck + k * N + n, mask=md, other=0.0)
            hs = pa * h_in[:, None] + pb  # h_t of the tile's steps for this n
            y += hs * C_n
            # steps past L kept the state, so the last column is the state after the tile (or after step L - 1)
            tl.store(ckpt_ptr + ck + (k + 1) * N + n, _col(hs, offs_l, BLOCK_L - 1), mask=md)
        if HAS_D:
            y += Dv[:, None] * u
        if HAS_Z:
            zt = tl.load(z_ptr + off, mask=mdl, other=0.0).to(tl.float32)
            y = y * zt * tl.sigmoid(zt)
        tl.store(out_ptr + off, y.to(out_ptr.dtype.element_ty), mask=mdl)
        tl.debug_barrier()  # the next tile reads the states just stored, possibly in other threads


@triton.jit
def _pscan_bwd_kernel(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, ckpt_ptr, dout_ptr, dhlast_ptr, seq_ptr, gc_ptr,
    du_ptr, ddt_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr, dh0_ptr,
    L, DIM, N, DG_B, DG_C, N_TILES,
    s_b, s_d,
    s_Bb, s_Bg, s_Bn, s_Bl, s_Cb, s_Cg, s_Cn, s_Cl,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_DHLAST: tl.constexpr, HAS_SEQ: tl.constexpr, B_TI: tl.constexpr, C_TI: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
):
    """One program per (batch row, channel block), tiles from the last: recompute the tile's states from ckpt,
    reverse-scan the adjoint, write ∂u, ∂Δ, ∂z per step and ∂B, ∂C per step summed over the block's channels;
    ∂A, ∂D, ∂delta_bias (and ∂B, ∂C when time-invariant) per batch row and channel; ∂h_{-1}."""
    b = tl.program_id(0).to(tl.int64)
    pid_d = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D).to(tl.int64)
    offs_l = tl.arange(0, BLOCK_L).to(tl.int64)
    md = offs_d < DIM
    row = b * s_b + offs_d * s_d
    ck = (b * DIM + offs_d) * (N_TILES + 1) * N
    dn = (b * DIM + offs_d) * N  # + n: per-(b, d, n) buffers (dA, dB/dC time-invariant, dh0)
    gc = (b * DIM + offs_d) * 2 * N  # + slot·N + n: the running adjoint G, (b, d, 2, n)
    Dv = tl.zeros((BLOCK_D,), dtype=tl.float32)
    bias = tl.zeros((BLOCK_D,), dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=md, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=md, other=0.0).to(tl.float32)
    grp_b = (pid_d * BLOCK_D) // DG_B
    grp_c = (pid_d * BLOCK_D) // DG_C
    # + n: rows of ∂B, ∂C (b, g, n, l) float32 for the block's group (time-varying layouts)
    rows_b = (b * (DIM // DG_B) + grp_b) * N
    rows_c = (b * (DIM // DG_C) + grp_c) * N
    zero = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for n in range(N):  # G = ∂loss/∂h after the last step; the sums over tiles start at 0
        if HAS_DHLAST:
            tl.store(gc_ptr + gc + n, tl.load(dhlast_ptr + dn + n, mask=md, other=0.0).to(tl.float32), mask=md)
        else:
            tl.store(gc_ptr + gc + n, zero, mask=md)
        tl.store(dA_ptr + dn + n, zero, mask=md)
        if B_TI:
            tl.store(dB_ptr + dn + n, zero, mask=md)
        if C_TI:
            tl.store(dC_ptr + dn + n, zero, mask=md)
    dD_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    dbias_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    tl.debug_barrier()

    for kk in range(N_TILES):
        k = N_TILES - 1 - kk
        g_in = gc + (kk % 2) * N  # G after this tile; G before it goes to the other slot
        g_out = gc + ((kk + 1) % 2) * N
        t = k * BLOCK_L + offs_l
        ml = t < L
        mdl = md[:, None] & ml[None, :]
        off = row[:, None] + t[None, :]
        # What the loop over n needs stays in registers; u, delta, dout and z are loaded again after it (the same
        # tile, from cache), which keeps the loop's registers below ptxas's limit (see aot_cases).
        _, dt = _delta_tile(dt_ptr, off, mdl, bias, HAS_BIAS, SOFTPLUS)
        dtu = dt * tl.load(u_ptr + off, mask=mdl, other=0.0).to(tl.float32)
        # Δ one step ahead: a_{t+1} couples g_t to g_{t+1}; 1 past L, where the carried G enters as it is
        _, dt1 = _delta_tile(dt_ptr, off + 1, md[:, None] & (t + 1 < L)[None, :], bias, HAS_BIAS, SOFTPLUS)
        if HAS_SEQ:
            keep = _keep_tile(seq_ptr, b, t, L)[None, :]
            keep1 = _keep_tile(seq_ptr, b, t + 1, L)[None, :]
        dy = tl.load(dout_ptr + off, mask=mdl, other=0.0).to(tl.float32)
        if HAS_Z:
            zt = tl.load(z_ptr + off, mask=mdl, other=0.0).to(tl.float32)
            dy = dy * zt * tl.sigmoid(zt)  # ∂loss/∂y before the gate
            y_pre = tl.zeros((BLOCK_D, BLOCK_L), dtype=tl.float32)
        gB = tl.zeros((BLOCK_D, BLOCK_L), dtype=tl.float32)  # Σ_n g B
        wA = tl.zeros((BLOCK_D, BLOCK_L), dtype=tl.float32)  # Σ_n g (h - b) A
        for n in range(N):
            A_v = tl.load(A_ptr + offs_d * N + n, mask=md, other=0.0)
            A_n = A_v[:, None]
            B_n = _bc_row(B_ptr, b, grp_b, n, offs_d, md, t, ml, s_Bb, s_Bg, s_Bn, s_Bl, B_TI)
            C_n = _bc_row(C_ptr, b, grp_c, n, offs_d, md, t, ml, s_Cb, s_Cg, s_Cn, s_Cl, C_TI)
            # 1. the tile's states for this n again, from the state saved at the tile's start
            a = tl.exp(dt * A_n)
            if HAS_SEQ:
                a = a * keep
            bu = dtu * B_n
            pa, pb = tl.associative_scan((a, bu), axis=1, combine_fn=_combine)
            hs = pa * tl.load(ckpt_ptr + ck + k * N + n, mask=md, other=0.0)[:, None] + pb
            if HAS_Z:
                y_pre += hs * C_n
            # 2. the adjoint by a reverse scan, from G after the tile
            a1 = tl.exp(dt1 * A_n)
            if HAS_SEQ:
                a1 = a1 * keep1
            ra, rb = tl.associative_scan((a1, C_n * dy), axis=1, combine_fn=_combine, reverse=True)
            g = ra * tl.load(gc_ptr + g_in + n, mask=md, other=0.0)[:, None] + rb
            G = _col(g, offs_l, 0)
            if k > 0:
                tl.store(gc_ptr + g_out + n, G, mask=md)  # G for the tile before
            else:  # ∂h_{-1} = a_0 g_0 (no sequence starts at t = 0)
                tl.store(dh0_ptr + dn + n, tl.exp(_col(dt, offs_l, 0) * A_v) * G, mask=md)
            g = tl.where(mdl, g, 0.0)  # steps past L hold the carried G: they contribute nothing
            # 3. this n's share of the gradients
            w = g * (hs - bu)  # g_t a_t h_{t-1} = ∂loss/∂(Δ_t A)
            gB += g * B_n
            wA += w * A_n
            tl.store(dA_ptr + dn + n, tl.load(dA_ptr + dn + n, mask=md, other=0.0) + tl.sum(w * dt, axis=1),
                     mask=md)
            if B_TI:
                tl.store(dB_ptr + dn + n, tl.load(dB_ptr + dn + n, mask=md, other=0.0) + tl.sum(g * dtu, axis=1),
                         mask=md)
            else:  # Σ over this block's channels (one group), added to the group's row
                tl.atomic_add(dB_ptr + (rows_b + n) * L + t, tl.sum(g * dtu, axis=0), mask=ml, sem="relaxed")
            if C_TI:
                tl.store(dC_ptr + dn + n, tl.load(dC_ptr + dn + n, mask=md, other=0.0) + tl.sum(hs * dy, axis=1),
                         mask=md)
            else:
                tl.atomic_add(dC_ptr + (rows_c + n) * L + t, tl.sum(hs * dy, axis=0), mask=ml, sem="relaxed")
        # 4. the per-step gradients of the tile
        u = tl.load(u_ptr + off, mask=mdl, other=0.0).to(tl.float32)
        du = gB * dt
        ddt = gB * u + wA
        if HAS_D:
            du += Dv[:, None] * dy
            dD_acc += tl.sum(dy * u, axis=1)
        if SOFTPLUS:
            pre, _ = _delta_tile(dt_ptr, off, mdl, bias, HAS_BIAS, False)
            ddt = ddt * tl.sigmoid(pre)
        if HAS_BIAS:
            dbias_acc += tl.sum(tl.where(mdl, ddt, 0.0), axis=1)
        if HAS_Z:
            if HAS_D:
                y_pre += Dv[:, None] * u
            zt = tl.load(z_ptr + off, mask=mdl, other=0.0).to(tl.float32)
            sig = tl.sigmoid(zt)
            dout = tl.load(dout_ptr + off, mask=mdl, other=0.0).to(tl.float32)
            tl.store(dz_ptr + off, (dout * y_pre * sig * (1.0 + zt * (1.0 - sig))).to(dz_ptr.dtype.element_ty),
                     mask=mdl)
        tl.store(du_ptr + off, du.to(du_ptr.dtype.element_ty), mask=mdl)
        tl.store(ddt_ptr + off, ddt.to(ddt_ptr.dtype.element_ty), mask=mdl)
        tl.debug_barrier()  # the next tile reads G and the sums just stored, possibly in other threads

    if HAS_D:
        tl.store(dD_ptr + b * DIM + offs_d, dD_acc, mask=md)
    if HAS_BIAS:
        tl.store(dbias_ptr + b * DIM + offs_d, dbias_acc, mask=md)

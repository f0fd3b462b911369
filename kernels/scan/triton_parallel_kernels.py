"""Selective scan in Triton, the time-parallel design: tiles along L scanned with tl.associative_scan.

Dimension names: b batch · d channels · l length · n state size · g groups of B/C (dg = d/g channels a group) ·
                 k tile (BLOCK_L steps).

Why a second design (docs/kernels.md, "Mamba-1 scan: the two Triton designs"): the sequential design
(triton_kernels.py) loads, at every step, one value per channel for u, Δ and z, L elements apart, so each 32-byte
sector brings one useful value. Here a program owns one batch row and BLOCK_D channels and walks the sequence tile
by tile; a tile loads u, Δ, z and dout as (BLOCK_D, BLOCK_L) blocks contiguous along L and B, C as (BLOCK_N,
BLOCK_L) blocks, also contiguous along L, so the loads coalesce. This is how mamba_ssm's CUDA kernel reaches
bandwidth (each thread a run of consecutive steps, a block-wide scan, a prefix carried from chunk to chunk).

The recurrence h_t = a_t ⊙ h_{t-1} + b_t (Mamba eq. 2a; a_t = exp(Δ_t A), b_t = Δ_t u_t B_t) is a composition of
affine maps, so for every (d, n) the pairs (a_t, b_t) of a tile are combined with an associative scan
(Blelloch 1993, section 1.4): (a1, b1) then (a2, b2) is (a1 a2, a2 b1 + b2). The combine only multiplies and adds;
it never divides by a cumulative decay (the "cumsum of b / Πa" form overflows once Πa underflows), so a decay that
reaches 0 (a packed sequence starting, seq_idx, multiplies a_t by 0) is exact. The scan starts each tile from zero;
the running state H enters as h_t = (Πa)_t H + (scan b)_t, and the tile's last state becomes the next tile's H.
State and arithmetic are float32 whatever the input dtype. Offsets are 64-bit.

Backward, tiles from the end (Mamba section 3.3.2, recomputation): the forward saved the state at every tile start
(ckpt); the tile's states are recomputed by the same scan, then the adjoint g_t = ∂loss/∂h_t,
    g_t = C_t dy_t + a_{t+1} g_{t+1},
is a reverse scan of the pairs (a_{t+1}, C_t dy_t); a_{t+1} is recomputed from Δ loaded one step ahead (a shifted
load from the same cache lines), and the running adjoint G = g at the tile's first step is carried to the tile
before. With a_t h_{t-1} = h_t - b_t (as mamba_ssm's backward does, no shifted state needed):
    ∂u_t = Δ_t <g_t, B_t> + D dy_t      ∂Δ_t = u_t <g_t, B_t> + <g_t ⊙ (h_t - b_t), A>
    ∂A  += Δ_t g_t ⊙ (h_t - b_t)         ∂B_t = Σ_d g_t Δ_t u_t       ∂C_t = Σ_d h_t dy_t
    ∂h_{-1} = a_0 ⊙ g_0
B and C come in the strided form of triton_kernels.py ((b, g, n, l); time-invariant (d, n) with flag *_TI). A channel
block never straddles two groups, so a block reads one group's B and C; sums over channels are written per block and
summed by the caller (deterministic, no atomics).
"""

from __future__ import annotations

import triton
import triton.language as tl

from seqssm.kernels.scan.triton_kernels import _softplus


@triton.jit
def _combine(a1, b1, a2, b2):
    """The affine map h -> a1 h + b1 followed by h -> a2 h + b2 (in scan order; also for reverse=True, where the
    first pair is the one later in time). Products and one multiply-add: nothing divides, nothing overflows that the
    sequential recurrence would not."""
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _delta_tile(dt_ptr, off, mask, bias, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """(pre-activation delta + bias, Δ) as float32 (BLOCK_D, BLOCK_L); Δ is 0 where masked, so a = exp(0) = 1 and
    b = 0 there and the running state passes through the steps past L unchanged."""
    pre = tl.load(dt_ptr + off, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        pre += bias[:, None]
    if SOFTPLUS:
        dt = _softplus(pre)
    else:
        dt = pre
    return pre, tl.where(mask, dt, 0.0)


@triton.jit
def _keep_tile(seq_ptr, b, t, L, HAS_SEQ: tl.constexpr):
    """(BLOCK_L,) 0.0 where a packed sequence starts at step t (seq_idx changes), else 1.0; 1.0 past L."""
    if HAS_SEQ:
        now = tl.load(seq_ptr + b * L + t, mask=t < L, other=0)
        before = tl.load(seq_ptr + b * L + t - 1, mask=(t > 0) & (t < L), other=0)
        return tl.where((t > 0) & (t < L) & (now != before), 0.0, 1.0)
    else:
        return tl.full(t.shape, 1.0, tl.float32)


@triton.jit
def _bc_tile(ptr, b, grp, offs_n, t, s_b, s_g, s_n, s_l, mask_nl):
    """B or C of a time-varying layout for one tile: (1, BLOCK_N, BLOCK_L), contiguous along L for (b, n, l)."""
    p = ptr + b * s_b + grp * s_g + offs_n[:, None] * s_n + t[None, :] * s_l
    return tl.load(p, mask=mask_nl, other=0.0).to(tl.float32)[None, :, :]


@triton.jit
def _bc_fixed(ptr, offs_d, offs_n, s_g, s_n, mdn):
    """B or C of the time-invariant layout (d, n): (BLOCK_D, BLOCK_N, 1), loaded once per program."""
    return tl.load(ptr + offs_d[:, None] * s_g + offs_n[None, :] * s_n, mask=mdn, other=0.0).to(tl.float32)[:, :, None]


@triton.jit
def _last(x, offs_l, BLOCK_L: tl.constexpr):
    """x[:, :, BLOCK_L - 1] of a (BLOCK_D, BLOCK_N, BLOCK_L) tile (a select and a sum: no dynamic indexing)."""
    return tl.sum(tl.where(offs_l[None, None, :] == BLOCK_L - 1, x, 0.0), axis=2)


@triton.jit
def _first(x, offs_l):
    return tl.sum(tl.where(offs_l[None, None, :] == 0, x, 0.0), axis=2)


@triton.jit
def _pscan_fwd_kernel(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, h0_ptr, seq_ptr,
    out_ptr, hlast_ptr, ckpt_ptr,
    L, DIM, N, DG_B, DG_C, N_TILES,
    s_b, s_d,  # u, delta, z, out: (b, d, l) with unit stride along l
    s_Bb, s_Bg, s_Bn, s_Bl, s_Cb, s_Cg, s_Cn, s_Cl,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_H0: tl.constexpr, HAS_SEQ: tl.constexpr, B_TI: tl.constexpr, C_TI: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr,
):
    """One program per (batch row, channel block): every tile in turn; writes out, the state at each tile start
    (ckpt, (b, d, k, n)) and the last state."""
    b = tl.program_id(0).to(tl.int64)
    pid_d = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D).to(tl.int64)
    offs_n = tl.arange(0, BLOCK_N).to(tl.int64)
    offs_l = tl.arange(0, BLOCK_L).to(tl.int64)
    md = offs_d < DIM
    mn = offs_n < N
    mdn = md[:, None] & mn[None, :]
    dn = offs_d[:, None] * N + offs_n[None, :]
    ck = (b * DIM + offs_d[:, None]) * N_TILES * N + offs_n[None, :]  # + k·N: the state at tile k's start
    row = b * s_b + offs_d * s_d

    A3 = tl.load(A_ptr + dn, mask=mdn, other=0.0).to(tl.float32)[:, :, None]  # masked (d, n): a = 1, b = 0
    Dv = tl.zeros((BLOCK_D,), dtype=tl.float32)
    bias = tl.zeros((BLOCK_D,), dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=md, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=md, other=0.0).to(tl.float32)
    grp_b = (pid_d * BLOCK_D) // DG_B  # one group per block (the launcher picks BLOCK_D dividing every dg)
    grp_c = (pid_d * BLOCK_D) // DG_C
    if B_TI:
        B3 = _bc_fixed(B_ptr, offs_d, offs_n, s_Bg, s_Bn, mdn)
    if C_TI:
        C3 = _bc_fixed(C_ptr, offs_d, offs_n, s_Cg, s_Cn, mdn)
    if HAS_H0:
        h = tl.load(h0_ptr + b * DIM * N + dn, mask=mdn, other=0.0).to(tl.float32)
    else:
        h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)

    for k in range(N_TILES):
        t = k * BLOCK_L + offs_l
        ml = t < L
        mdl = md[:, None] & ml[None, :]
        mnl = mn[:, None] & ml[None, :]
        off = row[:, None] + t[None, :]
        tl.store(ckpt_ptr + ck + k * N, h, mask=mdn)
        u = tl.load(u_ptr + off, mask=mdl, other=0.0).to(tl.float32)
        _, dt = _delta_tile(dt_ptr, off, mdl, bias, HAS_BIAS, SOFTPLUS)
        if not B_TI:
            B3 = _bc_tile(B_ptr, b, grp_b, offs_n, t, s_Bb, s_Bg, s_Bn, s_Bl, mnl)
        if not C_TI:
            C3 = _bc_tile(C_ptr, b, grp_c, offs_n, t, s_Cb, s_Cg, s_Cn, s_Cl, mnl)
        a = tl.exp(dt[:, None, :] * A3)  # ZOH Ā (paper eq. 4), Euler B̄ below (section 3.5)
        if HAS_SEQ:
            a = a * _keep_tile(seq_ptr, b, t, L, HAS_SEQ)[None, None, :]
        bu = (dt * u)[:, None, :] * B3
        pa, pb = tl.associative_scan((a, bu), axis=2, combine_fn=_combine)
        hs = pa * h[:, :, None] + pb  # the states of the tile's steps, (BLOCK_D, BLOCK_N, BLOCK_L)
        y = tl.sum(hs * C3, axis=1)
        if HAS_D:
            y += Dv[:, None] * u
        if HAS_Z:
            zt = tl.load(z_ptr + off, mask=mdl, other=0.0).to(tl.float32)
            y = y * zt * tl.sigmoid(zt)
        tl.store(out_ptr + off, y.to(out_ptr.dtype.element_ty), mask=mdl)
        h = _last(hs, offs_l, BLOCK_L)  # steps past L kept the state: the last column is h at min(L, end) - 1
    tl.store(hlast_ptr + b * DIM * N + dn, h, mask=mdn)


@triton.jit
def _pscan_bwd_kernel(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, ckpt_ptr, dout_ptr, dhlast_ptr, seq_ptr,
    du_ptr, ddt_ptr, dz_ptr, dA_ptr, dBp_ptr, dCp_ptr, dD_ptr, dbias_ptr, dh0_ptr,
    L, DIM, N, DG_B, DG_C, N_TILES, N_DBLK,
    s_b, s_d,
    s_Bb, s_Bg, s_Bn, s_Bl, s_Cb, s_Cg, s_Cn, s_Cl,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_DHLAST: tl.constexpr, HAS_SEQ: tl.constexpr, B_TI: tl.constexpr, C_TI: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr,
):
    """One program per (batch row, channel block), tiles from the last: recompute the tile's states from its
    checkpoint, reverse-scan the adjoint, write ∂u, ∂Δ, ∂z per step and ∂B, ∂C per step summed over the block's
    channels; ∂A, ∂D, ∂delta_bias (and ∂B, ∂C when time-invariant) per batch row; ∂h_{-1}."""
    b = tl.program_id(0).to(tl.int64)
    pid_d = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D).to(tl.int64)
    offs_n = tl.arange(0, BLOCK_N).to(tl.int64)
    offs_l = tl.arange(0, BLOCK_L).to(tl.int64)
    md = offs_d < DIM
    mn = offs_n < N
    mdn = md[:, None] & mn[None, :]
    dn = offs_d[:, None] * N + offs_n[None, :]
    ck = (b * DIM + offs_d[:, None]) * N_TILES * N + offs_n[None, :]
    row = b * s_b + offs_d * s_d
    part = (b * N_DBLK + pid_d) * N + offs_n  # rows of this block's partial sums of ∂B, ∂C: (b, blocks, n, l)

    A = tl.load(A_ptr + dn, mask=mdn, other=0.0).to(tl.float32)
    A3 = A[:, :, None]
    Dv = tl.zeros((BLOCK_D,), dtype=tl.float32)
    bias = tl.zeros((BLOCK_D,), dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=md, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=md, other=0.0).to(tl.float32)
    grp_b = (pid_d * BLOCK_D) // DG_B
    grp_c = (pid_d * BLOCK_D) // DG_C
    if B_TI:
        B3 = _bc_fixed(B_ptr, offs_d, offs_n, s_Bg, s_Bn, mdn)
    if C_TI:
        C3 = _bc_fixed(C_ptr, offs_d, offs_n, s_Cg, s_Cn, mdn)
    if HAS_DHLAST:  # G: ∂loss/∂h at the step after the current tile (dh_last after the last step)
        G = tl.load(dhlast_ptr + b * DIM * N + dn, mask=mdn, other=0.0).to(tl.float32)
    else:
        G = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    dA_acc = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    dB_acc = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    dC_acc = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    dD_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    dbias_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)

    for kk in range(N_TILES):
        k = N_TILES - 1 - kk
        t = k * BLOCK_L + offs_l
        ml = t < L
        mdl = md[:, None] & ml[None, :]
        mnl = mn[:, None] & ml[None, :]
        off = row[:, None] + t[None, :]
        # 1. the tile's states again, from the state saved at its start
        h_start = tl.load(ckpt_ptr + ck + k * N, mask=mdn, other=0.0)
        u = tl.load(u_ptr + off, mask=mdl, other=0.0).to(tl.float32)
        pre, dt = _delta_tile(dt_ptr, off, mdl, bias, HAS_BIAS, SOFTPLUS)
        if not B_TI:
            B3 = _bc_tile(B_ptr, b, grp_b, offs_n, t, s_Bb, s_Bg, s_Bn, s_Bl, mnl)
        if not C_TI:
            C3 = _bc_tile(C_ptr, b, grp_c, offs_n, t, s_Cb, s_Cg, s_Cn, s_Cl, mnl)
        a = tl.exp(dt[:, None, :] * A3)
        if HAS_SEQ:
            a = a * _keep_tile(seq_ptr, b, t, L, HAS_SEQ)[None, None, :]
        bu = (dt * u)[:, None, :] * B3
        pa, pb = tl.associative_scan((a, bu), axis=2, combine_fn=_combine)
        hs = pa * h_start[:, :, None] + pb
        # 2. the gate: ∂z, and dy = ∂loss/∂y before it
        dy = tl.load(dout_ptr + off, mask=mdl, other=0.0).to(tl.float32)
        if HAS_Z:
            zt = tl.load(z_ptr + off, mask=mdl, other=0.0).to(tl.float32)
            sig = tl.sigmoid(zt)
            y_pre = tl.sum(hs * C3, axis=1)
            if HAS_D:
                y_pre += Dv[:, None] * u
            dzt = dy * y_pre * sig * (1.0 + zt * (1.0 - sig))
            tl.store(dz_ptr + off, dzt.to(dz_ptr.dtype.element_ty), mask=mdl)
            dy = dy * zt * sig
        # 3. the adjoint by a reverse scan; a_{t+1} from Δ one step ahead (1 past L: the carry G enters as is)
        t1 = t + 1
        m1 = md[:, None] & (t1 < L)[None, :]
        _, dt1 = _delta_tile(dt_ptr, off + 1, m1, bias, HAS_BIAS, SOFTPLUS)
        a1 = tl.exp(dt1[:, None, :] * A3)
        if HAS_SEQ:
            a1 = a1 * _keep_tile(seq_ptr, b, t1, L, HAS_SEQ)[None, None, :]
        ra, rb = tl.associative_scan((a1, C3 * dy[:, None, :]), axis=2, combine_fn=_combine, reverse=True)
        g = ra * G[:, :, None] + rb
        G = _first(g, offs_l)
        g = tl.where(mdl[:, None, :], g, 0.0)  # steps past L hold the carried G: they contribute nothing
        # 4. the gradients of the tile
        w = g * (hs - bu)  # g_t ⊙ a_t ⊙ h_{t-1}: ∂loss/∂(Δ_t A)
        gB = tl.sum(g * B3, axis=1)
        ddt = gB * u + tl.sum(w * A3, axis=1)
        du = gB * dt
        if HAS_D:
            du += Dv[:, None] * dy
            dD_acc += tl.sum(dy * u, axis=1)
        if SOFTPLUS:
            ddt = ddt * tl.sigmoid(pre)
        if HAS_BIAS:
            dbias_acc += tl.sum(tl.where(mdl, ddt, 0.0), axis=1)
        tl.store(du_ptr + off, du.to(du_ptr.dtype.element_ty), mask=mdl)
        tl.store(ddt_ptr + off, ddt.to(ddt_ptr.dtype.element_ty), mask=mdl)
        dA_acc += tl.sum(w * dt[:, None, :], axis=2)
        dB3 = g * (dt * u)[:, None, :]
        dC3 = hs * dy[:, None, :]
        if B_TI:
            dB_acc += tl.sum(dB3, axis=2)
        else:
            tl.store(dBp_ptr + part[:, None] * L + t[None, :], tl.sum(dB3, axis=0), mask=mnl)
        if C_TI:
            dC_acc += tl.sum(dC3, axis=2)
        else:
            tl.store(dCp_ptr + part[:, None] * L + t[None, :], tl.sum(dC3, axis=0), mask=mnl)

    # ∂h_{-1} = a_0 g_0 (no sequence starts at t = 0)
    dt0 = tl.load(dt_ptr + row, mask=md, other=0.0).to(tl.float32)
    if HAS_BIAS:
        dt0 += bias
    if SOFTPLUS:
        dt0 = _softplus(dt0)
    tl.store(dh0_ptr + b * DIM * N + dn, tl.exp(dt0[:, None] * A) * G, mask=mdn)
    tl.store(dA_ptr + b * DIM * N + dn, dA_acc, mask=mdn)
    if B_TI:
        tl.store(dBp_ptr + b * DIM * N + dn, dB_acc, mask=mdn)
    if C_TI:
        tl.store(dCp_ptr + b * DIM * N + dn, dC_acc, mask=mdn)
    if HAS_D:
        tl.store(dD_ptr + b * DIM + offs_d, dD_acc, mask=md)
    if HAS_BIAS:
        tl.store(dbias_ptr + b * DIM + offs_d, dbias_acc, mask=md)

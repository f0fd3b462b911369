"""Triton kernels of Mamba-2's SSD (see triton_ssd.py for the contract, the launches and the autograd Function).

Dimension names: b batch · l length · h heads · p head dim · n state size · g groups of B/C · c chunks ·
s chunk length · i, j, k positions inside a chunk (i reads, j writes) · e a flattened (p, n) state index.

Per head and chunk, with a_t = Δ_t A, u_t = Δ_t x_t and three decay sums that are never differences of two
running sums (so no cancellation, however strong the decay; Dao & Gu 2024, section 6):

    P_i = Σ_{k<=i} a_k  (tl.cumsum)     Q_j = Σ_{k>j} a_k  (reverse cumsum minus a_j)     T = Σ_k a_k
    seg_ij = Σ_{j<k<=i} a_k  (a cumsum down the columns of a masked (s, s) tile), L_ij = exp(seg_ij) for j <= i

    S_c   = Σ_j e^{Q_j} u_j ⊗ B_j                           chunk state               _chunk_outer_kernel
    H_c+1 = e^{T_c} H_c + S_c, H_0 = initial state          state passing             _state_pass_kernel
    y_i   = Σ_j (C_i·B_j) L_ij u_j + e^{P_i} H_c C_i + D x_i chunk scan               _chunk_scan_kernel

Backward, with G_c = ∂loss/∂H_{c+1} (= ∂loss/∂S_c) and dy the output gradient:
    dHloc_c = Σ_i e^{P_i} dy_i ⊗ C_i                     _chunk_outer_kernel (MODE 1)
    G_c-1 = e^{T_c} G_c + dHloc_c, G_last = ∂/∂final      _state_pass_kernel (REVERSE), ∂H_0 = what is left;
                                                           ∂T_c = e^{T_c} Σ G_c ⊙ H_c
    du_j = Σ_i (C_i·B_j) L_ij dy_i + e^{Q_j} G_c B_j      _chunk_scan_bwd_dx_kernel, with dx = Δ du + D dy,
                                                           ∂Δ (direct) = x·du and ∂a from the three decay sums
    dB_j, dC_i                                             _chunk_scan_bwd_dbc_kernel
∂a_k collects ∂P (reverse cumsum), ∂Q (exclusive cumsum), ∂seg (Σ over i >= k > j of
E_ij = (C_i·B_j) L_ij dy_i·u_j) and ∂T_c; then ∂Δ += A ∂a and ∂A = Σ Δ ∂a (in the launcher).

Every offset is computed in int64: program ids are cast to tl.int64 before any multiplication, and every position
index derives from them, so (position × stride) never wraps at 2^31 elements (mamba_ssm issue #1015: its int32
offsets go wrong past about 61K tokens). tests/kernels/test_triton_ssd.py checks this in the compiled IR.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _dot(a, b, LOWP: tl.constexpr):
    """a @ b with float32 accumulation: bf16 tensor-core products for 16-bit inputs, exact float32 otherwise
    (not tf32, whose 10-bit mantissa would miss the float32 tolerance)."""
    if LOWP:
        return tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16))
    else:
        return tl.dot(a, b, input_precision="ieee")


@triton.jit
def _decays(dt_ptr, A_ptr, b, hh, t, mt, s_dt_b, s_dt_l, s_dt_h):
    """Δ (s,) for positions t of head hh (0 past the end) and a = Δ A."""
    dt = tl.load(dt_ptr + b * s_dt_b + t * s_dt_l + hh * s_dt_h, mask=mt, other=0.0).to(tl.float32)
    return dt, dt * tl.load(A_ptr + hh).to(tl.float32)


@triton.jit
def _decay_matrix(a, BLOCK_S: tl.constexpr):
    """L (s, s): exp(Σ_{j<k<=i} a_k) for j <= i, 0 above the diagonal; the sum is a cumsum down each column of
    the tile [k, j] = a_k (k > j), never a difference of prefix sums."""
    ii = tl.arange(0, BLOCK_S)[:, None]
    jj = tl.arange(0, BLOCK_S)[None, :]
    seg = tl.cumsum(tl.where(ii > jj, a[:, None], 0.0), axis=0)
    return tl.where(ii >= jj, tl.exp(seg), 0.0)


@triton.jit
def _tile(ptr, b, t, mt, col, ncol, mcol, s_b, s_l, s_col, s_e):
    """(s, block) tile: rows are positions t, columns e of the head/group `col` (out-of-range entries 0)."""
    return tl.load(ptr + b * s_b + t[:, None] * s_l + col * s_col + ncol[None, :] * s_e,
                   mask=mt[:, None] & mcol[None, :], other=0.0).to(tl.float32)


@triton.jit
def _cb(B_ptr, C_ptr, b, t, mt, grp, N, s_bb, s_bl, s_bg, s_bn, s_cb, s_cl, s_cg, s_cn,
        BLOCK_S: tl.constexpr, BLOCK_N: tl.constexpr, LOWP: tl.constexpr):
    """C·Bᵀ (s, s) for one chunk, summed over n in blocks of BLOCK_N."""
    cb = tl.zeros((BLOCK_S, BLOCK_S), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        nn = n0 + tl.arange(0, BLOCK_N).to(tl.int64)
        mn = nn < N
        Ct = _tile(C_ptr, b, t, mt, grp, nn, mn, s_cb, s_cl, s_cg, s_cn)
        Bt = _tile(B_ptr, b, t, mt, grp, nn, mn, s_bb, s_bl, s_bg, s_bn)
        cb += _dot(Ct, tl.trans(Bt), LOWP)
    return cb


@triton.jit
def _state_times(S_ptr, V_ptr, b, c, hh, grp, t, mt, pp, mp, N, NC, H, P, s_vb, s_vl, s_vg, s_vn,
                 BLOCK_S: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr, LOWP: tl.constexpr):
    """V S_cᵀ (s, p-block) = Σ_n V[i, n] S_c[p, n], for a state buffer S (b, c, h, p, n) float32 and the group's
    (positions x n) tile V: C H_cᵀ in the scan, B G_cᵀ in its backward."""
    acc = tl.zeros((BLOCK_S, BLOCK_P), dtype=tl.float32)
    base = ((b * NC + c) * H + hh) * P
    for n0 in range(0, N, BLOCK_N):
        nn = n0 + tl.arange(0, BLOCK_N).to(tl.int64)
        mn = nn < N
        Vt = _tile(V_ptr, b, t, mt, grp, nn, mn, s_vb, s_vl, s_vg, s_vn)
        St = tl.load(S_ptr + (base + pp[:, None]) * N + nn[None, :], mask=mp[:, None] & mn[None, :], other=0.0)
        acc += _dot(Vt, tl.trans(St), LOWP)
    return acc


# ------------------------------------------------------------------------------------------------ forward


@triton.jit
def _chunk_outer_kernel(V_ptr, W_ptr, dt_ptr, A_ptr, out_ptr, T_ptr, L, H, P, N, NC, HG,
                        s_vb, s_vl, s_vh, s_vp, s_wb, s_wl, s_wg, s_wn, s_dt_b, s_dt_l, s_dt_h,
                        MODE: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
                        LOWP: tl.constexpr):
    """out[b, c, h] (p, n) = Σ_i w_i V_i ⊗ W_i over chunk c. MODE 0: V = x, W = B, w = e^{Q} Δ (the chunk state
    S_c), and the chunk's total decay T_c goes to T (b, h, c). MODE 1: V = dy, W = C, w = e^{P} (dHloc_c)."""
    c = tl.program_id(0).to(tl.int64)
    bh = tl.program_id(1).to(tl.int64)
    b, hh = bh // H, bh % H
    grp = hh // HG
    n_pblk = tl.cdiv(P, BLOCK_P)
    pid_pn = tl.program_id(2).to(tl.int64)
    pp = (pid_pn % n_pblk) * BLOCK_P + tl.arange(0, BLOCK_P)
    nn = (pid_pn // n_pblk) * BLOCK_N + tl.arange(0, BLOCK_N)
    mp, mn = pp < P, nn < N
    t = c * BLOCK_S + tl.arange(0, BLOCK_S)
    mt = t < L
    dt, a = _decays(dt_ptr, A_ptr, b, hh, t, mt, s_dt_b, s_dt_l, s_dt_h)
    if MODE == 0:
        w = tl.exp(tl.cumsum(a, axis=0, reverse=True) - a) * dt  # e^{Q_j} Δ_j
        if pid_pn == 0:
            tl.store(T_ptr + bh * NC + c, tl.sum(a, axis=0))
    else:
        w = tl.exp(tl.cumsum(a, axis=0))  # e^{P_i}
    Vt = _tile(V_ptr, b, t, mt, hh, pp, mp, s_vb, s_vl, s_vh, s_vp)
    Wt = _tile(W_ptr, b, t, mt, grp, nn, mn, s_wb, s_wl, s_wg, s_wn)
    acc = _dot(tl.trans(Vt * w[:, None]), Wt, LOWP)  # (p, n)
    tl.store(out_ptr + (((b * NC + c) * H + hh) * P + pp[:, None]) * N + nn[None, :], acc,
             mask=mp[:, None] & mn[None, :])


@triton.jit
def _state_pass_kernel(buf_ptr, T_ptr, start_ptr, end_ptr, Hin_ptr, dT_ptr, H, PN, NC,
                       REVERSE: tl.constexpr, HAS_START: tl.constexpr, BLOCK_E: tl.constexpr):
    """The recurrence over chunks, in place. Forward: buf holds S_c and receives H_c (the state entering chunk c);
    cur starts at the initial state (start) and ends as the final state (end). REVERSE: buf holds dHloc_c and
    receives G_c; cur starts at ∂final (start) and ends as ∂initial (end); with Hin (the forward's H_c) it also
    writes this block's part of ∂T_c = e^{T_c} Σ G_c ⊙ H_c into dT (b, h, c, blocks of e)."""
    bh = tl.program_id(0).to(tl.int64)
    pid_e = tl.program_id(1).to(tl.int64)
    ee = pid_e * BLOCK_E + tl.arange(0, BLOCK_E)
    me = ee < PN
    if HAS_START:
        cur = tl.load(start_ptr + bh * PN + ee, mask=me, other=0.0).to(tl.float32)
    else:
        cur = tl.zeros((BLOCK_E,), dtype=tl.float32)
    for step in range(0, NC):
        c = step + tl.zeros((), dtype=tl.int64)  # the chunk index in int64, like every index here
        if REVERSE:
            c = NC - 1 - c
        row = (bh // H * NC + c) * H + bh % H  # (b, c, h) of the (b, c, h, p, n) buffers
        decay = tl.exp(tl.load(T_ptr + bh * NC + c))
        val = tl.load(buf_ptr + row * PN + ee, mask=me, other=0.0)
        tl.store(buf_ptr + row * PN + ee, cur, mask=me)
        if REVERSE:
            Hc = tl.load(Hin_ptr + row * PN + ee, mask=me, other=0.0)
            tl.store(dT_ptr + (bh * NC + c) * tl.num_programs(1) + pid_e, decay * tl.sum(cur * Hc, axis=0))
        cur = decay * cur + val
    tl.store(end_ptr + bh * PN + ee, cur, mask=me)


@triton.jit
def _chunk_scan_kernel(x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, Hin_ptr, y_ptr, L, H, P, N, NC, HG,
                       s_xb, s_xl, s_xh, s_xp, s_dt_b, s_dt_l, s_dt_h,
                       s_bb, s_bl, s_bg, s_bn, s_cb, s_cl, s_cg, s_cn, s_yb, s_yl, s_yh, s_yp,
                       HAS_D: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_P: tl.constexpr,
                       BLOCK_N: tl.constexpr, LOWP: tl.constexpr):
    """y for one chunk and block of p: the masked chunk-local product (C Bᵀ ⊙ L) (Δ x), the entering state's
    e^{P_i} C_i H_cᵀ, and D x."""
    c = tl.program_id(0).to(tl.int64)
    bh = tl.program_id(1).to(tl.int64)
    b, hh = bh // H, bh % H
    grp = hh // HG
    pp = tl.program_id(2).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    mp = pp < P
    t = c * BLOCK_S + tl.arange(0, BLOCK_S)
    mt = t < L
    dt, a = _decays(dt_ptr, A_ptr, b, hh, t, mt, s_dt_b, s_dt_l, s_dt_h)
    M = _cb(B_ptr, C_ptr, b, t, mt, grp, N, s_bb, s_bl, s_bg, s_bn, s_cb, s_cl, s_cg, s_cn,
            BLOCK_S, BLOCK_N, LOWP) * _decay_matrix(a, BLOCK_S) * dt[None, :]
    X = _tile(x_ptr, b, t, mt, hh, pp, mp, s_xb, s_xl, s_xh, s_xp)
    y = _dot(M, X, LOWP)
    y += tl.exp(tl.cumsum(a, axis=0))[:, None] * _state_times(
        Hin_ptr, C_ptr, b, c, hh, grp, t, mt, pp, mp, N, NC, H, P, s_cb, s_cl, s_cg, s_cn,
        BLOCK_S, BLOCK_P, BLOCK_N, LOWP)
    if HAS_D:
        y += tl.load(D_ptr + hh).to(tl.float32) * X
    tl.store(y_ptr + b * s_yb + t[:, None] * s_yl + hh * s_yh + pp[None, :] * s_yp,
             y.to(y_ptr.dtype.element_ty), mask=mt[:, None] & mp[None, :])


# ------------------------------------------------------------------------------------------------ backward


@triton.jit
def _chunk_scan_bwd_dx_kernel(x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, Hin_ptr, G_ptr, dy_ptr,
                              dx_ptr, ddt_ptr, da_ptr, dD_ptr, L, H, P, N, NC, HG,
                              s_xb, s_xl, s_xh, s_xp, s_dt_b, s_dt_l, s_dt_h,
                              s_bb, s_bl, s_bg, s_bn, s_cb, s_cl, s_cg, s_cn, s_yb, s_yl, s_yh, s_yp,
                              HAS_D: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_P: tl.constexpr,
                              BLOCK_N: tl.constexpr, LOWP: tl.constexpr):
    """For one chunk and block of p: dx, and this p-block's parts (summed by the launcher over p-blocks) of the
    direct ∂Δ = x·du, of ∂a (from ∂P, ∂Q and ∂seg) and of ∂D. dy and dx have the strides s_y*."""
    c = tl.program_id(0).to(tl.int64)
    bh = tl.program_id(1).to(tl.int64)
    b, hh = bh // H, bh % H
    grp = hh // HG
    pid_p = tl.program_id(2).to(tl.int64)
    pp = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    mp = pp < P
    t = c * BLOCK_S + tl.arange(0, BLOCK_S)
    mt = t < L
    dt, a = _decays(dt_ptr, A_ptr, b, hh, t, mt, s_dt_b, s_dt_l, s_dt_h)
    M = _cb(B_ptr, C_ptr, b, t, mt, grp, N, s_bb, s_bl, s_bg, s_bn, s_cb, s_cl, s_cg, s_cn,
            BLOCK_S, BLOCK_N, LOWP) * _decay_matrix(a, BLOCK_S)  # (C_i·B_j) L_ij
    X = _tile(x_ptr, b, t, mt, hh, pp, mp, s_xb, s_xl, s_xh, s_xp)
    dY = _tile(dy_ptr, b, t, mt, hh, pp, mp, s_yb, s_yl, s_yh, s_yp)
    # ∂a_k, in the order that keeps the fewest (s, s) tiles alive: ∂seg_ij = E_ij = M_ij dy_i·u_j summed over
    # i >= k > j, then ∂Q_j = u_j·du_state_j (exclusive cumsum) and ∂P_i = dy_i·y_off_i (reverse cumsum)
    E = M * _dot(dY, tl.trans(X), LOWP) * dt[None, :]
    ii = tl.arange(0, BLOCK_S)[:, None]
    kk = tl.arange(0, BLOCK_S)[None, :]
    da = tl.sum(tl.where(ii >= kk, tl.cumsum(E, axis=1) - E, 0.0), axis=0)
    du = _dot(tl.trans(M), dY, LOWP)
    du_state = tl.exp(tl.cumsum(a, axis=0, reverse=True) - a)[:, None] * _state_times(
        G_ptr, B_ptr, b, c, hh, grp, t, mt, pp, mp, N, NC, H, P, s_bb, s_bl, s_bg, s_bn,
        BLOCK_S, BLOCK_P, BLOCK_N, LOWP)
    dQ = tl.sum(X * du_state, axis=1) * dt
    da += tl.cumsum(dQ, axis=0) - dQ
    du += du_state
    row = (pid_p * (tl.num_programs(1)) + bh) * L  # (p-blocks, b*h, l) partial sums
    tl.store(ddt_ptr + row + t, tl.sum(X * du, axis=1), mask=mt)
    dx = dt[:, None] * du
    if HAS_D:
        dx += tl.load(D_ptr + hh).to(tl.float32) * dY
        n_pblk = tl.num_programs(2)
        tl.store(dD_ptr + (bh * NC + c) * n_pblk + pid_p, tl.sum(tl.sum(dY * X, axis=1), axis=0))
    tl.store(dx_ptr + b * s_yb + t[:, None] * s_yl + hh * s_yh + pp[None, :] * s_yp,
             dx.to(dx_ptr.dtype.element_ty), mask=mt[:, None] & mp[None, :])
    y_off = tl.exp(tl.cumsum(a, axis=0))[:, None] * _state_times(
        Hin_ptr, C_ptr, b, c, hh, grp, t, mt, pp, mp, N, NC, H, P, s_cb, s_cl, s_cg, s_cn,
        BLOCK_S, BLOCK_P, BLOCK_N, LOWP)
    dP = tl.sum(dY * y_off, axis=1)
    da += tl.cumsum(dP, axis=0, reverse=True)
    tl.store(da_ptr + row + t, da, mask=mt)


@triton.jit
def _chunk_scan_bwd_dbc_kernel(x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, Hin_ptr, G_ptr, dy_ptr, dB_ptr, dC_ptr,
                               L, H, P, N, NC, HG,
                               s_xb, s_xl, s_xh, s_xp, s_dt_b, s_dt_l, s_dt_h,
                               s_bb, s_bl, s_bg, s_bn, s_cb, s_cl, s_cg, s_cn, s_yb, s_yl, s_yh, s_yp,
                               BLOCK_S: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
                               LOWP: tl.constexpr):
    """For one chunk, head and block of n: this head's dB and dC (b, l, h, n) float32 (the launcher sums the
    heads of a group). ∂(C_i·B_j) = L_ij dy_i·u_j; dC_i += e^{P_i} dy_i H_c; dB_j += e^{Q_j} u_j G_c."""
    c = tl.program_id(0).to(tl.int64)
    bh = tl.program_id(1).to(tl.int64)
    b, hh = bh // H, bh % H
    grp = hh // HG
    nn = tl.program_id(2).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    mn = nn < N
    t = c * BLOCK_S + tl.arange(0, BLOCK_S)
    mt = t < L
    dt, a = _decays(dt_ptr, A_ptr, b, hh, t, mt, s_dt_b, s_dt_l, s_dt_h)
    dyu = tl.zeros((BLOCK_S, BLOCK_S), dtype=tl.float32)  # dy_i·u_j
    dC = tl.zeros((BLOCK_S, BLOCK_N), dtype=tl.float32)
    dB = tl.zeros((BLOCK_S, BLOCK_N), dtype=tl.float32)
    base = ((b * NC + c) * H + hh) * P
    for p0 in range(0, P, BLOCK_P):
        pp = p0 + tl.arange(0, BLOCK_P).to(tl.int64)
        mp = pp < P
        U = _tile(x_ptr, b, t, mt, hh, pp, mp, s_xb, s_xl, s_xh, s_xp) * dt[:, None]
        dY = _tile(dy_ptr, b, t, mt, hh, pp, mp, s_yb, s_yl, s_yh, s_yp)
        dyu += _dot(dY, tl.trans(U), LOWP)
        smask = mp[:, None] & mn[None, :]
        Hc = tl.load(Hin_ptr + (base + pp[:, None]) * N + nn[None, :], mask=smask, other=0.0)
        Gc = tl.load(G_ptr + (base + pp[:, None]) * N + nn[None, :], mask=smask, other=0.0)
        dC += _dot(dY, Hc, LOWP)
        dB += _dot(U, Gc, LOWP)
    dCB = dyu * _decay_matrix(a, BLOCK_S)
    Bt = _tile(B_ptr, b, t, mt, grp, nn, mn, s_bb, s_bl, s_bg, s_bn)
    Ct = _tile(C_ptr, b, t, mt, grp, nn, mn, s_cb, s_cl, s_cg, s_cn)
    dC = dC * tl.exp(tl.cumsum(a, axis=0))[:, None] + _dot(dCB, Bt, LOWP)
    dB = dB * tl.exp(tl.cumsum(a, axis=0, reverse=True) - a)[:, None] + _dot(tl.trans(dCB), Ct, LOWP)
    out = ((b * L + t[:, None]) * H + hh) * N + nn[None, :]
    mask = mt[:, None] & mn[None, :]
    tl.store(dB_ptr + out, dB, mask=mask)
    tl.store(dC_ptr + out, dC, mask=mask)


# ------------------------------------------------------------------------------------------------ decoding


@triton.jit
def _state_update_kernel(state_ptr, x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, y_ptr, H, P, N, HG,
                         s_bb, s_bg, s_bn, s_cb, s_cg, s_cn,
                         HAS_D: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr):
    """One decoding step for a block of p of one head: state (b, h, p, n) float32 in place,
    h <- e^{Δ A} h + Δ x ⊗ B, y = h C + D x, over n in blocks. x, y: (b, h, p) contiguous; dt (b, h)."""
    bh = tl.program_id(0).to(tl.int64)
    b, hh = bh // H, bh % H
    grp = hh // HG
    pp = tl.program_id(1).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    mp = pp < P
    dt = tl.load(dt_ptr + bh).to(tl.float32)
    decay = tl.exp(dt * tl.load(A_ptr + hh).to(tl.float32))
    x = tl.load(x_ptr + bh * P + pp, mask=mp, other=0.0).to(tl.float32)
    y = tl.zeros((BLOCK_P,), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        nn = n0 + tl.arange(0, BLOCK_N).to(tl.int64)
        mn = nn < N
        Bv = tl.load(B_ptr + b * s_bb + grp * s_bg + nn * s_bn, mask=mn, other=0.0).to(tl.float32)
        Cv = tl.load(C_ptr + b * s_cb + grp * s_cg + nn * s_cn, mask=mn, other=0.0).to(tl.float32)
        ptrs = state_ptr + (bh * P + pp[:, None]) * N + nn[None, :]
        smask = mp[:, None] & mn[None, :]
        h = decay * tl.load(ptrs, mask=smask, other=0.0) + (dt * x)[:, None] * Bv[None, :]
        tl.store(ptrs, h, mask=smask)
        y += tl.sum(h * Cv[None, :], axis=1)
    if HAS_D:
        y += tl.load(D_ptr + hh).to(tl.float32) * x
    tl.store(y_ptr + bh * P + pp, y.to(y_ptr.dtype.element_ty), mask=mp)

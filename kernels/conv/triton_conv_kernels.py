"""Triton kernels of the causal depthwise conv1d (see triton_conv.py for the contract and the autograd Function).

Dimension names: b batch · d channels · l length · k kernel width · q input position (q < 0: carried inputs).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _tap_input(x_ptr, state_ptr, seq_ptr, b, offs_d, offs_t, md, q, L, DIM, s_xb, s_xd,
               K: tl.constexpr, HAS_STATE: tl.constexpr, HAS_SEQ: tl.constexpr):
    """(BLOCK_D, BLOCK_L) inputs at positions q = t - (k-1) + j for outputs t: x, the carried state for q < 0, and
    zero where q belongs to another packed sequence than t (carried inputs count as the first sequence's)."""
    in_x = (q >= 0) & (q < L)
    xv = tl.load(x_ptr + b * s_xb + offs_d[:, None] * s_xd + q[None, :],
                 mask=md[:, None] & in_x[None, :], other=0.0).to(tl.float32)
    if HAS_STATE:
        in_s = (q < 0) & (q >= -(K - 1))
        xv += tl.load(state_ptr + (b * DIM + offs_d[:, None]) * (K - 1) + (K - 1 + q)[None, :],
                      mask=md[:, None] & in_s[None, :], other=0.0).to(tl.float32)
    if HAS_SEQ:
        now = tl.load(seq_ptr + b * L + offs_t, mask=offs_t < L, other=-1)
        src = tl.load(seq_ptr + b * L + tl.maximum(q, 0), mask=q < L, other=-2)
        xv = xv * (now == src).to(tl.float32)[None, :]
    return xv


@triton.jit
def _tap_sum(x_ptr, w_ptr, state_ptr, seq_ptr, b, offs_d, offs_t, md, L, DIM, s_xb, s_xd,
             K: tl.constexpr, HAS_STATE: tl.constexpr, HAS_SEQ: tl.constexpr, BLOCK_D: tl.constexpr,
             BLOCK_L: tl.constexpr):
    acc = tl.zeros((BLOCK_D, BLOCK_L), dtype=tl.float32)
    for j in tl.static_range(K):
        w = tl.load(w_ptr + offs_d * K + j, mask=md, other=0.0).to(tl.float32)
        q = offs_t - (K - 1) + j
        acc += w[:, None] * _tap_input(x_ptr, state_ptr, seq_ptr, b, offs_d, offs_t, md, q, L, DIM, s_xb, s_xd,
                                       K, HAS_STATE, HAS_SEQ)
    return acc


@triton.jit
def conv_fwd_kernel(x_ptr, w_ptr, bias_ptr, state_ptr, seq_ptr, out_ptr, L, DIM, s_xb, s_xd,
                    K: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_STATE: tl.constexpr, HAS_SEQ: tl.constexpr,
                    SILU: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    offs_d = tl.program_id(1).to(tl.int64) * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_t = tl.program_id(2).to(tl.int64) * BLOCK_L + tl.arange(0, BLOCK_L)
    md = offs_d < DIM
    acc = _tap_sum(x_ptr, w_ptr, state_ptr, seq_ptr, b, offs_d, offs_t, md, L, DIM, s_xb, s_xd,
                   K, HAS_STATE, HAS_SEQ, BLOCK_D, BLOCK_L)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_d, mask=md, other=0.0).to(tl.float32)[:, None]
    if SILU:
        acc = acc * tl.sigmoid(acc)
    mask = md[:, None] & (offs_t < L)[None, :]
    tl.store(out_ptr + b * s_xb + offs_d[:, None] * s_xd + offs_t[None, :],
             acc.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def conv_bwd_kernel(x_ptr, w_ptr, bias_ptr, state_ptr, seq_ptr, dout_ptr, dpre_ptr, dw_ptr, dbias_ptr,
                    L, DIM, s_xb, s_xd, N_TBLK,
                    K: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_STATE: tl.constexpr, HAS_SEQ: tl.constexpr,
                    SILU: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr):
    """∂pre (into dpre) and this time block's partial sums of ∂weight and ∂bias."""
    b = tl.program_id(0).to(tl.int64)
    offs_d = tl.program_id(1).to(tl.int64) * BLOCK_D + tl.arange(0, BLOCK_D)
    pid_t = tl.program_id(2).to(tl.int64)
    offs_t = pid_t * BLOCK_L + tl.arange(0, BLOCK_L)
    md = offs_d < DIM
    mask = md[:, None] & (offs_t < L)[None, :]
    dpre = tl.load(dout_ptr + b * s_xb + offs_d[:, None] * s_xd + offs_t[None, :], mask=mask,
                   other=0.0).to(tl.float32)
    if SILU:  # silu'(p) = σ(p)(1 + p(1 - σ(p))), at the recomputed pre-activation p
        pre = _tap_sum(x_ptr, w_ptr, state_ptr, seq_ptr, b, offs_d, offs_t, md, L, DIM, s_xb, s_xd,
                       K, HAS_STATE, HAS_SEQ, BLOCK_D, BLOCK_L)
        if HAS_BIAS:
            pre += tl.load(bias_ptr + offs_d, mask=md, other=0.0).to(tl.float32)[:, None]
        sig = tl.sigmoid(pre)
        dpre = dpre * sig * (1.0 + pre * (1.0 - sig))
    tl.store(dpre_ptr + (b * DIM + offs_d[:, None]) * L + offs_t[None, :], dpre, mask=mask)
    part = (b * N_TBLK + pid_t) * DIM + offs_d  # partial sums of this time block, summed by the caller
    for j in tl.static_range(K):
        q = offs_t - (K - 1) + j
        xv = _tap_input(x_ptr, state_ptr, seq_ptr, b, offs_d, offs_t, md, q, L, DIM, s_xb, s_xd,
                        K, HAS_STATE, HAS_SEQ)
        tl.store(dw_ptr + part * K + j, tl.sum(dpre * xv, axis=1), mask=md)
    if HAS_BIAS:
        tl.store(dbias_ptr + part, tl.sum(dpre, axis=1), mask=md)


@triton.jit
def conv_update_kernel(x_ptr, state_ptr, w_ptr, bias_ptr, out_ptr, DIM,
                       K: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr, BLOCK_D: tl.constexpr):
    """One decoding step: out = Σ_j w_j window_j (+ bias, SiLU) over the window (state, x); the state shifts by one."""
    b = tl.program_id(0).to(tl.int64)
    offs_d = tl.program_id(1).to(tl.int64) * BLOCK_D + tl.arange(0, BLOCK_D)
    md = offs_d < DIM
    x = tl.load(x_ptr + b * DIM + offs_d, mask=md, other=0.0).to(tl.float32)
    srow = state_ptr + (b * DIM + offs_d) * (K - 1)
    acc = tl.load(w_ptr + offs_d * K + (K - 1), mask=md, other=0.0).to(tl.float32) * x
    for j in tl.static_range(K - 1):
        s = tl.load(srow + j, mask=md, other=0.0)
        acc += tl.load(w_ptr + offs_d * K + j, mask=md, other=0.0).to(tl.float32) * s.to(tl.float32)
        if j > 0:  # shift left: slot j-1 takes slot j's input
            tl.store(srow + (j - 1), s, mask=md)
    if K > 1:
        tl.store(srow + (K - 2), x.to(state_ptr.dtype.element_ty), mask=md)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_d, mask=md, other=0.0).to(tl.float32)
    if SILU:
        acc = acc * tl.sigmoid(acc)
    tl.store(out_ptr + b * DIM + offs_d, acc.to(out_ptr.dtype.element_ty), mask=md)

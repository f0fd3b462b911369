"""The "triton" backend of the selective scan: launches the kernels of triton_kernels.py in an autograd Function.

Dimension names: b batch · d channels · l length · n state size · g groups of B/C · c checkpoint chunk.

Runs on CUDA tensors, or on CPU tensors under the Triton interpreter (TRITON_INTERPRET=1 set before triton is
first imported), which is how the test suite checks it without a GPU. Memory beyond inputs and outputs: one state
per CHUNK steps (checkpoints), a (b, d, CHUNK, n) scratch buffer in backward, and per-channel-block partial sums.
"""

from __future__ import annotations

import torch

from seqssm.kernels._checks import KernelInputError
from seqssm.kernels._triton import triton_usable

CHUNK = 64  # steps between saved states: backward recomputes at most this many states per program at a time
MAX_STATE = 256  # N beyond this does not fit a program's registers
# Below this many (batch, channel block) programs the forward also splits the length over chunks (three launches,
# inputs read twice) so that one long sequence still fills a GPU; above it one pass per program is cheaper.
PARALLEL_BELOW_PROGRAMS = 512
POISON_OUTPUTS = False  # tests: fill outputs with NaN first, so an element the kernel misses cannot pass


def _out(shape, dtype: torch.dtype, device) -> torch.Tensor:
    """An output buffer the kernel must fill completely."""
    if POISON_OUTPUTS:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _bc_layout(X: torch.Tensor, d: int):
    """(tensor, dg, time_invariant, strides (s_b, s_g, s_n, s_l)) for the kernels' one strided form."""
    if X.dim() == 2:  # (d, n): d groups of one channel, no batch or time stride
        return X, 1, True, (0, X.stride(0), X.stride(1), 0)
    if X.dim() == 3:  # (b, n, l): one group
        return X, d, False, (X.stride(0), 0, X.stride(1), X.stride(2))
    return X, d // X.shape[1], False, (X.stride(0), X.stride(1), X.stride(2), X.stride(3))


def _block_d(d: int, dgs: list[int], cap: int = 32) -> int:
    """Channels per program: a power of two ≤ cap that divides every group size, so no block straddles groups."""
    blk = cap
    while blk > 1 and any(dg % blk for dg in dgs):
        blk //= 2
    return min(blk, triton_next_pow2(d))


def triton_next_pow2(x: int) -> int:
    return 1 << max(0, (x - 1).bit_length())


class _TritonScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, h0, softplus, seq_idx):
        from seqssm.kernels.scan.triton_kernels import _scan_fwd_kernel, _scan_pass_kernel

        b, d, l = u.shape
        n = A.shape[1]
        Bt, dg_b, b_ti, sB = _bc_layout(B, d)
        Ct, dg_c, c_ti, sC = _bc_layout(C, d)
        blk = _block_d(d, [dg for dg, ti in ((dg_b, b_ti), (dg_c, c_ti)) if not ti])
        n_chunks = max(1, -(-l // CHUNK))
        out = _out(u.shape, u.dtype, u.device)
        h_last = torch.empty(b, d, n, dtype=torch.float32, device=u.device)
        ckpt = torch.empty(b, d, n_chunks, n, dtype=torch.float32, device=u.device)
        n_blk = _cdiv(d, blk)
        flags = dict(HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus,
                     HAS_H0=h0 is not None, HAS_SEQ=seq_idx is not None, BLOCK_D=blk, BLOCK_N=triton_next_pow2(n))
        args = [u, delta, A, Bt, Ct, D, z, delta_bias, h0, out, h_last, ckpt, None, None, seq_idx,
                l, d, n, dg_b, dg_c, CHUNK, n_chunks, u.stride(0), u.stride(1), *sB, *sC]
        if n_chunks > 1 and b * n_blk < PARALLEL_BELOW_PROGRAMS:
            # few (batch, channel block) programs for the GPU: split the length over chunks as well
            dt_sum = torch.empty(b, d, n_chunks, dtype=torch.float32, device=u.device)
            keep = torch.empty(b, n_chunks, dtype=torch.float32, device=u.device)
            args[12], args[13] = dt_sum, keep
            _scan_fwd_kernel[(b, n_blk, n_chunks)](*args, PHASE=1, **flags)
            _scan_pass_kernel[(b, n_blk)](A, h0, ckpt, dt_sum, keep, h_last, d, n, n_chunks, HAS_H0=h0 is not None,
                                          HAS_SEQ=seq_idx is not None, BLOCK_D=blk, BLOCK_N=triton_next_pow2(n))
            _scan_fwd_kernel[(b, n_blk, n_chunks)](*args, PHASE=3, **flags)
        else:
            _scan_fwd_kernel[(b, n_blk)](*args, PHASE=0, **flags)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, ckpt, seq_idx)
        ctx.meta = (softplus, blk, n_chunks, h0 is not None)
        return out, h_last

    @staticmethod
    def backward(ctx, dout, dh_last):
        from seqssm.kernels.scan.triton_kernels import _scan_bwd_kernel

        u, delta, A, B, C, D, z, delta_bias, ckpt, seq_idx = ctx.saved_tensors
        softplus, blk, n_chunks, has_h0 = ctx.meta
        b, d, l = u.shape
        n = A.shape[1]
        Bt, dg_b, b_ti, sB = _bc_layout(B, d)
        Ct, dg_c, c_ti, sC = _bc_layout(C, d)
        n_blk = _cdiv(d, blk)
        f32 = dict(dtype=torch.float32, device=u.device)
        dout = torch.zeros_like(u) if dout is None else dout.contiguous()
        du, ddelta = _out(u.shape, u.dtype, u.device), _out(delta.shape, delta.dtype, u.device)
        dz = _out(z.shape, z.dtype, u.device) if z is not None else None
        dA = torch.empty(b, d, n, **f32)
        dBp = _out((b, d, n) if b_ti else (b, n_blk, n, l), torch.float32, u.device)
        dCp = _out((b, d, n) if c_ti else (b, n_blk, n, l), torch.float32, u.device)
        dD = torch.empty(b, d, **f32) if D is not None else None
        dbias = torch.empty(b, d, **f32) if delta_bias is not None else None
        dh0 = torch.empty(b, d, n, **f32)
        scratch = torch.empty(b, d, CHUNK, n, **f32)
        _scan_bwd_kernel[(b, n_blk)](
            u, delta, A, Bt, Ct, D, z, delta_bias, ckpt, dout, dh_last, scratch, seq_idx,
            du, ddelta, dz, dA, dBp, dCp, dD, dbias, dh0,
            l, d, n, dg_b, dg_c, CHUNK, n_chunks, n_blk, u.stride(0), u.stride(1), *sB, *sC,
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus,
            HAS_DHLAST=dh_last is not None, B_TI=b_ti, C_TI=c_ti, HAS_SEQ=seq_idx is not None, BLOCK_D=blk,
            BLOCK_N=triton_next_pow2(n),
        )

        def reduce_bc(part, X, ti):
            if ti:
                return part.sum(0).to(X.dtype)
            g = 1 if X.dim() == 3 else X.shape[1]
            per_group = part.view(b, g, n_blk // g, n, l).sum(2)  # blocks of one group are contiguous
            return per_group.view(X.shape).to(X.dtype)

        return (
            du, ddelta, dA.sum(0).to(A.dtype), reduce_bc(dBp, B, b_ti), reduce_bc(dCp, C, c_ti),
            None if D is None else dD.sum(0).to(D.dtype), dz,
            None if delta_bias is None else dbias.sum(0).to(delta_bias.dtype), dh0 if has_h0 else None, None, None,
        )


# what triton_design="auto" runs: this design until a GPU measurement of both (seqssm bench gpu) says otherwise
AUTO_DESIGN = "sequential"


def selective_scan_triton(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, initial_state=None,
    return_last_state=False, seq_idx=None, design="auto",
):
    """Triton backend; same contract as seqssm.kernels.selective_scan (inputs already validated there).

    design: "sequential" (this file: each program walks time one step at a time), "parallel"
    (triton_parallel.py: tiles along L scanned with tl.associative_scan) or "auto" (AUTO_DESIGN)."""
    ok, why = triton_usable(u.device)
    if not ok:
        raise KernelInputError(f"backend: 'triton' cannot run here: {why}")
    if u.dtype == torch.float64:
        raise KernelInputError("u: dtype float64 is not supported by the triton backend (float32, float16, bfloat16)")
    n = A.shape[1]
    if n > MAX_STATE:
        raise KernelInputError(f"A: state size N = {n} is too large for the triton backend (at most {MAX_STATE})")
    f32 = lambda x: None if x is None else x.to(torch.float32).contiguous()  # noqa: E731
    args = (u.contiguous(), delta.contiguous(), f32(A), B, C, f32(D), None if z is None else z.contiguous(),
            f32(delta_bias), f32(initial_state), bool(delta_softplus),
            None if seq_idx is None else seq_idx.to(torch.int64).contiguous())
    if (AUTO_DESIGN if design == "auto" else design) == "parallel":
        from seqssm.kernels.scan.triton_parallel import _TritonParallelScan

        out, h_last = _TritonParallelScan.apply(*args)
    else:
        out, h_last = _TritonScan.apply(*args)
    return (out, h_last) if return_last_state else out



def selective_state_update_triton(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """Triton decoding step; same contract as seqssm.kernels.selective_state_update (validated there)."""
    from seqssm.kernels.scan.triton_kernels import _state_update_kernel

    b, d, n = state.shape
    if state.dtype != torch.float32 or not state.is_contiguous():
        raise KernelInputError("state: the triton step needs a contiguous float32 state")
    Bg = B if B.dim() == 3 else B.unsqueeze(1)  # (b, g, n)
    Cg = C if C.dim() == 3 else C.unsqueeze(1)
    if Bg.shape[1] != Cg.shape[1]:
        raise KernelInputError("C: the triton step needs B and C with the same number of groups")
    out = torch.empty(b, d, dtype=x.dtype, device=x.device)
    f32 = lambda t: None if t is None else t.to(torch.float32).contiguous()  # noqa: E731
    blk = min(32, triton_next_pow2(d))
    _state_update_kernel[(b, _cdiv(d, blk))](
        state, x.contiguous(), dt.contiguous(), f32(A), Bg, Cg, f32(D), None if z is None else z.contiguous(),
        f32(dt_bias), out, d, n, d // Bg.shape[1], Bg.stride(0), Bg.stride(1), Bg.stride(2),
        Cg.stride(0), Cg.stride(1), Cg.stride(2),
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=dt_bias is not None, SOFTPLUS=bool(dt_softplus),
        BLOCK_D=blk, BLOCK_N=triton_next_pow2(n),
    )
    return out

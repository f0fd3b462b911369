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
# Registers: left to itself ptxas aims at three programs per SM (168 registers a thread) and spills the scan's state
# to local memory; every scan launch allows 255 instead. A (BLOCK_D, BLOCK_N) state tile of at most TILE elements,
# and BLOCK_D at most 16 in a backward whose integer arguments are 64-bit, keep every shipped specialization free of
# spills on sm_80 and sm_90 (tests/kernels/test_aot_compile.py; the table in docs/gpu.md).
MAXNREG = 255
TILE = 512


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


def _block_d(d: int, dgs: list[int], n: int = 1, cap: int = 32) -> int:
    """Channels per program: a power of two ≤ cap (and ≤ TILE / BLOCK_N) that divides every group size, so no
    block straddles groups."""
    blk = min(cap, max(1, TILE // triton_next_pow2(n)))
    while blk > 1 and any(dg % blk for dg in dgs):
        blk //= 2
    return min(blk, triton_next_pow2(d))


def _block_d_for(n: int, wide_ints: bool = False) -> int:
    """The block the launchers pick for a wide layer (d and its group sizes multiples of 32) with state size n."""
    blk = _block_d(1 << 12, [1 << 12], n)
    return min(blk, 16) if wide_ints else blk


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
        blk = _block_d(d, [dg for dg, ti in ((dg_b, b_ti), (dg_c, c_ti)) if not ti], n)
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
            _scan_fwd_kernel[(b, n_blk, n_chunks)](*args, PHASE=1, **flags, maxnreg=MAXNREG)
            _scan_pass_kernel[(b, n_blk)](A, h0, ckpt, dt_sum, keep, h_last, d, n, n_chunks, HAS_H0=h0 is not None,
                                          HAS_SEQ=seq_idx is not None, BLOCK_D=blk, BLOCK_N=triton_next_pow2(n))
            _scan_fwd_kernel[(b, n_blk, n_chunks)](*args, PHASE=3, **flags, maxnreg=MAXNREG)
        else:
            _scan_fwd_kernel[(b, n_blk)](*args, PHASE=0, **flags, maxnreg=MAXNREG)
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
        if max(u.stride(0), *sB, *sC) >= 2**31:  # 64-bit integer arguments: more registers for the addresses
            blk = min(blk, 16)
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
            BLOCK_N=triton_next_pow2(n), maxnreg=MAXNREG,
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
    blk = min(32, max(1, TILE // triton_next_pow2(n)), triton_next_pow2(d))
    _state_update_kernel[(b, _cdiv(d, blk))](
        state, x.contiguous(), dt.contiguous(), f32(A), Bg, Cg, f32(D), None if z is None else z.contiguous(),
        f32(dt_bias), out, d, n, d // Bg.shape[1], Bg.stride(0), Bg.stride(1), Bg.stride(2),
        Cg.stride(0), Cg.stride(1), Cg.stride(2),
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=dt_bias is not None, SOFTPLUS=bool(dt_softplus),
        BLOCK_D=blk, BLOCK_N=triton_next_pow2(n),
    )
    return out


# ------------------------------------------------------------------------------------------ ahead-of-time cases
def aot_cases():
    """The specializations the launches above produce (kernels/_aot.py; compiled for sm_80 and sm_90 by
    tests/kernels/test_aot_compile.py). Inputs u, Δ, z (and their gradients) and B, C in the model dtype; A, D,
    bias, states and partial sums float32 (the launcher casts them). B, C layouts as the layers pass them:
    "model", Mamba's (b, n, l) view of x_proj's (b, l, n) output, so the n stride is 1 (specialized to a constant
    by Triton); "ti", S4D's time-invariant (d, n): one channel per group (DG = 1) and n stride 1. "i64": a launch
    whose b·d·l passes 2^31, so the integer arguments are 64-bit. BLOCK_D as _block_d picks it for N."""
    from seqssm.kernels._aot import make_case
    from seqssm.kernels.scan.triton_kernels import (
        _scan_bwd_kernel, _scan_fwd_kernel, _scan_pass_kernel, _state_update_kernel,
    )

    def bc(layout):
        if layout == "ti":
            return {"DG_B": 1, "DG_C": 1, "s_Bn": 1, "s_Cn": 1}
        return {"s_Bn": 1, "s_Cn": 1}

    def fwd(dtype, phase, layout="model", n=16, h0=False, seq=False, ints="i32", all_flags=True):
        f32 = "*fp32"
        types = {"u_ptr": f"*{dtype}", "dt_ptr": f"*{dtype}", "A_ptr": f32, "B_ptr": f"*{dtype}",
                 "C_ptr": f"*{dtype}", "D_ptr": f32, "z_ptr": f"*{dtype}", "out_ptr": f"*{dtype}",
                 "hlast_ptr": f32, "ckpt_ptr": f32}
        if layout == "ti":
            types |= {"B_ptr": f32, "C_ptr": f32}
        selective = layout != "ti" and all_flags
        if selective:
            types |= {"bias_ptr": f32}
        if h0:
            types["h0_ptr"] = f32
        if seq:
            types["seq_ptr"] = "*i64"
        if phase in (1, 3):
            types |= {"dtsum_ptr": f32, "keep_ptr": f32}
        blk = _block_d_for(n)
        flags = dict(HAS_D=True, HAS_Z=True, HAS_BIAS=selective, SOFTPLUS=selective, HAS_H0=h0, HAS_SEQ=seq,
                     PHASE=phase, BLOCK_D=blk, BLOCK_N=triton_next_pow2(n))
        name = f"scan_fwd-P{phase}-{dtype}-{layout}-D{blk}-N{n}" + "-h0" * h0 + "-seq" * seq + f"-{ints}"
        return make_case(name, _scan_fwd_kernel, types, flags | bc(layout), ints=ints, maxnreg=MAXNREG)

    def bwd(dtype, layout="model", n=16, h0=False, seq=False, dhlast=False, ints="i32"):
        f32 = "*fp32"
        io = f"*{dtype}"
        ti = layout == "ti"
        types = {"u_ptr": io, "dt_ptr": io, "A_ptr": f32, "B_ptr": f32 if ti else io, "C_ptr": f32 if ti else io,
                 "D_ptr": f32, "z_ptr": io, "ckpt_ptr": f32, "dout_ptr": io, "scratch_ptr": f32, "du_ptr": io,
                 "ddt_ptr": io, "dz_ptr": io, "dA_ptr": f32, "dBp_ptr": f32, "dCp_ptr": f32, "dD_ptr": f32,
                 "dh0_ptr": f32}
        if not ti:
            types |= {"bias_ptr": f32, "dbias_ptr": f32}
        if dhlast:
            types["dhlast_ptr"] = f32
        if seq:
            types["seq_ptr"] = "*i64"
        blk = _block_d_for(n, wide_ints=ints == "i64")
        flags = dict(HAS_D=True, HAS_Z=True, HAS_BIAS=not ti, SOFTPLUS=not ti, HAS_DHLAST=dhlast, B_TI=ti, C_TI=ti,
                     HAS_SEQ=seq, BLOCK_D=blk, BLOCK_N=triton_next_pow2(n))
        name = f"scan_bwd-{dtype}-{layout}-D{blk}-N{n}" + "-dhlast" * dhlast + "-seq" * seq + f"-{ints}"
        del h0  # the backward never reads h0: the first checkpoint holds it
        return make_case(name, _scan_bwd_kernel, types, flags | bc(layout), ints=ints, maxnreg=MAXNREG)

    def pass_(h0, seq, n=16):
        types = {"A_ptr": "*fp32", "ckpt_ptr": "*fp32", "dtsum_ptr": "*fp32", "keep_ptr": "*fp32",
                 "hlast_ptr": "*fp32"} | ({"h0_ptr": "*fp32"} if h0 else {})
        blk = _block_d_for(n)
        return make_case(f"scan_pass-D{blk}-N{n}" + "-h0" * h0 + "-seq" * seq, _scan_pass_kernel, types,
                         dict(HAS_H0=h0, HAS_SEQ=seq, BLOCK_D=blk, BLOCK_N=triton_next_pow2(n)))

    def step(dtype, layout="model", n=16):
        io = f"*{dtype}"
        types = {"state_ptr": "*fp32", "x_ptr": io, "dt_ptr": io, "A_ptr": "*fp32", "B_ptr": io, "C_ptr": io,
                 "D_ptr": "*fp32", "z_ptr": io, "out_ptr": io}
        consts = {"s_Bn": 1, "s_Cn": 1}
        selective = layout != "ti"
        if selective:
            types["bias_ptr"] = "*fp32"
        else:  # S4D: B, C (b, e, n) expanded float32 parameters, e groups of one channel
            types |= {"B_ptr": "*fp32", "C_ptr": "*fp32"}
            consts["DG"] = 1
        blk = _block_d_for(n)
        flags = dict(HAS_D=True, HAS_Z=True, HAS_BIAS=selective, SOFTPLUS=selective, BLOCK_D=blk,
                     BLOCK_N=triton_next_pow2(n))
        return make_case(f"scan_step-{dtype}-{layout}-D{blk}-N{n}", _state_update_kernel, types, flags | consts)

    cases = [fwd(dt, 0) for dt in ("fp32", "bf16", "fp16")]
    cases += [fwd("bf16", 0, h0=True, seq=True), fwd("bf16", 1), fwd("bf16", 3, h0=True, seq=True),
              fwd("fp32", 0, layout="ti"), fwd("bf16", 0, ints="i64"), fwd("fp32", 0, n=MAX_STATE, h0=True)]
    cases += [pass_(False, False), pass_(True, True)]
    cases += [bwd(dt) for dt in ("fp32", "bf16", "fp16")]
    cases += [bwd("bf16", seq=True, dhlast=True), bwd("fp32", layout="ti"), bwd("bf16", ints="i64"),
              bwd("fp32", n=MAX_STATE, dhlast=True)]
    cases += [step("fp32"), step("bf16"), step("fp32", layout="ti"), step("fp32", n=MAX_STATE)]
    return cases

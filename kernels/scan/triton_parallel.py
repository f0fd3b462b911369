"""The "parallel" Triton design of the selective scan: launches triton_parallel_kernels.py in an autograd Function.

Dimension names: b batch · d channels · l length · n state size · g groups of B/C · k tile (BLOCK_L steps).

Selected with `selective_scan(..., backend="triton", triton_design="parallel")`; same contract, inputs and outputs
as the sequential design (triton_scan.py), whose layout helpers it shares. Memory beyond inputs and outputs: the
state at every tile start (b, d, l / BLOCK_L, n) float32, written by the forward and read by the backward, and
per-channel-block partial sums of ∂B, ∂C (b, d / BLOCK_D, n, l). Runs on CUDA tensors, or on CPU tensors under the
Triton interpreter (TRITON_INTERPRET=1 before triton is first imported).
"""

from __future__ import annotations

import torch

from seqssm.kernels._aot import AotCase
from seqssm.kernels.scan.triton_scan import _bc_layout, _block_d, _cdiv, _out, triton_next_pow2

# Tile shape: each (BLOCK_D, BLOCK_N, BLOCK_L) float32 tensor of a tile holds about TILE_ELEMENTS values, which at
# NUM_WARPS warps is TILE_ELEMENTS / (32·NUM_WARPS) registers a thread per tensor; the compile check (aot_cases)
# shows what that costs. BLOCK_L is as long as that allows, up to MAX_BLOCK_L (the tests shrink it to cross tiles).
MAX_BLOCK_L = 64
MIN_BLOCK_L = 16
TILE_ELEMENTS = 2048
MAX_BLOCK_D = 8


def tile_config(n: int, dgs: list[int], d: int) -> dict:
    """BLOCK_D, BLOCK_N, BLOCK_L and num_warps for state size n and the group sizes dgs of time-varying B/C."""
    bn = triton_next_pow2(n)
    bl = max(MIN_BLOCK_L, min(MAX_BLOCK_L, TILE_ELEMENTS // bn))
    bd = _block_d(d, dgs, cap=max(1, min(MAX_BLOCK_D, TILE_ELEMENTS // (bn * bl))))
    warps = 8 if bd * bn * bl > TILE_ELEMENTS else 4
    return dict(BLOCK_D=bd, BLOCK_N=bn, BLOCK_L=bl, num_warps=warps)


class _TritonParallelScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, h0, softplus, seq_idx):
        from seqssm.kernels.scan.triton_parallel_kernels import _pscan_fwd_kernel

        b, d, l = u.shape
        n = A.shape[1]
        Bt, dg_b, b_ti, sB = _bc_layout(B, d)
        Ct, dg_c, c_ti, sC = _bc_layout(C, d)
        cfg = tile_config(n, [dg for dg, ti in ((dg_b, b_ti), (dg_c, c_ti)) if not ti], d)
        n_tiles = max(1, _cdiv(l, cfg["BLOCK_L"]))
        out = _out(u.shape, u.dtype, u.device)
        h_last = _out((b, d, n), torch.float32, u.device)
        ckpt = torch.empty(b, d, n_tiles, n, dtype=torch.float32, device=u.device)
        _pscan_fwd_kernel[(b, _cdiv(d, cfg["BLOCK_D"]))](
            u, delta, A, Bt, Ct, D, z, delta_bias, h0, seq_idx, out, h_last, ckpt,
            l, d, n, dg_b, dg_c, n_tiles, u.stride(0), u.stride(1), *sB, *sC,
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus,
            HAS_H0=h0 is not None, HAS_SEQ=seq_idx is not None, B_TI=b_ti, C_TI=c_ti, **cfg,
        )
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, ckpt, seq_idx)
        ctx.meta = (softplus, cfg, n_tiles, h0 is not None)
        return out, h_last

    @staticmethod
    def backward(ctx, dout, dh_last):
        from seqssm.kernels.scan.triton_parallel_kernels import _pscan_bwd_kernel

        u, delta, A, B, C, D, z, delta_bias, ckpt, seq_idx = ctx.saved_tensors
        softplus, cfg, n_tiles, has_h0 = ctx.meta
        b, d, l = u.shape
        n = A.shape[1]
        Bt, dg_b, b_ti, sB = _bc_layout(B, d)
        Ct, dg_c, c_ti, sC = _bc_layout(C, d)
        n_blk = _cdiv(d, cfg["BLOCK_D"])
        dout = torch.zeros_like(u) if dout is None else dout.contiguous()
        du, ddelta = _out(u.shape, u.dtype, u.device), _out(delta.shape, delta.dtype, u.device)
        dz = _out(z.shape, z.dtype, u.device) if z is not None else None
        dA = _out((b, d, n), torch.float32, u.device)
        dBp = _out((b, d, n) if b_ti else (b, n_blk, n, l), torch.float32, u.device)
        dCp = _out((b, d, n) if c_ti else (b, n_blk, n, l), torch.float32, u.device)
        dD = _out((b, d), torch.float32, u.device) if D is not None else None
        dbias = _out((b, d), torch.float32, u.device) if delta_bias is not None else None
        dh0 = _out((b, d, n), torch.float32, u.device)
        _pscan_bwd_kernel[(b, n_blk)](
            u, delta, A, Bt, Ct, D, z, delta_bias, ckpt, dout, dh_last, seq_idx,
            du, ddelta, dz, dA, dBp, dCp, dD, dbias, dh0,
            l, d, n, dg_b, dg_c, n_tiles, n_blk, u.stride(0), u.stride(1), *sB, *sC,
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus,
            HAS_DHLAST=dh_last is not None, HAS_SEQ=seq_idx is not None, B_TI=b_ti, C_TI=c_ti, **cfg,
        )

        def reduce_bc(part, X, ti):
            if ti:
                return part.sum(0).to(X.dtype)
            g = 1 if X.dim() == 3 else X.shape[1]
            per_group = part.view(b, g, n_blk // g, n, l).sum(2)  # the blocks of one group are contiguous
            return per_group.view(X.shape).to(X.dtype)

        return (
            du, ddelta, dA.sum(0).to(A.dtype), reduce_bc(dBp, B, b_ti), reduce_bc(dCp, C, c_ti),
            None if D is None else dD.sum(0).to(D.dtype), dz,
            None if delta_bias is None else dbias.sum(0).to(delta_bias.dtype), dh0 if has_h0 else None, None, None,
        )


# ---- ahead-of-time compile cases ------------------------------------------------------------------------------

_FWD_FLAGS = ("HAS_D", "HAS_Z", "HAS_BIAS", "SOFTPLUS", "HAS_H0", "HAS_SEQ")
_BWD_FLAGS = ("HAS_D", "HAS_Z", "HAS_BIAS", "SOFTPLUS", "HAS_DHLAST", "HAS_SEQ")
# pointer arguments that are None when their flag is off
_OPTIONAL = {"D_ptr": "HAS_D", "z_ptr": "HAS_Z", "bias_ptr": "HAS_BIAS", "h0_ptr": "HAS_H0", "seq_ptr": "HAS_SEQ",
             "dz_ptr": "HAS_Z", "dD_ptr": "HAS_D", "dbias_ptr": "HAS_BIAS", "dhlast_ptr": "HAS_DHLAST"}
# pointers in the input dtype (the rest are float32, seq_idx int64)
_IN_DTYPE = {"u_ptr", "dt_ptr", "z_ptr", "out_ptr", "dout_ptr", "du_ptr", "ddt_ptr", "dz_ptr", "B_ptr", "C_ptr"}


def _case(kernel, direction: str, dtype: str, flags: dict, cfg: dict, int_type: str) -> AotCase:
    signature, constexprs = {}, {}
    for name in kernel.arg_names:
        if name in flags or name in cfg:
            signature[name] = "constexpr"
            constexprs[name] = flags.get(name, cfg.get(name))
        elif name in _OPTIONAL and not flags[_OPTIONAL[name]]:
            signature[name] = "constexpr"
            constexprs[name] = None
        elif name.endswith("_ptr"):
            signature[name] = "*i64" if name == "seq_ptr" else f"*{dtype}" if name in _IN_DTYPE else "*fp32"
        else:
            signature[name] = int_type
    on = "".join(k[0] if v else "-" for k, v in flags.items() if k not in ("B_TI", "C_TI"))
    layout = {(False, False): "var", (True, True): "ti", (False, True): "mixed"}[(flags["B_TI"], flags["C_TI"])]
    name = (f"pscan_{direction}-{dtype}-D{cfg['BLOCK_D']}-N{cfg['BLOCK_N']}-L{cfg['BLOCK_L']}-{layout}-{on}"
            f"-{int_type}")
    return AotCase(name, kernel, signature, constexprs, num_warps=cfg["num_warps"])


def aot_cases() -> list[AotCase]:
    """The specializations the launch code above produces: every input dtype with all flags on and all off, the
    B/C layouts, each state size class of tile_config (N = 16 is Mamba's default) and 64-bit integers (b·d·l past
    2^31). The flags are independent constexpr branches, so each one on and off is compiled somewhere here."""
    from seqssm.kernels.scan.triton_parallel_kernels import _pscan_bwd_kernel, _pscan_fwd_kernel

    cases = []
    for kernel, direction, names in ((_pscan_fwd_kernel, "fwd", _FWD_FLAGS), (_pscan_bwd_kernel, "bwd", _BWD_FLAGS)):
        def add(dtype, on, n, b_ti=False, c_ti=False, int_type="i32"):
            flags = {k: on for k in names} | {"B_TI": b_ti, "C_TI": c_ti}
            cfg = tile_config(n, [] if b_ti and c_ti else [64], 1024)  # groups of 64 channels: any BLOCK_D fits
            cases.append(_case(kernel, direction, dtype, flags, cfg, int_type))

        for dtype in ("fp32", "bf16", "fp16"):
            for on in (True, False):
                add(dtype, on, 16)
        add("bf16", True, 16, b_ti=True, c_ti=True)
        add("bf16", True, 16, c_ti=True)
        for n in (4, 64, 256):
            add("bf16", True, n)
        add("bf16", True, 16, int_type="i64")
    return cases

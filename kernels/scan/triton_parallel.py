"""The "parallel" Triton design of the selective scan: launches triton_parallel_kernels.py in an autograd Function.

Dimension names: b batch · d channels · l length · n state size · g groups of B/C · k tile (BLOCK_L steps).

Selected with `selective_scan(..., backend="triton", triton_design="parallel")`; same contract, inputs and outputs
as the sequential design (triton_scan.py), whose layout helpers it shares. Memory beyond inputs and outputs: the
state entering every tile (b, d, l / BLOCK_L + 1, n) float32, written by the forward and read by the backward,
float32 sums of ∂B, ∂C of time-varying layouts (b, g, n, l) (atomic adds, see triton_parallel_kernels.py) and a
(b, d, 2, n) carry in backward. Runs on CUDA tensors, or on CPU tensors under the
Triton interpreter (TRITON_INTERPRET=1 before triton is first imported).
"""

from __future__ import annotations

import torch

from seqssm.kernels._aot import AotCase
from seqssm.kernels.scan.triton_scan import _bc_layout, _block_d, _cdiv, _out, triton_next_pow2

# Tile shape. A (BLOCK_D, BLOCK_L) float32 tile is BLOCK_D·BLOCK_L / (32·num_warps) values a thread. With 16-byte
# aligned inputs Triton lays a forward tile of 2 × 512 out as 8 consecutive steps a thread (16-byte loads of bf16,
# the scan sequential within a thread, then across the lanes and two warps of a channel), the shape of mamba_ssm's
# kernel. The backward keeps about 30 values per (channel, step) alive, so it takes one channel (4 steps a thread):
# at 8 steps a thread ptxas needs ~250 registers and for sm_90a it spills at 2 × 256 (`python -m seqssm.kernels._aot`
# prints registers and spills for aot_cases()). BLOCK_L is shared by both directions: the backward starts from the
# states the forward saved at tile starts. The tests shrink MAX_BLOCK_L so that short sequences cross several
# tiles. The state size n is a loop inside a tile, so it does not change the tile.
MAX_BLOCK_L = 512
MAX_BLOCK_D = {"fwd": 2, "bwd": 1}
NUM_WARPS = 4
# Registers a thread may use, as the sequential design's launches allow (triton_scan.MAXNREG): left to itself ptxas
# aims at an occupancy target and can spill a few bytes instead (Triton 3.6, bf16 backward on sm_80), which the
# ahead-of-time compile test refuses.
MAXNREG = 255


def tile_config(l: int, dgs: list[int], d: int, direction: str) -> dict:
    """BLOCK_D, BLOCK_L and num_warps for length l, the group sizes dgs of the time-varying B/C, and "fwd"/"bwd"."""
    bl = min(MAX_BLOCK_L, max(16, triton_next_pow2(l)))
    return dict(BLOCK_D=_block_d(d, dgs, cap=MAX_BLOCK_D[direction]), BLOCK_L=bl, num_warps=NUM_WARPS,
                maxnreg=MAXNREG)


def _bc_rows(X: torch.Tensor) -> torch.Tensor:
    """A time-varying B or C with unit stride along L, so that a tile's row of it is one contiguous load (the Mamba
    block passes B, C as transposed views of x_proj's output, L-stride 2N + dt_rank); (d, n) as it is."""
    return X if X.dim() == 2 or X.stride(-1) == 1 else X.contiguous()


def _fwd_call(u, delta, A, B, C, D, z, delta_bias, h0, softplus, seq_idx):
    """(grid, args, constexpr kwargs, out, ckpt) of the forward launch; B, C already through _bc_rows."""
    b, d, l = u.shape
    n = A.shape[1]
    Bt, dg_b, b_ti, sB = _bc_layout(B, d)
    Ct, dg_c, c_ti, sC = _bc_layout(C, d)
    cfg = tile_config(l, [dg for dg, ti in ((dg_b, b_ti), (dg_c, c_ti)) if not ti], d, "fwd")
    n_tiles = max(1, _cdiv(l, cfg["BLOCK_L"]))
    out = _out(u.shape, u.dtype, u.device)
    ckpt = _out((b, d, n_tiles + 1, n), torch.float32, u.device)  # the state entering each tile; the last state
    args = (u, delta, A, Bt, Ct, D, z, delta_bias, h0, seq_idx, out, ckpt,
            l, d, n, dg_b, dg_c, n_tiles, u.stride(0), u.stride(1), *sB, *sC)
    kw = dict(HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus,
              HAS_H0=h0 is not None, HAS_SEQ=seq_idx is not None, B_TI=b_ti, C_TI=c_ti, **cfg)
    return (b, _cdiv(d, cfg["BLOCK_D"])), args, kw, out, ckpt


def _bwd_call(u, delta, A, B, C, D, z, delta_bias, ckpt, seq_idx, softplus, dout, dh_last, block_l):
    """(grid, args, constexpr kwargs, gradient buffers) of the backward launch; block_l: the forward's tile."""
    b, d, l = u.shape
    n = A.shape[1]
    Bt, dg_b, b_ti, sB = _bc_layout(B, d)
    Ct, dg_c, c_ti, sC = _bc_layout(C, d)
    cfg = tile_config(l, [dg for dg, ti in ((dg_b, b_ti), (dg_c, c_ti)) if not ti], d, "bwd") | {"BLOCK_L": block_l}
    n_tiles = ckpt.shape[2] - 1
    n_blk = _cdiv(d, cfg["BLOCK_D"])
    f32 = dict(dtype=torch.float32, device=u.device)
    grads = dict(
        du=_out(u.shape, u.dtype, u.device), ddelta=_out(delta.shape, delta.dtype, u.device),
        dz=_out(z.shape, z.dtype, u.device) if z is not None else None,
        dA=_out((b, d, n), torch.float32, u.device),
        # time-varying: (b, g, n, l) sums that the blocks add to (zeros first); time-invariant: per (b, d, n)
        dB=_out((b, d, n), torch.float32, u.device) if b_ti else torch.zeros(b, d // dg_b, n, l, **f32),
        dC=_out((b, d, n), torch.float32, u.device) if c_ti else torch.zeros(b, d // dg_c, n, l, **f32),
        dD=_out((b, d), torch.float32, u.device) if D is not None else None,
        dbias=_out((b, d), torch.float32, u.device) if delta_bias is not None else None,
        dh0=_out((b, d, n), torch.float32, u.device),
    )
    g_carry = torch.empty(b, d, 2, n, dtype=torch.float32, device=u.device)
    args = (u, delta, A, Bt, Ct, D, z, delta_bias, ckpt, dout, dh_last, seq_idx, g_carry, *grads.values(),
            l, d, n, dg_b, dg_c, n_tiles, u.stride(0), u.stride(1), *sB, *sC)
    kw = dict(HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus,
              HAS_DHLAST=dh_last is not None, HAS_SEQ=seq_idx is not None, B_TI=b_ti, C_TI=c_ti, **cfg)
    return (b, n_blk), args, kw, grads


class _TritonParallelScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, h0, softplus, seq_idx):
        from seqssm.kernels.scan.triton_parallel_kernels import _pscan_fwd_kernel

        Br, Cr = _bc_rows(B), _bc_rows(C)
        grid, args, kw, out, ckpt = _fwd_call(u, delta, A, Br, Cr, D, z, delta_bias, h0, softplus, seq_idx)
        _pscan_fwd_kernel[grid](*args, **kw)
        ctx.save_for_backward(u, delta, A, Br, Cr, D, z, delta_bias, ckpt, seq_idx)
        ctx.meta = (softplus, h0 is not None, kw["BLOCK_L"])
        return out, ckpt[:, :, -1].clone()

    @staticmethod
    def backward(ctx, dout, dh_last):
        from seqssm.kernels.scan.triton_parallel_kernels import _pscan_bwd_kernel

        u, delta, A, B, C, D, z, delta_bias, ckpt, seq_idx = ctx.saved_tensors
        softplus, has_h0, block_l = ctx.meta
        dout = torch.zeros_like(u) if dout is None else dout.contiguous()
        dh_last = None if dh_last is None else dh_last.contiguous()
        grid, args, kw, gr = _bwd_call(u, delta, A, B, C, D, z, delta_bias, ckpt, seq_idx, softplus, dout, dh_last,
                                       block_l)
        _pscan_bwd_kernel[grid](*args, **kw)

        def bc_grad(buf, X):  # (b, d, n) per batch row when time-invariant, else already (b, g, n, l)
            return (buf.sum(0) if X.dim() == 2 else buf.view(X.shape)).to(X.dtype)

        return (
            gr["du"], gr["ddelta"], gr["dA"].sum(0).to(A.dtype), bc_grad(gr["dB"], B), bc_grad(gr["dC"], C),
            None if D is None else gr["dD"].sum(0).to(D.dtype), gr["dz"],
            None if delta_bias is None else gr["dbias"].sum(0).to(delta_bias.dtype), gr["dh0"] if has_h0 else None,
            None, None,
        )


# ---- ahead-of-time compile cases ------------------------------------------------------------------------------

def _specialize(kernel, args: tuple, kw: dict) -> tuple[dict, dict, tuple]:
    """(signature, constexprs, names marked divisible by 16) as Triton's launcher specializes these arguments:
    None and the integer 1 become constexprs, integers i32 or i64, tensors pointers (device allocations are
    16-byte aligned), and integers that are multiples of 16 get the divisibility hint that lets loads vectorize."""
    signature, constexprs, aligned = {}, {}, []
    params = list(kernel.arg_names)
    for name, value in zip(params, list(args) + [kw[p] for p in params[len(args):]]):
        if name in kw or value is None or (isinstance(value, int) and not isinstance(value, bool) and value == 1):
            signature[name], constexprs[name] = "constexpr", value
        elif isinstance(value, torch.Tensor):
            signature[name] = "*" + {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16",
                                     torch.int64: "i64", torch.int32: "i32"}[value.dtype]
            aligned.append(name)
        else:
            signature[name] = "i32" if -(2**31) <= value < 2**31 else "i64"
            if value % 16 == 0:
                aligned.append(name)
    return signature, constexprs, tuple(aligned)


def _meta_inputs(dtype, layout: str, flags: bool, b: int, d: int, l: int, n: int, groups: int = 2):
    """Inputs on the meta device (shapes and strides only, nothing allocated) as selective_scan_triton passes them."""
    m = dict(device="meta")
    bc = {"var": lambda: torch.empty(b, n, l, dtype=dtype, **m),
          "grouped": lambda: torch.empty(b, groups, n, l, dtype=dtype, **m),
          "ti": lambda: torch.empty(d, n, dtype=dtype, **m),
          "mamba": lambda: torch.empty(b, l, 2 * n + 48, dtype=dtype, **m)[:, :, 48:48 + n].transpose(1, 2)}
    kind_b, kind_c = {"mixed": ("var", "ti")}.get(layout, (layout, layout))
    u = torch.empty(b, d, l, dtype=dtype, **m)
    f32 = lambda *s: torch.empty(*s, dtype=torch.float32, **m) if flags else None  # noqa: E731
    return dict(u=u, delta=torch.empty_like(u), A=torch.empty(d, n, dtype=torch.float32, **m), B=bc[kind_b](),
                C=bc[kind_c](), D=f32(d), z=torch.empty_like(u) if flags else None, delta_bias=f32(d), h0=f32(b, d, n),
                softplus=flags, seq_idx=torch.empty(b, l, dtype=torch.int64, **m) if flags else None)


# (input dtype, B/C layout, all flags on, b, d, l, n, groups): Mamba's shapes first, then each thing that changes
# what tile_config or Triton's specialization produces (group sizes 1 and 2, short and unaligned lengths, N = 1 or
# not a multiple of 16, 64-bit strides past 2^31 elements)
_AOT_SHAPES = [
    *[(dt, "var", on, 2, 1024, 4096, 16, 2)
      for dt in (torch.float32, torch.bfloat16, torch.float16) for on in (True, False)],
    (torch.bfloat16, "mamba", True, 2, 1536, 2048, 16, 2),
    (torch.bfloat16, "ti", True, 2, 1024, 4096, 16, 2),
    (torch.bfloat16, "mixed", True, 2, 1024, 4096, 16, 2),
    (torch.bfloat16, "grouped", True, 2, 1024, 4096, 16, 1024),
    (torch.bfloat16, "grouped", True, 2, 1024, 4096, 16, 512),
    (torch.bfloat16, "var", True, 2, 1024, 40, 16, 2),
    (torch.bfloat16, "var", True, 2, 1024, 100, 16, 2),
    (torch.bfloat16, "var", True, 2, 1000, 1000, 5, 2),
    (torch.bfloat16, "var", True, 1, 64, 4096, 1, 2),
    (torch.bfloat16, "var", True, 1, 2048, 1 << 20, 16, 2),
]


def aot_cases() -> list[AotCase]:
    """Every distinct specialization that the launch code above produces for the shapes of _AOT_SHAPES: the same
    _fwd_call/_bwd_call build the arguments from meta tensors, and _specialize applies Triton's rules. The flags are
    independent constexpr branches, so each is compiled on and off."""
    from seqssm.kernels.scan.triton_parallel_kernels import _pscan_bwd_kernel, _pscan_fwd_kernel

    cases, seen = [], set()
    names = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
    for dtype, layout, on, b, d, l, n, groups in _AOT_SHAPES:
        x = _meta_inputs(dtype, layout, on, b, d, l, n, groups)
        Br, Cr = _bc_rows(x["B"]), _bc_rows(x["C"])
        _, args, kw, out, ckpt = _fwd_call(x["u"], x["delta"], x["A"], Br, Cr, x["D"], x["z"], x["delta_bias"],
                                           x["h0"], x["softplus"], x["seq_idx"])
        _, bargs, bkw, _ = _bwd_call(x["u"], x["delta"], x["A"], Br, Cr, x["D"], x["z"], x["delta_bias"], ckpt,
                                     x["seq_idx"], x["softplus"], torch.empty_like(out),
                                     torch.empty(b, d, n, device="meta") if on else None, kw["BLOCK_L"])
        for kernel, direction, a, k in ((_pscan_fwd_kernel, "fwd", args, kw), (_pscan_bwd_kernel, "bwd", bargs, bkw)):
            warps, maxnreg = k.pop("num_warps"), k.pop("maxnreg")
            signature, constexprs, aligned = _specialize(kernel, a, k)
            key = (direction, tuple(signature.items()), tuple(constexprs.items()), aligned)
            if key in seen:
                continue
            seen.add(key)
            wide = "-i64" if "i64" in signature.values() else ""
            lay = f"{layout}{groups}" if layout == "grouped" else layout
            name = (f"pscan_{direction}-{names[dtype]}-{lay}-{'all' if on else 'none'}-l{l}-n{n}"
                    f"-D{k['BLOCK_D']}-L{k['BLOCK_L']}{wide}")
            cases.append(AotCase(name, kernel, signature, constexprs, num_warps=warps, aligned=aligned,
                                 maxnreg=maxnreg))
    return cases

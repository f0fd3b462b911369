"""The "triton" backend of Mamba-2's SSD: launches the kernels of triton_ssd_kernels.py in an autograd Function,
plus the fused decoding step and the ahead-of-time compile cases.

Dimension names: b batch · l length · h heads · p head dim · n state size · g groups of B/C · c chunks ·
s chunk length (CHUNK).

Launches, forward: chunk states (one tl.dot per chunk, head and (p, n) block), state passing (one sequential
program per (batch, head, block of p·n), in place), chunk scan (C·Bᵀ and Σ·x products per chunk). Backward: the
output gradient's chunk states, the reverse state passing, then dx (with ∂Δ, ∂a and ∂D) and dB/dC per head.
Memory beyond inputs and outputs: one (b, c, h, p, n) float32 buffer of chunk states kept for backward (CHUNK
times smaller than a per-step state), and backward's (b, c, h, p, n) gradient buffer and per-block partial sums.

Runs on CUDA tensors, or on CPU tensors under the Triton interpreter (TRITON_INTERPRET=1 set before triton is
first imported), which is how the test suite checks it without a GPU. Every offset is int64 inside the kernels
(see triton_ssd_kernels.py); no `seq_idx` (packed sequences) yet: neither the reference nor the mamba2 layer
takes it.
"""

from __future__ import annotations

import torch

from seqssm.kernels._aot import AotCase, make_case
from seqssm.kernels._checks import KernelInputError
from seqssm.kernels._triton import triton_usable

CHUNK = 64  # s: positions per chunk; the tl.dot tiles are (s, s), (s, p-block) and (s, n-block)
# Block sizes are fixed per input dtype (not fitted to p and n), so every launch is one of the few
# specializations aot_cases() lists; edges are masked. Powers of two >= 16 (tl.dot's smallest tile).
# (BLOCK_P, BLOCK_N): p per program of the scan kernels and of the decoding step, n per step of the products over
# n. Float32's exact products run on FMA units with (s, block) accumulators spread over threads: smaller tiles
# keep them in registers (ptxas reports no spill for any case, sm_80 and sm_90; docs/kernels.md).
BLOCKS = {"lowp": (32, 32), "fp32": (16, 16)}
BLOCK_E = 512  # flattened (p, n) state entries per program of the state passing
# Warps per program, per kernel and dtype class (16-bit, float32): the (s, s) tiles of the scan kernels need 8
WARPS = {"outer": (4, 4), "pass": (4, 4), "scan": (8, 8), "bwd_dx": (8, 8), "bwd_dbc": (8, 8), "update": (4, 4)}
# The dx backward holds the most tiles at once (255 registers at 8 warps): its products over n step 16 wide for
# every dtype, which keeps Triton 3.6's 16-bit build on sm_80 from spilling (the other kernels keep BLOCKS' n).
DX_BLOCK_N = {"BLOCK_N": 16}
NUM_STAGES = 1  # no software pipelining: its extra buffers cost registers the tiles need


# Registers a thread may use (as the scan's and conv's launches allow): left to itself ptxas aims at an occupancy
# target and spilled a few bytes in the bf16 chunk products on sm_80 with Triton 3.6 (docs/kernels.md).
MAXNREG = 255


def _launch(kernel: str, lowp: bool) -> dict:
    return dict(num_warps=WARPS[kernel][0 if lowp else 1], num_stages=NUM_STAGES, maxnreg=MAXNREG)
POISON_OUTPUTS = False  # tests: every output buffer starts as NaN, so an element a kernel misses cannot pass


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _out(shape, dtype, device) -> torch.Tensor:
    if POISON_OUTPUTS:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


def _kernels():
    """Imported on first use: triton must be imported only after TRITON_INTERPRET is settled."""
    from seqssm.kernels.ssd import triton_ssd_kernels

    return triton_ssd_kernels


class _Shape:
    """Sizes, blocks and grids of one call."""

    def __init__(self, x: torch.Tensor, B: torch.Tensor):
        self.b, self.l, self.h, self.p = x.shape
        self.g, self.n = B.shape[-2], B.shape[-1]
        self.hg = self.h // self.g
        self.s = CHUNK
        self.nc = _cdiv(self.l, self.s)
        self.lowp = x.dtype != torch.float32
        self.bp, self.bn = BLOCKS["lowp" if self.lowp else "fp32"]
        self.npb, self.nnb = _cdiv(self.p, self.bp), _cdiv(self.n, self.bn)
        self.neb = _cdiv(self.p * self.n, BLOCK_E)
        self.bh = self.b * self.h
        self.const = dict(BLOCK_S=self.s, BLOCK_P=self.bp, BLOCK_N=self.bn, LOWP=self.lowp)

    def sizes(self):
        return self.l, self.h, self.p, self.n, self.nc, self.hg


class _TritonSSD(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dt, A, B, C, D, h0):
        k = _kernels()
        sh = _Shape(x, B)
        f32 = dict(dtype=torch.float32, device=x.device)
        states = _out((sh.b, sh.nc, sh.h, sh.p, sh.n), **f32)  # S_c, then in place H_c (entering chunk c)
        T = _out((sh.b, sh.h, sh.nc), **f32)
        k._chunk_outer_kernel[(sh.nc, sh.bh, sh.npb * sh.nnb)](
            x, B, dt, A, states, T, *sh.sizes(), *x.stride(), *B.stride(), *dt.stride(),
            MODE=0, **_launch("outer", sh.lowp), **sh.const)
        final = _out((sh.b, sh.h, sh.p, sh.n), **f32)
        k._state_pass_kernel[(sh.bh, sh.neb)](
            states, T, h0, final, None, None, sh.h, sh.p * sh.n, sh.nc,
            REVERSE=False, HAS_START=h0 is not None, BLOCK_E=BLOCK_E, **_launch("pass", sh.lowp))
        y = _out(x.shape, x.dtype, x.device)
        k._chunk_scan_kernel[(sh.nc, sh.bh, sh.npb)](
            x, dt, A, B, C, D, states, y, *sh.sizes(), *x.stride(), *dt.stride(), *B.stride(), *C.stride(),
            *y.stride(), HAS_D=D is not None, **_launch("scan", sh.lowp), **sh.const)
        ctx.save_for_backward(x, dt, A, B, C, D, states, T)
        ctx.has_h0 = h0 is not None
        return y, final

    @staticmethod
    def backward(ctx, dy, dfinal):
        k = _kernels()
        x, dt, A, B, C, D, states, T = ctx.saved_tensors
        sh = _Shape(x, B)
        f32 = dict(dtype=torch.float32, device=x.device)
        dy = torch.zeros_like(x) if dy is None else dy.contiguous()
        dfinal = torch.zeros(sh.b, sh.h, sh.p, sh.n, **f32) if dfinal is None else dfinal.float().contiguous()
        G = _out((sh.b, sh.nc, sh.h, sh.p, sh.n), **f32)  # dHloc_c, then in place G_c = ∂loss/∂H_{c+1}
        k._chunk_outer_kernel[(sh.nc, sh.bh, sh.npb * sh.nnb)](
            dy, C, dt, A, G, None, *sh.sizes(), *dy.stride(), *C.stride(), *dt.stride(),
            MODE=1, **_launch("outer", sh.lowp), **sh.const)
        dh0 = _out((sh.b, sh.h, sh.p, sh.n), **f32)
        dT = _out((sh.b, sh.h, sh.nc, sh.neb), **f32)
        k._state_pass_kernel[(sh.bh, sh.neb)](
            G, T, dfinal, dh0, states, dT, sh.h, sh.p * sh.n, sh.nc,
            REVERSE=True, HAS_START=True, BLOCK_E=BLOCK_E, **_launch("pass", sh.lowp))
        dx = _out(x.shape, x.dtype, x.device)  # contiguous, like dy: the kernel writes it with dy's strides
        ddt_part, da_part = _out((sh.npb, sh.bh, sh.l), **f32), _out((sh.npb, sh.bh, sh.l), **f32)
        dD_part = _out((sh.bh, sh.nc, sh.npb), **f32) if D is not None else None
        k._chunk_scan_bwd_dx_kernel[(sh.nc, sh.bh, sh.npb)](
            x, dt, A, B, C, D, states, G, dy, dx, ddt_part, da_part, dD_part, *sh.sizes(),
            *x.stride(), *dt.stride(), *B.stride(), *C.stride(), *dy.stride(),
            HAS_D=D is not None, **_launch("bwd_dx", sh.lowp), **(sh.const | DX_BLOCK_N))
        dBh, dCh = _out((sh.b, sh.l, sh.h, sh.n), **f32), _out((sh.b, sh.l, sh.h, sh.n), **f32)
        k._chunk_scan_bwd_dbc_kernel[(sh.nc, sh.bh, sh.nnb)](
            x, dt, A, B, C, states, G, dy, dBh, dCh, *sh.sizes(),
            *x.stride(), *dt.stride(), *B.stride(), *C.stride(), *dy.stride(), **_launch("bwd_dbc", sh.lowp),
            **sh.const)
        # ∂a per position: the kernels' p-block parts, plus each chunk's ∂T_c spread over its positions
        dT_pos = dT.sum(-1).repeat_interleave(sh.s, dim=2)[:, :, : sh.l]  # (b, h, l)
        da = da_part.sum(0).view(sh.b, sh.h, sh.l) + dT_pos
        dt_bhl = dt.float().permute(0, 2, 1)
        ddt = ddt_part.sum(0).view(sh.b, sh.h, sh.l) + da * A.float()[None, :, None]
        dA = (da * dt_bhl).sum((0, 2))
        per_group = lambda t: t.view(sh.b, sh.l, sh.g, sh.hg, sh.n).sum(3)  # noqa: E731 (heads of a group)
        dD = None if D is None else dD_part.view(sh.b, sh.h, -1).sum((0, 2)).to(D.dtype)
        return (dx, ddt.permute(0, 2, 1).to(dt.dtype), dA.to(A.dtype), per_group(dBh).to(B.dtype),
                per_group(dCh).to(C.dtype), dD, dh0 if ctx.has_h0 else None)


def ssd_triton(x, dt, A, B, C, D=None, initial_state=None, return_final_state=False):
    """Triton backend; same contract as seqssm.kernels.ssd_scan (inputs validated there). Float32, bfloat16 or
    float16 inputs (float32 products for float32, bf16 tensor-core products with float32 sums otherwise)."""
    ok, why = triton_usable(x.device)
    if not ok:
        raise KernelInputError(f"backend: 'triton' cannot run here: {why}")
    if x.dtype == torch.float64:
        raise KernelInputError("x: dtype float64 is not supported by the triton backend (float32, float16, bfloat16)")
    b, l, h, p = x.shape
    n = B.shape[-1]
    h0 = None if initial_state is None else initial_state.to(torch.float32).contiguous()
    if l == 0:
        final = torch.zeros(b, h, p, n, dtype=torch.float32, device=x.device) if h0 is None else h0.clone()
        y = x.new_zeros(x.shape)
        return (y, final) if return_final_state else y
    f32 = lambda t: None if t is None else t.to(torch.float32).contiguous()  # noqa: E731
    # one dtype for x, B, C (and dy) and float32 Δ: the launches stay within aot_cases(); no copy when they agree
    y, final = _TritonSSD.apply(x, dt.to(torch.float32), f32(A), B.to(x.dtype), C.to(x.dtype), f32(D), h0)
    return (y, final) if return_final_state else y


def ssd_state_update_triton(state, x, dt, A, B, C, D=None):
    """One decoding step in one kernel; same contract as seqssm.kernels.ssd_state_update (validated there):
    state (b, h, p, n) contiguous float32, updated in place; returns y (b, h, p) in x's dtype."""
    ok, why = triton_usable(state.device)
    if not ok:
        raise KernelInputError(f"backend: 'triton' cannot run here: {why}")
    if state.dtype != torch.float32 or not state.is_contiguous():
        raise KernelInputError("state: the triton step needs a contiguous float32 state")
    b, h, p, n = state.shape
    g = B.shape[1]
    y = torch.empty(b, h, p, dtype=x.dtype, device=x.device)
    f32 = lambda t: None if t is None else t.to(torch.float32).contiguous()  # noqa: E731
    B, C = B.to(x.dtype), C.to(x.dtype)
    lowp = x.dtype != torch.float32
    bp, bn = BLOCKS["lowp" if lowp else "fp32"]
    _kernels()._state_update_kernel[(b * h, _cdiv(p, bp))](
        state, x.contiguous(), f32(dt), f32(A), B, C, f32(D), y, h, p, n, h // g, *B.stride(), *C.stride(),
        HAS_D=D is not None, BLOCK_P=bp, BLOCK_N=bn, **_launch("update", lowp))
    return y


# ------------------------------------------------------------------------------------------------ ahead of time

_TL = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
# Launched as 1 when the last dimension is contiguous (Triton then specializes the argument into a constant).
_UNIT_STRIDES = ("s_vp", "s_wn", "s_xp", "s_bn", "s_cn", "s_yp", "s_dt_h")


def _case(name: str, kernel, pointers: dict, constexprs: dict, ints: str, launch: dict) -> AotCase:
    """A case as a launch specializes it (kernels/_aot.make_case), with the unit strides as the constant 1."""
    units = {arg: 1 for arg in _UNIT_STRIDES if arg in kernel.arg_names}
    return make_case(name, kernel, pointers, {**units, **constexprs}, ints=ints, **launch)


def aot_cases() -> list[AotCase]:
    """Every specialization the launches above produce: per input dtype (x, B, C and dy share it; Δ, A, D and the
    states are float32), flag set, and integer width (i64 once a stride or size reaches 2^31), at the fixed
    CHUNK, BLOCKS and BLOCK_E. The decoding step's integers are sizes of one step: always i32."""
    k = _kernels()
    f = "*fp32"
    cases = []
    for ints in ("i32", "i64"):
        for mode, start in ((False, True), (False, False), (True, True)):
            ptrs = dict(buf_ptr=f, T_ptr=f, end_ptr=f, **({"start_ptr": f} if start else {}),
                        **({"Hin_ptr": f, "dT_ptr": f} if mode else {}))
            name = f"ssd_pass-{'bwd' if mode else 'fwd'}{'-start' if start and not mode else ''}-{ints}"
            cases.append(_case(name, k._state_pass_kernel, ptrs,
                               dict(REVERSE=mode, HAS_START=start, BLOCK_E=BLOCK_E), ints, _launch("pass", False)))
        for dtype, tname in _TL.items():
            X, lowp = "*" + tname, dtype != torch.float32
            bp, bn = BLOCKS["lowp" if lowp else "fp32"]
            const = dict(BLOCK_S=CHUNK, BLOCK_P=bp, BLOCK_N=bn, LOWP=lowp)
            tag = f"{tname}-s{CHUNK}-p{bp}-n{bn}"
            for mode in (0, 1):
                ptrs = dict(V_ptr=X, W_ptr=X, dt_ptr=f, A_ptr=f, out_ptr=f, **({"T_ptr": f} if mode == 0 else {}))
                cases.append(_case(f"ssd_chunk_outer{mode}-{tag}-{ints}", k._chunk_outer_kernel, ptrs,
                                   dict(MODE=mode, **const), ints, _launch("outer", lowp)))
            cases.append(_case(f"ssd_bwd_dbc-{tag}-{ints}", k._chunk_scan_bwd_dbc_kernel,
                               dict(x_ptr=X, dt_ptr=f, A_ptr=f, B_ptr=X, C_ptr=X, Hin_ptr=f, G_ptr=f, dy_ptr=X,
                                    dB_ptr=f, dC_ptr=f), const, ints, _launch("bwd_dbc", lowp)))
            for has_d in (True, False):
                d = dict(D_ptr=f) if has_d else {}
                dd = "-D" if has_d else ""
                cases.append(_case(f"ssd_scan{dd}-{tag}-{ints}", k._chunk_scan_kernel,
                                   dict(x_ptr=X, dt_ptr=f, A_ptr=f, B_ptr=X, C_ptr=X, Hin_ptr=f, y_ptr=X, **d),
                                   dict(HAS_D=has_d, **const), ints, _launch("scan", lowp)))
                cases.append(_case(f"ssd_bwd_dx{dd}-{tag}-{ints}", k._chunk_scan_bwd_dx_kernel,
                                   dict(x_ptr=X, dt_ptr=f, A_ptr=f, B_ptr=X, C_ptr=X, Hin_ptr=f, G_ptr=f, dy_ptr=X,
                                        dx_ptr=X, ddt_ptr=f, da_ptr=f, **({"dD_ptr": f} if has_d else {}), **d),
                                   dict(HAS_D=has_d, **(const | DX_BLOCK_N)), ints, _launch("bwd_dx", lowp)))
                if ints == "i32":
                    cases.append(_case(f"ssd_update{dd}-{tname}-p{bp}-n{bn}", k._state_update_kernel,
                                       dict(state_ptr=f, x_ptr=X, dt_ptr=f, A_ptr=f, B_ptr=X, C_ptr=X, y_ptr=X,
                                            **d), dict(HAS_D=has_d, BLOCK_P=bp, BLOCK_N=bn), ints,
                                       _launch("update", lowp)))
    return cases

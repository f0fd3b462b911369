"""Causal depthwise conv1d in Triton: fused taps + bias + SiLU forward, and a backward that recomputes the
pre-activation once to give ∂pre, ∂weight and ∂bias in one pass (the input gradient is then a transposed
depthwise convolution of ∂pre, done by F.conv1d).

Dimension names: b batch · d channels · l length · k kernel width (a compile-time constant) · q input position
counting the k-1 carried inputs (q = t - (k-1) + j for output t and tap j).

Runs on CUDA tensors, or on CPU tensors under the Triton interpreter (TRITON_INTERPRET=1), as the tests do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqssm.kernels.conv.reference import final_state

POISON_OUTPUTS = False  # tests: outputs start as NaN, so an element the kernel misses cannot pass


def _get():
    """The kernels, imported on first use: triton must be imported only after TRITON_INTERPRET is settled."""
    from seqssm.kernels.conv.triton_conv_kernels import conv_bwd_kernel, conv_fwd_kernel

    return conv_fwd_kernel, conv_bwd_kernel


BLOCK_D, BLOCK_L = 16, 64
# Left to itself ptxas aims at more programs per SM than the taps' registers allow and spills (fp16 forward, sm_90);
# the forward and backward allow 255 registers a thread (tests/kernels/test_aot_compile.py, docs/gpu.md).
MAXNREG = 255


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _input_grad(dpre: torch.Tensor, w: torch.Tensor, seq_idx) -> torch.Tensor:
    """∂x_ext[q] = Σ_j w_j ∂pre[q + k-1 - j] over q = -(k-1) … l-1 (index q + k-1): a depthwise correlation of ∂pre
    with the flipped taps, or, with packed sequences, the same sum keeping only taps inside one sequence."""
    b, d, l = dpre.shape
    k = w.shape[1]
    if seq_idx is None:
        return F.conv1d(F.pad(dpre, (k - 1, k - 1)), w.flip(-1).unsqueeze(1), groups=d)
    src = torch.cat([seq_idx[:, :1].expand(-1, k - 1), seq_idx], 1)  # sequence of each input position
    dxe = torch.zeros(b, d, l + k - 1, dtype=dpre.dtype, device=dpre.device)
    for j in range(k):  # term j: the output t = q + k-1 - j that reads input q through tap j
        out_seq = F.pad(seq_idx, (j, k - 1 - j), value=-1)
        same = (out_seq == src).to(dpre.dtype)[:, None, :]
        dxe += w[:, j, None] * F.pad(dpre, (j, k - 1 - j)) * same
    return dxe


class _TritonConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, state, seq_idx, silu):
        fwd, _ = _get()
        b, d, l = x.shape
        k = weight.shape[1]
        out = torch.full_like(x, float("nan")) if POISON_OUTPUTS else torch.empty_like(x)
        fwd[(b, _cdiv(d, BLOCK_D), _cdiv(l, BLOCK_L))](
            x, weight, bias, state, seq_idx, out, l, d, x.stride(0), x.stride(1),
            K=k, HAS_BIAS=bias is not None, HAS_STATE=state is not None, HAS_SEQ=seq_idx is not None, SILU=silu,
            BLOCK_D=BLOCK_D, BLOCK_L=BLOCK_L, maxnreg=MAXNREG,
        )
        ctx.save_for_backward(x, weight, bias, state, seq_idx)
        ctx.silu = silu
        return out

    @staticmethod
    def backward(ctx, dout):
        _, bwd = _get()
        x, weight, bias, state, seq_idx = ctx.saved_tensors
        b, d, l = x.shape
        k = weight.shape[1]
        n_tblk = _cdiv(l, BLOCK_L)
        f32 = dict(dtype=torch.float32, device=x.device)
        fill = (lambda *s: torch.full(s, float("nan"), **f32)) if POISON_OUTPUTS else (lambda *s: torch.empty(*s, **f32))
        dpre, dw = fill(b, d, l), fill(b, n_tblk, d, k)
        dbias = fill(b, n_tblk, d) if bias is not None else None
        bwd[(b, _cdiv(d, BLOCK_D), n_tblk)](
            x, weight, bias, state, seq_idx, dout.contiguous(), dpre, dw, dbias, l, d, x.stride(0), x.stride(1),
            n_tblk, K=k, HAS_BIAS=bias is not None, HAS_STATE=state is not None, HAS_SEQ=seq_idx is not None,
            SILU=ctx.silu, BLOCK_D=BLOCK_D, BLOCK_L=BLOCK_L, maxnreg=MAXNREG,
        )
        dxe = _input_grad(dpre, weight.float(), seq_idx)  # (b, d, k-1+l): the carried inputs, then x
        dx = dxe[..., k - 1 :].to(x.dtype)
        dstate = dxe[..., : k - 1].to(state.dtype) if state is not None else None
        return (dx, dw.sum((0, 1)).to(weight.dtype), None if bias is None else dbias.sum((0, 1)).to(bias.dtype),
                dstate, None, None)


def causal_conv1d_triton(x, weight, bias, activation, initial_state, return_final_state, seq_idx=None):
    """Same contract as seqssm.kernels.causal_conv1d (inputs validated there)."""
    b, d, l = x.shape
    k = weight.shape[1]
    x = x.contiguous()
    state = None if initial_state is None or k == 1 else initial_state.to(x.dtype).contiguous()
    seq = None if seq_idx is None else seq_idx.to(torch.int64).contiguous()
    out = _TritonConv.apply(x, weight.contiguous(), None if bias is None else bias.contiguous(), state, seq,
                            activation is not None)
    if not return_final_state:
        return out
    head = x.new_zeros(b, d, k - 1) if initial_state is None else initial_state.to(x.dtype)
    return out, final_state(torch.cat([head, x[..., max(0, l - (k - 1)) :]], -1), seq_idx, k).clone()


def causal_conv1d_update_triton(x, conv_state, weight, bias, activation):
    """One decoding step in one kernel; same contract as seqssm.kernels.causal_conv1d_update (validated there)."""
    from seqssm.kernels.conv.triton_conv_kernels import conv_update_kernel

    b, d = x.shape
    if not conv_state.is_contiguous():
        from seqssm.kernels._checks import KernelInputError

        raise KernelInputError("conv_state: the triton step updates it in place and needs it contiguous")
    out = torch.empty_like(x)
    conv_update_kernel[(b, _cdiv(d, BLOCK_D))](
        x.contiguous(), conv_state, weight.contiguous(), None if bias is None else bias.contiguous(), out, d,
        K=weight.shape[1], HAS_BIAS=bias is not None, SILU=activation is not None, BLOCK_D=BLOCK_D,
    )
    return out


# ------------------------------------------------------------------------------------------ ahead-of-time cases
def aot_cases():
    """The specializations the launches above produce (kernels/_aot.py; compiled for sm_80 and sm_90 by
    tests/kernels/test_aot_compile.py), at the shipped kernel width K = 4 (d_conv) and blocks (BLOCK_D, BLOCK_L).
    "autocast": bf16 inputs with float32 weight and bias (a float32 model under torch.autocast); "i64": a launch
    whose b·d·l passes 2^31, so the integer arguments are 64-bit. Gradients of the pre-activation, the weight and
    the bias are float32 partial buffers."""
    from seqssm.kernels._aot import make_case
    from seqssm.kernels.conv.triton_conv_kernels import conv_bwd_kernel, conv_fwd_kernel, conv_update_kernel

    def types_of(x, w, state, seq):
        t = {"x_ptr": f"*{x}", "w_ptr": f"*{w}", "bias_ptr": f"*{w}"}
        if state:
            t["state_ptr"] = f"*{x}"
        if seq:
            t["seq_ptr"] = "*i64"
        return t

    def both(label, x, w, state=False, seq=False, ints="i32", k=4):
        flags = dict(K=k, HAS_BIAS=True, HAS_STATE=state, HAS_SEQ=seq, SILU=True, BLOCK_D=BLOCK_D, BLOCK_L=BLOCK_L)
        name = f"{label}-K{k}" + "-state" * state + "-seq" * seq + f"-{ints}"
        fwd = make_case(f"conv_fwd-{name}", conv_fwd_kernel, types_of(x, w, state, seq) | {"out_ptr": f"*{x}"},
                        flags, ints=ints, maxnreg=MAXNREG)
        grads = {"dout_ptr": f"*{x}", "dpre_ptr": "*fp32", "dw_ptr": "*fp32", "dbias_ptr": "*fp32"}
        bwd = make_case(f"conv_bwd-{name}", conv_bwd_kernel, types_of(x, w, state, seq) | grads, flags, ints=ints,
                        maxnreg=MAXNREG)
        return [fwd, bwd]

    cases = both("fp32", "fp32", "fp32") + both("bf16", "bf16", "bf16") + both("fp16", "fp16", "fp16")
    cases += both("autocast", "bf16", "fp32", state=True) + both("fp32", "fp32", "fp32", state=True, seq=True)
    cases += both("bf16", "bf16", "bf16", ints="i64")
    for dt in ("fp32", "bf16"):
        cases.append(make_case(f"conv_step-{dt}-K4", conv_update_kernel,
                               {"x_ptr": f"*{dt}", "state_ptr": f"*{dt}", "w_ptr": f"*{dt}", "bias_ptr": f"*{dt}",
                                "out_ptr": f"*{dt}"}, dict(K=4, HAS_BIAS=True, SILU=True, BLOCK_D=BLOCK_D)))
    return cases

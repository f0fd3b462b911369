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

POISON_OUTPUTS = False  # tests: outputs start as NaN, so an element the kernel misses cannot pass


def _get():
    """The kernels, imported on first use: triton must be imported only after TRITON_INTERPRET is settled."""
    from seqssm.kernels.conv.triton_conv_kernels import conv_bwd_kernel, conv_fwd_kernel

    return conv_fwd_kernel, conv_bwd_kernel


BLOCK_D, BLOCK_L = 16, 64


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


class _TritonConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, state, silu):
        fwd, _ = _get()
        b, d, l = x.shape
        k = weight.shape[1]
        out = torch.full_like(x, float("nan")) if POISON_OUTPUTS else torch.empty_like(x)
        fwd[(b, _cdiv(d, BLOCK_D), _cdiv(l, BLOCK_L))](
            x, weight, bias, state, out, l, d, x.stride(0), x.stride(1),
            K=k, HAS_BIAS=bias is not None, HAS_STATE=state is not None, SILU=silu, BLOCK_D=BLOCK_D, BLOCK_L=BLOCK_L,
        )
        ctx.save_for_backward(x, weight, bias, state)
        ctx.silu = silu
        return out

    @staticmethod
    def backward(ctx, dout):
        _, bwd = _get()
        x, weight, bias, state = ctx.saved_tensors
        b, d, l = x.shape
        k = weight.shape[1]
        n_tblk = _cdiv(l, BLOCK_L)
        f32 = dict(dtype=torch.float32, device=x.device)
        fill = (lambda *s: torch.full(s, float("nan"), **f32)) if POISON_OUTPUTS else (lambda *s: torch.empty(*s, **f32))
        dpre, dw = fill(b, d, l), fill(b, n_tblk, d, k)
        dbias = fill(b, n_tblk, d) if bias is not None else None
        bwd[(b, _cdiv(d, BLOCK_D), n_tblk)](
            x, weight, bias, state, dout.contiguous(), dpre, dw, dbias, l, d, x.stride(0), x.stride(1), n_tblk,
            K=k, HAS_BIAS=bias is not None, HAS_STATE=state is not None, SILU=ctx.silu, BLOCK_D=BLOCK_D,
            BLOCK_L=BLOCK_L,
        )
        # ∂x_ext[q] = Σ_j w_j ∂pre[q + k-1 - j]: a depthwise correlation of ∂pre with the flipped taps
        dxe = F.conv1d(F.pad(dpre, (k - 1, k - 1)), weight.float().flip(-1).unsqueeze(1), groups=d)  # q = -(k-1)..l-1
        dx = dxe[..., k - 1 :].to(x.dtype)
        dstate = dxe[..., : k - 1].to(state.dtype) if state is not None else None
        return (dx, dw.sum((0, 1)).to(weight.dtype), None if bias is None else dbias.sum((0, 1)).to(bias.dtype),
                dstate, None)


def causal_conv1d_triton(x, weight, bias, activation, initial_state, return_final_state):
    """Same contract as seqssm.kernels.causal_conv1d without seq_idx (inputs validated there)."""
    b, d, l = x.shape
    k = weight.shape[1]
    x = x.contiguous()
    state = None if initial_state is None or k == 1 else initial_state.to(x.dtype).contiguous()
    out = _TritonConv.apply(x, weight.contiguous(), None if bias is None else bias.contiguous(), state,
                            activation is not None)
    if not return_final_state:
        return out
    head = x.new_zeros(b, d, k - 1) if initial_state is None else initial_state.to(x.dtype)
    tail = x[..., max(0, l - (k - 1)) :]
    final = torch.cat([head[..., l:], tail], -1) if l < k - 1 else tail.clone()
    return out, final

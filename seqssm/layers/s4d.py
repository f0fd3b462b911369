"""A non-selective (linear time-invariant) diagonal SSM mixer, S4D-style, in the Mamba block's shape.

Dimension names used in this file:
    b batch · l sequence length · d model width · e inner width (expand·d) · n state size · k conv width

The Mamba paper (Gu & Dao 2023, appendix E.4, raw audio) finds the selection mechanism hurts on smooth,
uniformly sampled signals at full rate, and keeps LTI S4D layers in the outer stages. This mixer is the Mamba block
(section 3.4) with the selective SSM replaced by an LTI one: Δ (e,), B (e, n) and C (e, n) are parameters, not
functions of the input, so

    x, z = in_proj(u);  x = silu(causal_conv1d(x))
    h_t  = exp(Δ A) h_{t-1} + Δ B x_t,   y_t = C·h_t + D x_t          (same discretisation as the Mamba scan)
    out  = out_proj(y · silu(z))

and it runs through the existing kernels: selective_scan with time-invariant B, C of shape (e, n) and a constant
Δ broadcast over time for the parallel pass, selective_state_update (B, C as e groups of one channel) for a step.

A is real and diagonal, S4D-Real init A_n = -(n + 1) (Gu et al. 2022, "On the Parameterization and
Initialization of Diagonal State Space Models"). The complex S4D-Lin init (A_n = -1/2 + iπn) is not offered: the
scan kernels take real A only, and a complex state would need a kernel change.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from seqssm.config import ModelConfig
from seqssm.kernels import selective_scan, selective_state_update
from seqssm.layers.gated_ssm import GatedSSM, wide_dtype
from seqssm.registry import LAYERS

A_INITS = ("real",)


@LAYERS.register("s4d")
class S4D(GatedSSM):
    def __init__(self, cfg: ModelConfig, layer_idx: int = 0, a_init: str = "real"):
        super().__init__()
        if a_init not in A_INITS:
            raise ValueError(f"a_init: must be one of {', '.join(A_INITS)}, got {a_init!r}")
        self.cfg, self.layer_idx = cfg, layer_idx
        d, e, n, k = cfg.d_model, cfg.d_inner, cfg.ssm.d_state, cfg.ssm.d_conv
        self.d_inner, self.d_state, self.d_conv = e, n, k

        self.in_proj = nn.Linear(d, 2 * e, bias=cfg.bias)
        self.conv1d = nn.Conv1d(e, e, kernel_size=k, groups=e, padding=k - 1, bias=cfg.ssm.conv_bias)
        self.out_proj = nn.Linear(e, d, bias=cfg.bias)

        # A = -exp(A_log) stays negative (stable) whatever the optimiser does; S4D-Real: A_n = -(n + 1).
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32).repeat(e, 1)))  # (e, n)
        self.A_log._no_weight_decay = True
        # S4D's B = 1 and a random C (variance 1/n keeps the output scale independent of n)
        self.B = nn.Parameter(torch.ones(e, n))
        self.C = nn.Parameter(torch.randn(e, n) / math.sqrt(n))
        # Δ log-uniform in [dt_min, dt_max] per channel, stored as log Δ so it stays positive
        lo, hi = math.log(cfg.ssm.dt_min), math.log(cfg.ssm.dt_max)
        self.log_dt = nn.Parameter(torch.rand(e) * (hi - lo) + lo)
        self.log_dt._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(e))
        self.D._no_weight_decay = True

    # ---------------------------------------------------------------- the LTI SSM
    def _dt(self, dtype: torch.dtype) -> torch.Tensor:
        return torch.exp(self.log_dt.to(wide_dtype(dtype)))  # (e,)

    def _scan(self, x, z, state, want_state, seq_idx):
        """Input-independent Δ, B, C: a constant Δ broadcast over batch and time (a view, no copy), B, C (e, n).

        cfg.ssm.s4d_kernel "fft" convolves with the SSM's kernel (s4d_fft); packed sequences (seq_idx) always take
        the scan, which restarts at each boundary."""
        wide = wide_dtype(x.dtype)
        if self.cfg.ssm.s4d_kernel == "fft" and seq_idx is None:
            y, last = s4d_fft(x.to(wide), self._dt(x.dtype), self._A(), self.B.to(wide), self.C.to(wide),
                              self.D.to(wide), None if state is None else state.ssm_state, want_state)
            y = (y * torch.nn.functional.silu(z.to(wide))).to(x.dtype)
            return y, last
        b, e, l = x.shape
        dt = self._dt(x.dtype).to(x.dtype)[None, :, None].expand(b, e, l)
        out = selective_scan(
            x, dt, self._A(), self.B.to(wide), self.C.to(wide), self.D.to(wide), z=z,
            initial_state=None if state is None else state.ssm_state, return_last_state=want_state,
            seq_idx=seq_idx, backend=self.cfg.scan_backend,
        )
        return out if want_state else (out, None)

    def _scan_step(self, x, z, ssm_state):
        wide = ssm_state.dtype
        b, e = x.shape
        dt = self._dt(x.dtype).to(x.dtype)[None, :].expand(b, e)
        # per-channel B, C are e groups of one channel each: (b, g=e, n)
        B = self.B.to(wide)[None].expand(b, e, self.d_state)
        C = self.C.to(wide)[None].expand(b, e, self.d_state)
        return selective_state_update(ssm_state, x, dt, self._A().to(wide), B, C, self.D.to(wide), z=z,
                                      backend=self.cfg.scan_backend)


def _powers(dtA: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """exp(ΔA · j) for j in [start, stop): (e, n, stop - start)."""
    j = torch.arange(start, stop, device=dtA.device, dtype=dtA.dtype)
    return torch.exp(dtA[..., None] * j)


def s4d_fft(x, dt, A, B, C, D, initial_state=None, return_last_state=False, block: int = 8192):
    """The LTI SSM h_t = exp(ΔA) h_{t-1} + ΔB x_t, y_t = C·h_t + D x_t as one causal convolution (S4, Gu et al.
    2022, section 3.3: an LTI SSM is a convolution with the kernel K_j = C diag(exp(ΔA))^j ΔB), by FFT.

    x (b, e, l); dt, D (e,); A, B, C (e, n); initial_state (b, e, n) or None -> y (b, e, l), last state (b, e, n)
    or None. Same discretisation as the selective scan, so it equals the scan up to rounding. The Vandermonde
    powers exp(ΔA·j) are built `block` positions at a time, so memory stays O(e·n·block) besides the FFT's.
    """
    b, e, l = x.shape
    dtA = dt[:, None] * A  # (e, n), negative
    CB = C * B * dt[:, None]  # (e, n)
    K = torch.cat([torch.einsum("en,enj->ej", CB, _powers(dtA, s, min(l, s + block)))
                   for s in range(0, l, block)], dim=-1)  # (e, l)
    n_fft = 1 << (2 * l - 1).bit_length()  # linear (not circular) convolution, a power of two for speed
    y = torch.fft.irfft(torch.fft.rfft(x, n=n_fft) * torch.fft.rfft(K, n=n_fft), n=n_fft)[..., :l]
    y = y + D[:, None] * x
    if initial_state is not None:  # the carried state decays into every output: C exp(ΔA (t + 1)) h_0
        h0 = initial_state.to(x.dtype) * C  # (b, e, n)
        y = y + torch.cat([torch.einsum("ben,enj->bej", h0, _powers(dtA, s + 1, min(l, s + block) + 1))
                           for s in range(0, l, block)], dim=-1)
    if not return_last_state:
        return y, None
    # h_{l-1} = Σ_j exp(ΔA (l - 1 - j)) ΔB x_j (+ exp(ΔA l) h_0)
    last = sum(torch.einsum("bej,enj->ben", x[..., s:min(l, s + block)],
                            _powers(dtA, l - min(l, s + block), l - s).flip(-1)) for s in range(0, l, block))
    last = last * (B * dt[:, None])
    if initial_state is not None:
        last = last + torch.exp(dtA * l) * initial_state.to(x.dtype)
    return y, last


__all__ = ["A_INITS", "S4D", "s4d_fft"]

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
        d, e, n, k = cfg.d_model, cfg.d_inner, cfg.d_state, cfg.d_conv
        self.d_inner, self.d_state, self.d_conv = e, n, k

        self.in_proj = nn.Linear(d, 2 * e, bias=cfg.bias)
        self.conv1d = nn.Conv1d(e, e, kernel_size=k, groups=e, padding=k - 1, bias=cfg.conv_bias)
        self.out_proj = nn.Linear(e, d, bias=cfg.bias)

        # A = -exp(A_log) stays negative (stable) whatever the optimiser does; S4D-Real: A_n = -(n + 1).
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32).repeat(e, 1)))  # (e, n)
        self.A_log._no_weight_decay = True
        # S4D's B = 1 and a random C (variance 1/n keeps the output scale independent of n)
        self.B = nn.Parameter(torch.ones(e, n))
        self.C = nn.Parameter(torch.randn(e, n) / math.sqrt(n))
        # Δ log-uniform in [dt_min, dt_max] per channel, stored as log Δ so it stays positive
        lo, hi = math.log(cfg.dt_min), math.log(cfg.dt_max)
        self.log_dt = nn.Parameter(torch.rand(e) * (hi - lo) + lo)
        self.log_dt._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(e))
        self.D._no_weight_decay = True

    # ---------------------------------------------------------------- the LTI SSM
    def _dt(self, dtype: torch.dtype) -> torch.Tensor:
        return torch.exp(self.log_dt.to(wide_dtype(dtype)))  # (e,)

    def _scan(self, x, z, state, want_state, seq_idx):
        """Input-independent Δ, B, C: a constant Δ broadcast over batch and time (a view, no copy), B, C (e, n)."""
        wide = wide_dtype(x.dtype)
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
        return selective_state_update(ssm_state, x, dt, self._A().to(wide), B, C, self.D.to(wide), z=z)


__all__ = ["A_INITS", "S4D"]

"""The Mamba-1 mixer: gated selective SSM block (Gu & Dao 2023, section 3.4 and Figure 3).

Dimension names used in this file:
    b batch · l sequence length · d model width · e inner width (expand·d) · n state size · k conv width
    r dt_rank (rank of the Δ projection)

    x, z   = in_proj(u)                       two branches of width e
    x      = silu(causal_conv1d(x))           short depthwise convolution, width k
    Δ, B, C = x_proj(x)                       the selection mechanism: input-dependent Δ (rank r), B, C (section 3.2)
    Δ      = softplus(dt_proj(Δ))             per-channel step size (section 3.6, "Δ ... via a low-rank projection")
    y      = selective_scan(x, Δ, A, B, C, D) · silu(z)
    out    = out_proj(y)

Parameter names and shapes follow mamba_ssm's `Mamba` so its checkpoints load by name (conv1d.weight is (e, 1, k)).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqssm.config import ModelConfig
from seqssm.kernels import selective_scan, selective_state_update
from seqssm.layers.gated_ssm import GatedSSM, wide_dtype
from seqssm.registry import LAYERS


@LAYERS.register("mamba")
class Mamba(GatedSSM):
    def __init__(self, cfg: ModelConfig, layer_idx: int = 0):
        super().__init__()
        self.cfg = cfg
        self.layer_idx = layer_idx
        d, e, n, k, r = cfg.d_model, cfg.d_inner, cfg.ssm.d_state, cfg.ssm.d_conv, cfg.resolved_dt_rank
        self.d_inner, self.d_state, self.d_conv, self.dt_rank = e, n, k, r

        self.in_proj = nn.Linear(d, 2 * e, bias=cfg.bias)
        # Depthwise conv stored as nn.Conv1d (weight (e, 1, k)) for mamba_ssm's default init and names; the
        # computation goes through seqssm.kernels.causal_conv1d, which takes the (e, k) view.
        self.conv1d = nn.Conv1d(e, e, kernel_size=k, groups=e, padding=k - 1, bias=cfg.ssm.conv_bias)
        self.x_proj = nn.Linear(e, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, e, bias=True)
        self.out_proj = nn.Linear(e, d, bias=cfg.bias)

        self._init_dt(cfg)
        # S4D-real initialisation A_n = -(n + 1) (section 3.6 / Gu et al. 2022), stored as log(-A) so that
        # A = -exp(A_log) stays negative (a decaying, stable state) whatever the optimiser does.
        a = torch.arange(1, n + 1, dtype=torch.float32).repeat(e, 1)  # (e, n)
        self.A_log = nn.Parameter(torch.log(a))
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(e))  # skip connection y += D·x
        self.D._no_weight_decay = True

    @torch.no_grad()
    def _init_dt(self, cfg: ModelConfig) -> None:
        """Δ = softplus(W Δ_r + b) starts in [dt_min, dt_max] (log-uniform), as in mamba_ssm (section 3.6)."""
        std = self.dt_rank**-0.5 * cfg.ssm.dt_scale
        if cfg.ssm.dt_init == "constant":
            nn.init.constant_(self.dt_proj.weight, std)
        else:
            nn.init.uniform_(self.dt_proj.weight, -std, std)
        lo, hi = math.log(cfg.ssm.dt_min), math.log(cfg.ssm.dt_max)
        dt = torch.exp(torch.rand(self.d_inner) * (hi - lo) + lo).clamp(min=cfg.ssm.dt_init_floor)
        # Inverse of softplus: softplus(dt + log(1 - exp(-dt))) = dt.
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.dt_proj.bias._no_reinit = True  # the model-wide init must not zero this bias

    # ---------------------------------------------------------------- the selective SSM (section 3.2)
    def _split_xproj(self, x_dbl: torch.Tensor):
        return torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)

    def _scan(self, x, z, state, want_state, seq_idx):
        """Δ, B, C from the input itself (the selection mechanism), then the fused scan with D skip and z gate."""
        dt, B, C = self._split_xproj(self.x_proj(x.transpose(1, 2)))  # (b, l, r), (b, l, n), (b, l, n)
        dt = F.linear(dt, self.dt_proj.weight).transpose(1, 2)  # (b, e, l); bias is added inside the scan
        wide = wide_dtype(x.dtype)
        out = selective_scan(
            x, dt, self._A(), B.transpose(1, 2), C.transpose(1, 2), self.D.to(wide), z=z,  # B, C (b, n, l)
            delta_bias=self.dt_proj.bias.to(wide), delta_softplus=True,
            initial_state=None if state is None else state.ssm_state, return_last_state=want_state,
            seq_idx=seq_idx, backend=self.cfg.scan_backend,
        )
        return out if want_state else (out, None)

    def _scan_step(self, x, z, ssm_state):
        dt, B, C = self._split_xproj(self.x_proj(x))  # (b, r), (b, n), (b, n)
        dt = F.linear(dt, self.dt_proj.weight)  # (b, e)
        wide = ssm_state.dtype
        return selective_state_update(
            ssm_state, x, dt, self._A().to(wide), B, C, self.D.to(wide), z=z,
            dt_bias=self.dt_proj.bias.to(wide), dt_softplus=True, backend=self.cfg.scan_backend,
        )


__all__ = ["Mamba"]

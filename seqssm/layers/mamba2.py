"""The Mamba-2 mixer: the SSD layer in the parallel Mamba-2 block (Dao & Gu 2024, arXiv 2405.21060, section 7).

Dimension names used in this file:
    b batch · l sequence length · d model width · e inner width (expand·d) · h heads (e / p) · p head dim
    n state size · g groups of B/C · k conv width · cx conv channels (e + 2·g·n)

    z, xBC, dt = in_proj(u)                   one projection at the block's start (section 7.1, "parallel
                                              parameter projections"): z (e), x (e), B (g·n), C (g·n), dt (h)
    xBC        = silu(causal_conv1d(xBC))     the short convolution runs on x, B and C together
    Δ          = softplus(dt + dt_bias)       one step size per head
    y          = SSD(x, Δ, A, B, C, D)        scalar A per head (section 3), seqssm.kernels.ssd_scan
    out        = out_proj(RMSNorm(y · silu(z)))   the extra normalisation before the output (section 7.3)

Parameter names follow mamba_ssm's `Mamba2` (in_proj, conv1d, dt_bias, A_log, D, norm, out_proj). The norm here
normalises over the whole inner width (mamba_ssm's ngroups-wise norm exists for tensor parallelism only).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqssm.config import ConfigError, ModelConfig
from seqssm.kernels import causal_conv1d, causal_conv1d_update, ssd_scan, ssd_state_update
from seqssm.layers.norm import GatedRMSNorm
from seqssm.layers.gated_ssm import wide_dtype
from seqssm.registry import LAYERS
from seqssm.state import LayerState


@LAYERS.register("mamba2")
class Mamba2(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int = 0):
        super().__init__()
        self.cfg, self.layer_idx = cfg, layer_idx
        d, e, n, k = cfg.d_model, cfg.d_inner, cfg.ssm.d_state, cfg.ssm.d_conv
        p, g = cfg.mamba2.headdim, cfg.mamba2.ngroups
        if e % p:
            raise ConfigError(f"mamba2_headdim: {p} does not divide the inner width expand * d_model = {e}")
        h = e // p
        if h % g:
            raise ConfigError(f"ngroups: {g} groups do not divide the {h} heads (d_inner / mamba2_headdim)")
        self.d_inner, self.d_state, self.d_conv, self.headdim, self.nheads, self.ngroups = e, n, k, p, h, g
        self.conv_dim = e + 2 * g * n

        self.in_proj = nn.Linear(d, 2 * e + 2 * g * n + h, bias=cfg.bias)
        self.conv1d = nn.Conv1d(
            self.conv_dim, self.conv_dim, kernel_size=k, groups=self.conv_dim, padding=k - 1, bias=cfg.ssm.conv_bias
        )
        # Δ = softplus(dt + dt_bias) starts log-uniform in [dt_min, dt_max] per head (as Mamba-1, section 3.6)
        lo, hi = math.log(cfg.ssm.dt_min), math.log(cfg.ssm.dt_max)
        dt = torch.exp(torch.rand(h) * (hi - lo) + lo).clamp(min=cfg.ssm.dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.dt_bias._no_weight_decay = True
        # A = -exp(A_log) < 0 per head, A in [-16, -1] as mamba_ssm's default A_init_range
        self.A_log = nn.Parameter(torch.log(torch.empty(h).uniform_(1, 16)))
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(h))
        self.D._no_weight_decay = True
        self.norm = GatedRMSNorm(e, eps=cfg.norm_eps)
        self.out_proj = nn.Linear(e, d, bias=cfg.bias)

    def _conv_weight(self) -> torch.Tensor:
        return self.conv1d.weight[:, 0, :]  # (cx, 1, k) -> (cx, k)

    def _A(self) -> torch.Tensor:
        return -torch.exp(self.A_log.to(wide_dtype(self.A_log.dtype)))  # (h,)

    def _split(self, zxbcdt: torch.Tensor):
        e, gn = self.d_inner, self.ngroups * self.d_state
        return torch.split(zxbcdt, [e, e + 2 * gn, self.nheads], dim=-1)  # z, xBC, dt

    def _dt(self, dt: torch.Tensor) -> torch.Tensor:
        wide = wide_dtype(dt.dtype)
        return F.softplus(dt.to(wide) + self.dt_bias.to(wide))

    # ---------------------------------------------------------------- parallel (training / prefill) mode
    causal = True

    def forward(self, hidden: torch.Tensor, state: LayerState | None = None, return_state: bool = False,
                seq_idx: torch.Tensor | None = None):
        """hidden (b, l, d) -> (out (b, l, d), new LayerState or None); `state` continues a previous segment."""
        if seq_idx is not None:
            raise ValueError("seq_idx: packed sequences are not supported by the mamba2 layer yet")
        want_state = state is not None or return_state
        b, l, _ = hidden.shape
        z, xBC, dt = self._split(self.in_proj(hidden))
        conv_out = causal_conv1d(
            xBC.transpose(1, 2),
            self._conv_weight(),
            self.conv1d.bias,
            activation="silu",
            initial_state=None if state is None else state.conv_state,
            return_final_state=want_state,
            backend=self.cfg.scan_backend,
        )
        xBC, conv_state = conv_out if want_state else (conv_out, None)
        e, gn = self.d_inner, self.ngroups * self.d_state
        x, B, C = torch.split(xBC.transpose(1, 2), [e, gn, gn], dim=-1)
        gshape = (b, l, self.ngroups, self.d_state)
        scan_out = ssd_scan(
            x.reshape(b, l, self.nheads, self.headdim),
            self._dt(dt),
            self._A(),
            B.reshape(gshape),
            C.reshape(gshape),
            self.D.to(wide_dtype(x.dtype)),
            initial_state=None if state is None else state.ssm_state,
            return_final_state=want_state,
            backend=self.cfg.scan_backend,
        )
        y, ssm_state = scan_out if want_state else (scan_out, None)
        out = self.out_proj(self.norm(y.reshape(b, l, e), z))
        return out, (LayerState(conv_state, ssm_state) if want_state else None)

    # ---------------------------------------------------------------- recurrent (decoding) mode
    def allocate_state(self, batch_size: int, device=None, dtype=None) -> LayerState:
        """Zero state: conv window (b, cx, k-1) in the model dtype, SSM state (b, h, p, n) float32 (or 64)."""
        dtype = dtype or self.in_proj.weight.dtype
        device = device or self.in_proj.weight.device
        conv = torch.zeros(batch_size, self.conv_dim, self.d_conv - 1, device=device, dtype=dtype)
        ssm = torch.zeros(batch_size, self.nheads, self.headdim, self.d_state, device=device, dtype=wide_dtype(dtype))
        return LayerState(conv, ssm)

    def step(self, hidden: torch.Tensor, state: LayerState) -> torch.Tensor:
        """One token: hidden (b, d) -> (b, d); `state` is updated in place, O(1) in the context length."""
        b = hidden.shape[0]
        z, xBC, dt = self._split(self.in_proj(hidden))
        xBC = causal_conv1d_update(
            xBC, state.conv_state, self._conv_weight().to(xBC.dtype), self.conv1d.bias, activation="silu",
            backend=self.cfg.scan_backend,
        )
        e, gn = self.d_inner, self.ngroups * self.d_state
        x, B, C = torch.split(xBC, [e, gn, gn], dim=-1)
        gshape = (b, self.ngroups, self.d_state)
        y = ssd_state_update(
            state.ssm_state,
            x.reshape(b, self.nheads, self.headdim),
            self._dt(dt),
            self._A(),
            B.reshape(gshape),
            C.reshape(gshape),
            self.D.to(state.ssm_state.dtype),
            backend=self.cfg.scan_backend,
        )
        return self.out_proj(self.norm(y.reshape(b, e), z))


__all__ = ["Mamba2"]

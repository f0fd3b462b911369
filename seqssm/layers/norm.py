"""RMSNorm (Zhang & Sennrich 2019), the pre-norm of every Mamba block and the final norm (paper section E.2).

Dimension names: d model width.
"""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight, computed in at least float32 and returned in x's dtype."""

    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Reduced precision inputs are normalised in float32 (as mamba_ssm's rms_norm_ref); float64 stays float64.
        wide = torch.promote_types(x.dtype, torch.float32)
        xw = x.to(wide)
        y = xw * torch.rsqrt(xw.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.to(wide)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class GatedRMSNorm(RMSNorm):
    """y = RMSNorm(x · silu(z)): the gated norm before Mamba-2's output projection (Dao & Gu 2024, section 7.3),
    mamba_ssm's RMSNormGated with norm_before_gate=False, normalising over the whole inner width."""

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        wide = torch.promote_types(x.dtype, torch.float32)
        gated = x.to(wide) * torch.nn.functional.silu(z.to(wide))
        return super().forward(gated).to(x.dtype)


def make_norm(d: int, eps: float, rms_norm: bool) -> nn.Module:
    """RMSNorm, or LayerNorm when rms_norm is False (mamba_ssm's choice between the two)."""
    return RMSNorm(d, eps) if rms_norm else nn.LayerNorm(d, eps=eps)


__all__ = ["GatedRMSNorm", "RMSNorm", "make_norm"]

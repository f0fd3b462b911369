"""The penalty on forgetting of `train.dt_penalty` (docs/synthetic-tasks.md, "A penalty on forgetting").

Dimension names: b batch · l positions · e inner channels (Mamba) or h heads (Mamba-2) · n state size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from seqssm.layers.mamba import Mamba
from seqssm.layers.mamba2 import Mamba2
from seqssm.pipelines.jobconfig import UsageError


class DecayPenalty:
    """train.dt_penalty: during each forward pass, collect from every Mamba and Mamba-2 layer the log of its
    per-step decay rate on the slowest state, log(Δ_t min |A|) (b, l, channels or heads), and return the mean of
    its excess over log(dt_penalty_floor). The ZOH decay exp(Δ A) (section 2, eq. 4) forgets in proportion to
    Δ|A|, so a model that must carry a token across 2^20 positions needs Δ|A| ~ 1e-7 on the tokens in between; the
    length-256 loss barely asks for that once it is near zero. The penalty is in log space so it keeps pulling at
    a constant rate (Adam) however small Δ gets, and it is averaged over positions, so one large Δ where a token
    is written costs little. Hooks on the input projections, so the model code knows nothing of it."""

    def __init__(self, model, floor: float):
        self.terms: list[torch.Tensor] = []
        self.log_floor = math.log(floor)
        self.handles = []
        for m in model.modules():
            if isinstance(m, Mamba):  # Δ pre-activation: dt_proj(x_proj(x)[:dt_rank]); A (e, n)
                self.handles.append(m.x_proj.register_forward_hook(self._hook(
                    lambda out, m=m: F.linear(out[..., :m.dt_rank], m.dt_proj.weight) + m.dt_proj.bias,
                    lambda m=m: m.A_log.min(dim=-1).values)))
            elif isinstance(m, Mamba2):  # Δ pre-activation: in_proj(x)'s last h columns + dt_bias; A (h,)
                self.handles.append(m.in_proj.register_forward_hook(self._hook(
                    lambda out, m=m: out[..., -m.nheads:] + m.dt_bias, lambda m=m: m.A_log)))
        if not self.handles:
            raise UsageError("train.dt_penalty: the model has no Mamba or Mamba-2 layer to penalise")

    def _hook(self, pre_of, log_a_min):
        def hook(module, inputs, out):
            pre = pre_of(out)  # (b, l, channels)
            # log softplus(pre), stable: softplus(p) ~ exp(p) for p << 0, so its log is p there
            log_dt = torch.where(pre < -15, pre, torch.log(F.softplus(pre.clamp(min=-15))))
            self.terms.append(F.relu(log_dt + log_a_min() - self.log_floor).mean())  # |A| = exp(A_log)
        return hook

    def take(self) -> torch.Tensor:
        out = torch.stack(self.terms).mean()
        self.terms.clear()
        return out

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


__all__ = ["DecayPenalty"]

"""The shell of the Mamba block (Gu & Dao 2023, section 3.4, Figure 3), shared by the selective Mamba mixer and the
LTI S4D mixer: they differ only in where Δ, B and C come from.

Dimension names: b batch · l sequence length · d model width · e inner width · n state size · k conv width.

    x, z = in_proj(u)                 two branches of width e
    x    = silu(causal_conv1d(x))     short depthwise convolution
    y    = SSM(x) · silu(z)           the subclass's _scan (parallel) or _scan_step (one token)
    out  = out_proj(y)

The configured cfg.scan_backend (one name of seqssm.kernels.BACKENDS) reaches every kernel call: the conv here and
the subclass's scan and step.

Subclasses create in_proj, conv1d (nn.Conv1d, weight (e, 1, k)), out_proj, A_log (e, n), D (e,) and set cfg,
d_inner, d_state, d_conv; this class holds no parameters of its own, so their names and init stay each subclass's.
"""

from __future__ import annotations

import torch
from torch import nn

from seqssm.kernels import causal_conv1d, causal_conv1d_update
from seqssm.state import LayerState


def wide_dtype(dtype: torch.dtype) -> torch.dtype:
    """The SSM runs in float32 for half-precision models and in float64 for float64 models."""
    return torch.promote_types(dtype, torch.float32)


class GatedSSM(nn.Module):
    causal = True  # an output never depends on later inputs (so right padding cannot reach real tokens)

    # ---------------------------------------------------------------- what a subclass provides
    def _scan(self, x, z, state: LayerState | None, want_state: bool, seq_idx):
        """x, z (b, e, l) -> (y (b, e, l) gated by z, last SSM state (b, e, n) or None)."""
        raise NotImplementedError

    def _scan_step(self, x, z, ssm_state) -> torch.Tensor:
        """x, z (b, e) -> y (b, e) gated by z; ssm_state (b, e, n) updated in place."""
        raise NotImplementedError

    # ---------------------------------------------------------------- parameters in kernel layout
    def _conv_weight(self) -> torch.Tensor:
        return self.conv1d.weight[:, 0, :]  # (e, 1, k) -> (e, k)

    def _A(self) -> torch.Tensor:
        return -torch.exp(self.A_log.to(wide_dtype(self.A_log.dtype)))  # (e, n), negative: a decaying state

    # ---------------------------------------------------------------- parallel (training / prefill) mode
    def forward(self, hidden: torch.Tensor, state: LayerState | None = None, return_state: bool = False,
                seq_idx: torch.Tensor | None = None):
        """hidden (b, l, d) -> (out (b, l, d), new LayerState or None).

        `state` (from a previous segment) seeds the conv window and the SSM state; a new state is returned when a
        state was given or `return_state` is set, so that segments scanned in turn equal one pass.
        seq_idx (b, l): packed sequences; conv and scan restart where it changes (nothing leaks across).
        """
        want_state = state is not None or return_state
        x, z = self.in_proj(hidden).transpose(1, 2).chunk(2, dim=1)  # (b, e, l) each
        conv_out = causal_conv1d(
            x, self._conv_weight(), self.conv1d.bias, activation="silu",
            initial_state=None if state is None else state.conv_state, return_final_state=want_state,
            seq_idx=seq_idx, backend=self.cfg.scan_backend,
        )
        x, conv_state = conv_out if want_state else (conv_out, None)
        y, ssm_state = self._scan(x, z, state, want_state, seq_idx)
        out = self.out_proj(y.transpose(1, 2))  # (b, l, d)
        return out, (LayerState(conv_state, ssm_state) if want_state else None)

    # ---------------------------------------------------------------- recurrent (decoding) mode
    def allocate_state(self, batch_size: int, device=None, dtype=None) -> LayerState:
        """Zero state: conv window in the model dtype, SSM state in float32 (float64 for a float64 model)."""
        dtype = dtype or self.in_proj.weight.dtype
        device = device or self.in_proj.weight.device
        conv = torch.zeros(batch_size, self.d_inner, self.d_conv - 1, device=device, dtype=dtype)
        ssm = torch.zeros(batch_size, self.d_inner, self.d_state, device=device, dtype=wide_dtype(dtype))
        return LayerState(conv, ssm)

    def step(self, hidden: torch.Tensor, state: LayerState) -> torch.Tensor:
        """One token: hidden (b, d) -> (b, d); `state` is updated in place, O(1) in the context length."""
        x, z = self.in_proj(hidden).chunk(2, dim=-1)  # (b, e) each
        x = causal_conv1d_update(
            x, state.conv_state, self._conv_weight().to(x.dtype), self.conv1d.bias, activation="silu",
            backend=self.cfg.scan_backend,
        )
        return self.out_proj(self._scan_step(x, z, state.ssm_state))

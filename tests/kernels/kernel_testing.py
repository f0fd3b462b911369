"""Helpers shared by the kernel tests."""

import torch


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    """Relative error of a whole tensor, ||got - want|| / ||want||, in float64; NaN anywhere gives inf."""
    got, want = got.double(), want.double()
    if not torch.isfinite(got).all():
        return float("inf")
    return ((got - want).norm() / want.norm().clamp_min(1e-300)).item()

"""Helpers shared by the kernel tests: random inputs, running a backend with gradients, per-tensor errors."""

import torch

from seqssm.kernels import selective_scan


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    """Relative error of a whole tensor, ||got - want|| / ||want||, in float64; NaN anywhere gives inf."""
    got, want = got.double(), want.double()
    if not torch.isfinite(got).all():
        return float("inf")
    return ((got - want).norm() / want.norm().clamp_min(1e-300)).item()


FLAGS = ("D", "z", "delta_bias", "delta_softplus", "initial_state", "return_last_state")


def make_inputs(b, d, l, n, layout, flags, dtype=torch.float64, dt_scale=0.5, a_max=2.0):
    """Random inputs in float64 (leaf tensors); `layout` names the B/C layouts, `flags` the options that are on."""
    g = 2 if layout == "grouped" else 1

    def bc(kind):
        if kind == "ti":
            return torch.randn(d, n, dtype=dtype)
        if kind == "grouped":
            return torch.randn(b, g, n, l, dtype=dtype)
        return torch.randn(b, n, l, dtype=dtype)

    kind_b, kind_c = {"var": ("var", "var"), "grouped": ("grouped", "grouped"), "ti": ("ti", "ti"),
                      "mixed": ("var", "ti")}[layout]
    x = dict(
        u=torch.randn(b, d, l, dtype=dtype),
        delta=torch.randn(b, d, l, dtype=dtype) * dt_scale if "delta_softplus" in flags
        else torch.rand(b, d, l, dtype=dtype) * dt_scale,
        A=-torch.rand(d, n, dtype=dtype) * a_max,
        B=bc(kind_b),
        C=bc(kind_c),
    )
    if "D" in flags:
        x["D"] = torch.randn(d, dtype=dtype)
    if "z" in flags:
        x["z"] = torch.randn(b, d, l, dtype=dtype)
    if "delta_bias" in flags:
        x["delta_bias"] = torch.randn(d, dtype=dtype) * 0.5
    if "initial_state" in flags:
        x["initial_state"] = torch.randn(b, d, n, dtype=dtype)
    for t in x.values():
        t.requires_grad_(True)
    return x


def run(inputs, flags, backend, dtype, **kw):
    """Outputs and the gradients of a random projection of them, for every input; kw go to selective_scan."""
    cast = {k: v.detach().to(dtype if k != "A" and k != "initial_state" else torch.float32
                              if dtype != torch.float64 else torch.float64).requires_grad_(True)
            for k, v in inputs.items()}
    res = selective_scan(**cast, delta_softplus="delta_softplus" in flags,
                         return_last_state="return_last_state" in flags, backend=backend, **kw)
    outs = list(res) if isinstance(res, tuple) else [res]
    gen = torch.Generator().manual_seed(1)
    loss = sum((o.double() * torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.device)).sum()
               for o in outs)
    grads = torch.autograd.grad(loss, list(cast.values()))
    return outs, dict(zip(cast.keys(), grads))


def assert_close(got, want, tol):
    (outs_g, grads_g), (outs_w, grads_w) = got, want
    errors = {f"out{i}": rel_err(a, b) for i, (a, b) in enumerate(zip(outs_g, outs_w))}
    errors.update({f"d{k}": rel_err(grads_g[k], grads_w[k]) for k in grads_w})
    bad = {k: f"{v:.2e}" for k, v in errors.items() if not v <= tol}
    assert not bad, f"relative error above {tol:g}: {bad}"

"""Tiny models of every block kind, run with a chosen backend: outputs, every parameter gradient and (for causal
models) step-by-step decoding. Shared by tests/core/test_backends.py (reference, chunked, auto on CPU) and
tests/core/interpreter/triton_model_cases.py (triton under the Triton interpreter, in a fresh process).

Dimension names: b batch · l length · v vocabulary.
"""

from __future__ import annotations

import torch

from seqssm import ModelConfig, build_model

COMP = [3, 2, 1, 0, 4, 5, 6, 7]  # a complement map over 8 tokens (A<->T, C<->G, the rest to themselves)

# name -> ModelConfig overrides; every block kind whose ops take the configured backend
MODELS = {
    "mamba": dict(layer="mamba"),
    "mamba2": dict(layer="mamba2", mamba2_headdim=8),
    "s4d-scan": dict(layer="s4d", s4d_kernel="scan"),
    "bimamba": dict(layer="bimamba", head="classify", num_classes=3),
    "caduceus-ps": dict(layer="mamba", head="classify", num_classes=3, rc_equivariant=True, rc_complement=COMP),
}
CAUSAL = ("mamba", "mamba2", "s4d-scan")  # the models that stream segments and decode step by step
B, L = 2, 21


def config(model: str, backend: str) -> ModelConfig:
    base = dict(d_model=16, n_layer=2, vocab_size=8, d_state=4, d_conv=4, expand=2, scan_backend=backend)
    return ModelConfig.from_flat(**(base | MODELS[model]))


def build(model: str, backend: str, dtype: torch.dtype) -> torch.nn.Module:
    """The same weights for every backend: seeded construction, then the dtype."""
    torch.manual_seed(0)
    return build_model(config(model, backend)).to(dtype)


def inputs(model: str) -> dict:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 8, (B, L), generator=g)
    if model in CAUSAL:
        return {"input_ids": ids}
    mask = torch.ones(B, L, dtype=torch.long)
    mask[1, L - 5 :] = 0  # right padding in one row: the bidirectional mixers restart at it (seq_idx)
    return {"input_ids": ids, "attention_mask": mask}


def outputs(model: str, backend: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Named results of one model and backend: the output, the gradient of every parameter of a fixed random
    projection of it, and for causal models the output of streaming two segments and of decoding token by token."""
    net = build(model, backend, dtype)
    x = inputs(model)
    out = net(**x) if model in CAUSAL else net.hidden_states(**x)
    g = torch.Generator().manual_seed(2)
    weights = torch.randn(out.shape, generator=g, dtype=torch.float64)
    loss = (out.double() * weights).sum()
    named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)  # a classifier's head is unused
    res = {"output": out.detach()} | {f"grad:{n}": gr for (n, _), gr in zip(named, grads) if gr is not None}
    if model in CAUSAL:
        ids = x["input_ids"]
        with torch.no_grad():
            s = 9
            first, state = net(ids[:, :s], return_state=True)
            second, _ = net(ids[:, s:], state=state, return_state=True)
            res["streamed"] = torch.cat([first, second], 1)
            state = net.allocate_state(B)
            res["decoded"] = torch.stack([net.step(ids[:, t], state) for t in range(L)], 1)
    return res


__all__ = ["CAUSAL", "MODELS", "build", "config", "inputs", "outputs"]

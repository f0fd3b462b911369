"""Independent numerics check: our MambaLM against mambapy (a separate pure-PyTorch Mamba-1), same weights.

mambapy's parameter names are mamba_ssm's with "backbone." replaced, so its state dict goes through the
mamba_ssm importer too; this checks the importer's mapping and the whole block (conv, Δ, scan, gate, norms).
"""

from __future__ import annotations

import pytest
import torch

from seqssm import load_mamba_ssm_state_dict

mambapy_mamba = pytest.importorskip("mambapy.mamba")


class RefLM(torch.nn.Module):
    """mambapy's LM without its einops-dependent module: embedding, Mamba layers, final RMSNorm, head."""

    def __init__(self, cfg, vocab_size):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab_size, cfg.d_model)
        self.mamba = mambapy_mamba.Mamba(cfg)
        self.norm_f = mambapy_mamba.RMSNorm(cfg.d_model, cfg.rms_norm_eps)
        self.lm_head = torch.nn.Linear(cfg.d_model, vocab_size, bias=False)

    def forward(self, ids):
        return self.lm_head(self.norm_f(self.mamba(self.embedding(ids))))


def to_mamba_ssm_names(sd):
    out = {}
    for k, v in sd.items():
        if k in ("embedding.weight", "norm_f.weight"):
            out["backbone." + k] = v
        elif k.startswith("mamba."):
            out["backbone." + k[len("mamba."):]] = v
        else:
            out[k] = v
    return out


@pytest.mark.parametrize("d_model, d_state, d_conv", [(16, 4, 4), (24, 8, 3)], ids=["d16-n4-k4", "d24-n8-k3"])
def test_logits_match_mambapy(make_cfg, d_model, d_state, d_conv):
    ref_cfg = mambapy_mamba.MambaConfig(d_model=d_model, n_layers=2, d_state=d_state, d_conv=d_conv, pscan=False)
    ref = RefLM(ref_cfg, vocab_size=16).double()
    with torch.no_grad():  # make D, A and the norms non-trivial so every term is exercised
        for name, p in ref.named_parameters():
            if name.endswith(("norm.weight", "norm_f.weight", ".D")):
                p.copy_(torch.rand_like(p) + 0.5)
            if name.endswith("A_log"):
                p.add_(torch.randn_like(p) * 0.1)
    cfg = make_cfg(d_model=d_model, d_state=d_state, d_conv=d_conv, vocab_size=16, tie_embeddings=False)
    ours = load_mamba_ssm_state_dict(to_mamba_ssm_names(ref.state_dict()), cfg).double()
    ids = torch.randint(0, 16, (2, 20))
    with torch.no_grad():
        want = ref(ids)
        got = ours(ids)
    # mambapy forms A = -exp(A_log.float()) in float32 even in a float64 model, so agreement is bounded by
    # float32 rounding of A (~1e-7 here); a wrong term (D, Δ bias, gate, conv tap order) differs by >1e-3.
    assert torch.allclose(got, want, atol=1e-6, rtol=0)
    with torch.no_grad():
        ours.backbone.layers[0].mixer.D.zero_()
        assert (ours(ids) - want).abs().max() > 1e-3

"""Recurrent decoding equals the parallel forward; sampling filters and seeded reproducibility."""

from __future__ import annotations

import pytest
import torch

from seqssm import MambaLM
from seqssm.generation import filter_logits, sample_next


@pytest.mark.parametrize(
    "dtype, atol, rtol", [(torch.float64, 1e-10, 0.0), (torch.float32, 1e-5, 1e-4)], ids=["float64", "float32"]
)
@pytest.mark.parametrize("prefill", [0, 1, 9], ids=["no-prefill", "prefill-1", "prefill-9"])
def test_step_logits_equal_parallel(make_cfg, dtype, atol, rtol, prefill):
    model = MambaLM(make_cfg()).to(dtype)
    ids = torch.randint(0, 13, (3, 24))
    full = model(ids)
    if prefill:
        logits, state = model(ids[:, :prefill], return_state=True)
        stepped = [logits]
    else:
        state, stepped = model.allocate_state(3), []
    for t in range(prefill, 24):
        stepped.append(model.step(ids[:, t], state).unsqueeze(1))
    assert torch.allclose(torch.cat(stepped, 1), full, atol=atol, rtol=rtol)


def test_generate_is_seeded_and_shaped(cfg):
    model = MambaLM(cfg)
    prompt = torch.randint(0, 13, (2, 5))
    a = model.generate(prompt, 12, temperature=1.0, seed=3)
    b = model.generate(prompt, 12, temperature=1.0, seed=3)
    assert a.shape == (2, 17) and torch.equal(a[:, :5], prompt) and torch.equal(a, b)
    assert int(a.min()) >= 0 and int(a.max()) < 13
    others = [model.generate(prompt, 12, temperature=1.0, seed=s) for s in (4, 5, 6)]
    assert any(not torch.equal(a, o) for o in others)


def test_greedy_follows_argmax_of_forward(cfg):
    model = MambaLM(cfg).double()
    prompt = torch.randint(0, 13, (2, 4))
    out = model.generate(prompt, 6, temperature=0)
    logits = model(out)
    # every generated token is the argmax of the logits at the position before it
    assert torch.equal(out[:, 4:], logits[:, 3:-1].argmax(-1))


def test_zero_new_tokens_returns_prompt(cfg):
    prompt = torch.randint(0, 13, (1, 3))
    assert torch.equal(MambaLM(cfg).generate(prompt, 0), prompt)


def test_top_k_and_top_p_filters():
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    k2 = filter_logits(logits, top_k=2)
    assert torch.isfinite(k2).tolist() == [[True, True, False, False, False]]
    p = filter_logits(logits, top_p=0.8)  # 0.5 + 0.2 < 0.8, + 0.15 reaches it
    assert torch.isfinite(p).tolist() == [[True, True, True, False, False]]
    tiny = filter_logits(logits, top_p=0.01)  # the most likely token is always kept
    assert torch.isfinite(tiny).tolist() == [[True, False, False, False, False]]
    shuffled = logits[:, [3, 0, 4, 2, 1]]
    assert torch.isfinite(filter_logits(shuffled, top_p=0.8)).tolist() == [[False, True, False, True, True]]
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_next(logits.expand(64, 5), 1.0, top_k=2, generator=g) for _ in range(4)])
    assert set(draws.unique().tolist()) == {0, 1}


@pytest.mark.parametrize(
    "kwargs, name",
    [({"max_new_tokens": -1}, "max_new_tokens"), ({"temperature": -0.5}, "temperature"),
     ({"top_k": -2}, "top_k"), ({"top_p": 0.0}, "top_p")],
    ids=["neg-tokens", "neg-temperature", "neg-top-k", "zero-top-p"],
)
def test_generate_argument_errors(cfg, kwargs, name):
    args = {"max_new_tokens": 2, **kwargs}
    with pytest.raises(ValueError, match=name):
        MambaLM(cfg).generate(torch.zeros(1, 2, dtype=torch.long), **args)


def test_on_step_hook_sees_every_token_and_its_logits(cfg):
    """The per-step hook (used by the audio job for likelihoods and timing) changes nothing and sees, for each
    generated token, the logits it was drawn from: their log-softmax summed equals one parallel pass's score."""
    model = MambaLM(cfg).double().eval()
    prompt = torch.randint(0, 13, (2, 5))
    seen, loglik = [], torch.zeros(2, dtype=torch.float64)

    def hook(i, token, logits):
        seen.append(i)
        loglik.add_(torch.log_softmax(logits, -1).gather(1, token[:, None])[:, 0])

    out = model.generate(prompt, 12, temperature=1.0, seed=4, on_step=hook)
    assert torch.equal(out, model.generate(prompt, 12, temperature=1.0, seed=4))
    assert seen == list(range(12))
    with torch.no_grad():
        scores = torch.log_softmax(model(out[:, :-1]), -1)[:, 4:].gather(2, out[:, 5:, None])[..., 0].sum(1)
    torch.testing.assert_close(loglik, scores, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kwargs, option", [({"top_p": 0.0}, "--top-p"), ({"top_k": 2.5}, "--top-k"),
                                            ({"max_new_tokens": -1}, "--max-new-tokens"),
                                            ({"temperature": -1.0}, "--temperature")],
                         ids=["top-p", "float-top-k", "neg-tokens", "neg-temperature"])
def test_sampling_options_are_checked_in_one_place(kwargs, option):
    """GenerateConfig.validate is the one check: generate(), `lm sample` and `audio generate` all call it."""
    from seqssm import ConfigError, GenerateConfig

    with pytest.raises(ConfigError, match=f"^{option}: "):
        GenerateConfig(**kwargs).validate(as_options=True)
    with pytest.raises(ConfigError, match=f"^{option[2:].replace('-', '_')}: "):
        GenerateConfig(**kwargs).validate()

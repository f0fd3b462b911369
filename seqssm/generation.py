"""Autoregressive generation: O(1) recurrent state, one-token steps, and sampling (temperature, top-k, top-p).

Dimension names used in this file: b batch · l prompt length · v vocabulary.

Mamba generates in its recurrent mode (paper section 3.3): the prompt is read once with the parallel scan,
which returns each layer's state, then every new token costs one `step`, independent of the context length.
"""

from __future__ import annotations

from typing import Callable

import torch

from seqssm.config import GenerateConfig
from seqssm.state import ModelState


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """logits (b, v) with every token outside the top-k and outside the nucleus (Holtzman et al. 2020) at -inf.

    The nucleus is the smallest set of most likely tokens whose probability reaches top_p; the most likely
    token is always kept.
    """
    v = logits.shape[-1]
    if 0 < top_k < v:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = probs.cumsum(-1) - probs  # probability of the strictly more likely tokens
        drop_sorted = mass_before >= top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits (b, v) -> token ids (b,) long; temperature 0 is greedy (argmax)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature
    probs = torch.softmax(filter_logits(logits, top_k, top_p), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class GenerationMixin:
    """Recurrent decoding for a model with `.backbone` (allocate_state, step) and `._logits(hidden)`."""

    def allocate_state(self, batch_size: int, device=None) -> ModelState:
        """A zero state for `batch_size` sequences (conv windows in the model dtype, SSM states float32)."""
        return self.backbone.allocate_state(batch_size, device)

    def step(self, token_ids: torch.Tensor, state: ModelState) -> torch.Tensor:
        """token_ids (b,) -> next-token logits (b, v); `state` advances by one token in place."""
        return self._logits(self.backbone.step(token_ids, state))

    @torch.no_grad()
    def generate(
        self,
        prompt: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
        on_step: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    ) -> torch.Tensor:
        """prompt (b, l) long -> (b, l + max_new_tokens): the prompt followed by sampled tokens.

        The same `seed` gives the same tokens (a private torch.Generator; the global RNG is untouched);
        seed None samples from the global RNG. `on_step(i, token (b,), logits (b, v))`, when given, is called
        once per generated token with the unfiltered temperature-1 logits it was drawn from: the hook for a
        caller's log-likelihood, timing or progress (the audio job uses all three), without a second loop.
        """
        GenerateConfig(max_new_tokens, temperature, top_k, top_p).validate()  # ConfigError (a ValueError)
        if isinstance(prompt, torch.Tensor) and prompt.dim() == 1:
            raise ValueError(f"prompt: expected shape (b, l), got {tuple(prompt.shape)}; use prompt[None]")
        generator = None
        if seed is not None:
            generator = torch.Generator(device=prompt.device)
            generator.manual_seed(int(seed))
        logits, state = self(prompt, return_state=True)  # prefill with the parallel scan
        next_logits = logits[:, -1]
        tokens = [prompt.long()]
        for i in range(max_new_tokens):
            token = sample_next(next_logits, temperature, top_k, top_p, generator)
            if on_step is not None:
                on_step(i, token, next_logits)
            tokens.append(token.unsqueeze(1))
            if i + 1 < max_new_tokens:
                next_logits = self.step(token, state)
        return torch.cat(tokens, dim=1)


__all__ = ["GenerationMixin", "filter_logits", "sample_next"]

"""Audio generation conditioned on the digit and the speaker: prefix tokens in, a class embedding at every position.

Dimension names: b batch · l samples · d model width · v vocabulary (2^bits quantisation levels).

Interface: two prefix tokens before the start token, [digit token, speaker token, start, x_0, x_1, …]; token ids
above the sample vocabulary name the condition (v + digit, digit = n_digits for "any digit"; v + n_digits + 1 +
speaker, speaker = n_speakers for "any speaker"). A prompt of prefix tokens is all `generate` needs, so the core's
decoding loop, the recurrent state and the recurrent-equals-parallel check work unchanged.

Mechanism: the prefix is not fed through the state. Its two tokens select embeddings e_digit + e_speaker, a vector
(b, d) added to the sample embedding at every position (WaveNet's global conditioning, van den Oord et al. 2016,
section 2.5). Read only at the start, a condition would have to survive thousands of state updates (a 1 s clip is
8,000 steps at 8 kHz) in a model trained for minutes; added everywhere, every stage of the multi-scale backbone sees
it at every step. The addition happens in a forward hook on the backbone's embedding, so the core model is
untouched and saves and loads as any `lm` model; the two tables are saved beside it.

"Any" is a condition of its own: training replaces each given condition by "any" with probability drop_prob, so the
same model samples unconditionally ([any, any]), by digit only or by speaker only (the classifier-free-guidance
training recipe of Ho & Salimans 2022). `GuidedSampleLM` adds the guidance at sampling time: the conditioned and the
[any, any] streams run side by side in one batch, and each step's log-probabilities are extrapolated from the
unconditioned towards the conditioned ones.

`UnitConditionalLM` is the vocoder of the two-stage model (seqssm.domains.audio.units): the same class embedding,
plus the embedding of every sample's acoustic unit (local conditioning); `GuidedUnitLM` guides it towards its units.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from seqssm.generation import GenerationMixin
from seqssm.state import ModelState

PREFIX = 2  # digit token, speaker token


def _check_prefixed(input_ids: torch.Tensor) -> None:
    """A pass without a state reads the prefix first: input_ids (b, 2 + l), l >= 1."""
    if input_ids.dim() != 2 or input_ids.shape[1] < PREFIX + 1:
        raise ValueError(f"input_ids: expected (b, 2 + l) with l >= 1, got {tuple(input_ids.shape)}")


@dataclass
class CondState:
    """The inner model's recurrent state and the condition vector (b, d) that every step adds."""

    inner: ModelState
    offset: torch.Tensor


class ConditionalSampleLM(GenerationMixin, nn.Module):
    """An `lm` model (flat or multi-scale) with digit and speaker embeddings; see the module docstring."""

    def __init__(self, lm: nn.Module, n_digits: int, speakers: Sequence[str]):
        super().__init__()
        if n_digits < 1 or not speakers:
            raise ValueError(f"need one or more digits and speakers, got {n_digits} and {list(speakers)}")
        self.lm, self.n_digits, self.speakers = lm, n_digits, list(speakers)
        self.vocab_size = lm.config.vocab_size
        d = lm.config.d_model
        self.digit_embed = nn.Embedding(n_digits + 1, d)  # row n_digits: any digit
        self.speaker_embed = nn.Embedding(len(self.speakers) + 1, d)  # last row: any speaker
        nn.init.normal_(self.digit_embed.weight, std=0.02)  # as the sample embedding (init_weights)
        nn.init.normal_(self.speaker_embed.weight, std=0.02)
        self._offset: torch.Tensor | None = None
        lm.backbone.embedding.register_forward_hook(self._add_offset)

    @property
    def config(self):
        return self.lm.config

    # ------------------------------------------------------------------ tokens
    def digit_token(self, digit: int | None) -> int:
        """The prefix token of a digit (None: any digit)."""
        if digit is not None and not 0 <= digit < self.n_digits:
            raise ValueError(f"digit {digit}: must be in 0-{self.n_digits - 1}")
        return self.vocab_size + (self.n_digits if digit is None else digit)

    def speaker_token(self, speaker: str | None) -> int:
        """The prefix token of a speaker name (None: any speaker)."""
        if speaker is not None and speaker not in self.speakers:
            raise ValueError(f"speaker {speaker!r}: unknown; this model knows {', '.join(self.speakers)}")
        index = len(self.speakers) if speaker is None else self.speakers.index(speaker)
        return self.vocab_size + self.n_digits + 1 + index

    def prefix(self, digit: int | None, speaker: str | None) -> torch.Tensor:
        return torch.tensor([self.digit_token(digit), self.speaker_token(speaker)])

    def offset(self, prefix: torch.Tensor) -> torch.Tensor:
        """prefix (b, 2) tokens -> the condition vector (b, d)."""
        digit = prefix[:, 0] - self.vocab_size
        speaker = prefix[:, 1] - self.vocab_size - self.n_digits - 1
        if ((digit < 0) | (digit > self.n_digits)).any() or ((speaker < 0) | (speaker > len(self.speakers))).any():
            raise ValueError(f"prefix: expected [digit token, speaker token] ids, got {prefix.tolist()[:4]}")
        return self.digit_embed(digit) + self.speaker_embed(speaker)

    # ------------------------------------------------------------------ the hook
    def _add_offset(self, module, inputs, output):
        if self._offset is None:
            return output
        offset = self._offset[:, None, :] if output.dim() == 3 and self._offset.dim() == 2 else self._offset
        return output + offset.to(output.dtype)

    @contextmanager
    def _conditioned(self, offset: torch.Tensor):
        self._offset = offset
        try:
            yield
        finally:
            self._offset = None

    # ------------------------------------------------------------------ model API
    def forward(self, input_ids: torch.Tensor, state: CondState | None = None, return_state: bool = False):
        """Without a state: input_ids (b, 2 + l) = prefix then samples -> logits (b, l, v) of the samples' positions
        (position i predicts input_ids[:, 2 + i + 1]). With a CondState (a stream going on): input_ids (b, l) are
        samples only. Returns (logits, CondState) when return_state."""
        if state is None:
            _check_prefixed(input_ids)
            offset, ids, inner = self.offset(input_ids[:, :PREFIX]), input_ids[:, PREFIX:], None
        else:
            offset, ids, inner = state.offset, input_ids, state.inner
        with self._conditioned(offset):
            out = self.lm(ids, state=inner, return_state=return_state or inner is not None)
        if return_state or inner is not None:
            logits, new = out
            return (logits, CondState(new, offset)) if return_state else logits
        return out

    def step(self, token_ids: torch.Tensor, state: CondState) -> torch.Tensor:
        """token_ids (b,) -> next-sample logits (b, v); the state advances in place."""
        with self._conditioned(state.offset):
            return self.lm.step(token_ids, state.inner)

    def condition_state_dict(self) -> dict[str, torch.Tensor]:
        return {"digit_embed": self.digit_embed.weight.detach().contiguous(),
                "speaker_embed": self.speaker_embed.weight.detach().contiguous()}

    def load_condition_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.digit_embed.weight.copy_(tensors["digit_embed"])
            self.speaker_embed.weight.copy_(tensors["speaker_embed"])

    def param_groups(self, weight_decay: float) -> list[dict]:
        """The inner model's AdamW groups; the condition embeddings join the no-decay group (embeddings)."""
        groups = self.lm.param_groups(weight_decay)
        groups[1]["params"] = groups[1]["params"] + [self.digit_embed.weight, self.speaker_embed.weight]
        return groups

    def moe_layers(self):
        return self.lm.moe_layers()


class GuidedSampleLM(GenerationMixin, nn.Module):
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6) for a ConditionalSampleLM, on next-sample log-probabilities:

        log p_w(x_t | x_<t, c) = log p(x_t | x_<t, any) + w * (log p(x_t | x_<t, c) - log p(x_t | x_<t, any)) + const

    w = 1 is the conditional model, w = 0 the unconditional one ([any digit, any speaker]); w > 1 moves each step
    further from what the condition does not explain. Both streams share the sampled history; they run as one batch
    of 2b rows (conditioned first), so the recurrent state is the inner model's for 2b rows and the parallel pass
    (`forward` without a state) gives the same logits as the steps: `--check-parallel` holds for guided sampling too.
    The returned logits are normalised log-probabilities (b, l, v)."""

    def __init__(self, model: ConditionalSampleLM, weight: float):
        super().__init__()
        if not weight >= 0:
            raise ValueError(f"guidance weight {weight}: must be >= 0")
        self.model, self.weight = model, float(weight)
        self.vocab_size = model.vocab_size

    @property
    def config(self):
        return self.model.config

    def _mix(self, logits: torch.Tensor) -> torch.Tensor:
        """(2b, …, v) logits, conditioned rows first -> (b, …, v) guided log-probabilities."""
        logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), -1)
        cond, free = logp.chunk(2, dim=0)
        return torch.log_softmax(free + self.weight * (cond - free), -1)

    def forward(self, input_ids: torch.Tensor, state: CondState | None = None, return_state: bool = False):
        """As ConditionalSampleLM.forward; the [any, any] twin of every row is added here."""
        if state is None:
            _check_prefixed(input_ids)
            free = self.model.prefix(None, None).to(input_ids).expand(input_ids.shape[0], PREFIX)
            both = torch.cat([input_ids, torch.cat([free, input_ids[:, PREFIX:]], dim=1)], dim=0)
        else:
            both = torch.cat([input_ids, input_ids], dim=0)
        out = self.model(both, state=state, return_state=return_state)
        if isinstance(out, tuple):
            return self._mix(out[0]), out[1]
        return self._mix(out)

    def step(self, token_ids: torch.Tensor, state: CondState) -> torch.Tensor:
        """token_ids (b,) -> guided next-sample log-probabilities (b, v); the 2b-row state advances in place."""
        return self._mix(self.model.step(torch.cat([token_ids, token_ids]), state))


@dataclass
class UnitState(CondState):
    """A UnitConditionalLM stream: the condition vector, the unit of every sample (b, n) and the next position."""

    track: torch.Tensor = None
    pos: int = 0


class UnitConditionalLM(ConditionalSampleLM):
    """The vocoder of the two-stage model (seqssm.domains.audio.units): a ConditionalSampleLM whose every sample
    position also adds the embedding of its frame's acoustic unit (WaveNet's local conditioning, van den Oord et al.
    2016, section 2.6). The unit track (b, l), one unit id per predicted sample, is given with `following(track)`
    around a forward pass or a whole `generate` call: position i (which predicts sample i) adds unit_embed[track[:, i]].
    Positions past the track's end add the row n_units ("no unit"), so a stream can run past its plan.
    The unit table starts at zero: a model started from a trained sample-level model (train.init_from) begins as it."""

    def __init__(self, lm: nn.Module, n_digits: int, speakers: Sequence[str], n_units: int):
        super().__init__(lm, n_digits, speakers)
        if n_units < 1:
            raise ValueError(f"n_units {n_units}: must be >= 1")
        self.n_units = n_units
        self.unit_embed = nn.Embedding(n_units + 1, lm.config.d_model)  # last row: past the plan's end
        nn.init.zeros_(self.unit_embed.weight)
        self._track: torch.Tensor | None = None

    @contextmanager
    def following(self, track: torch.Tensor):
        """track (b, n) unit ids of the samples to predict, for the forward passes and steps inside the block."""
        if track.dim() != 2 or track.dtype != torch.long:
            raise ValueError(f"track: expected (b, n) long unit ids, got {tuple(track.shape)} {track.dtype}")
        if track.numel() and (int(track.min()) < 0 or int(track.max()) > self.n_units):
            raise ValueError(f"track: unit ids must be in 0-{self.n_units}, got {int(track.min())}-{int(track.max())}")
        previous, self._track = self._track, track
        try:
            yield
        finally:
            self._track = previous

    def _units(self, track: torch.Tensor, pos: int, l: int) -> torch.Tensor:
        """The unit embeddings (b, l, d) of positions pos … pos + l - 1 ("no unit" past the track's end)."""
        ids = track[:, pos:pos + l]
        if ids.shape[1] < l:
            ids = torch.cat([ids, ids.new_full((ids.shape[0], l - ids.shape[1]), self.n_units)], 1)
        return self.unit_embed(ids)

    def forward(self, input_ids: torch.Tensor, state: UnitState | None = None, return_state: bool = False):
        """As ConditionalSampleLM.forward, inside `following(track)` for a pass without a state."""
        if state is None:
            if self._track is None:
                raise ValueError("a unit-conditioned model needs its unit track: call it inside following(track)")
            _check_prefixed(input_ids)
            if len(self._track) != len(input_ids):
                raise ValueError(f"track: {len(self._track)} rows for {len(input_ids)} rows of input_ids")
            cond, ids, inner = self.offset(input_ids[:, :PREFIX]), input_ids[:, PREFIX:], None
            track, pos = self._track, 0
        else:
            cond, ids, inner, track, pos = state.offset, input_ids, state.inner, state.track, state.pos
        with self._conditioned(cond[:, None, :] + self._units(track, pos, ids.shape[1])):
            out = self.lm(ids, state=inner, return_state=return_state or inner is not None)
        if return_state or inner is not None:
            logits, new = out
            if state is not None:
                state.pos += ids.shape[1]
                return (logits, state) if return_state else logits
            return (logits, UnitState(new, cond, track, ids.shape[1])) if return_state else logits
        return out

    def step(self, token_ids: torch.Tensor, state: UnitState) -> torch.Tensor:
        """token_ids (b,) -> next-sample logits (b, v); the state (and its position) advances in place."""
        with self._conditioned(state.offset + self._units(state.track, state.pos, 1)[:, 0]):
            logits = self.lm.step(token_ids, state.inner)
        state.pos += 1
        return logits

    def condition_state_dict(self) -> dict[str, torch.Tensor]:
        return {**super().condition_state_dict(), "unit_embed": self.unit_embed.weight.detach().contiguous()}

    def load_condition_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        super().load_condition_state_dict(tensors)
        with torch.no_grad():
            self.unit_embed.weight.copy_(tensors["unit_embed"])

    def param_groups(self, weight_decay: float) -> list[dict]:
        groups = super().param_groups(weight_decay)
        groups[1]["params"] = groups[1]["params"] + [self.unit_embed.weight]
        return groups


class GuidedUnitLM(GuidedSampleLM):
    """Classifier-free guidance on the units of a UnitConditionalLM trained with units.drop_prob > 0: the twin of
    every row keeps its digit and speaker but hears no unit (the "no unit" row everywhere), so

        log p_w(x_t | ·) = log p(x_t | ·, c, no units) + w * (log p(x_t | ·, c, units) - log p(x_t | ·, c, no units))

    (· is x_<t)

    (Ho & Salimans 2022, eq. 6, with the units as the condition) pushes each sample towards what its unit explains.
    Called inside following(track) as the model itself; the twin rows' track is added here."""

    def following(self, track: torch.Tensor):
        return self.model.following(track)

    def forward(self, input_ids: torch.Tensor, state: UnitState | None = None, return_state: bool = False):
        model = self.model
        if state is None:
            if model._track is None:
                raise ValueError("a unit-conditioned model needs its unit track: call it inside following(track)")
            track = model._track
            with model.following(torch.cat([track, torch.full_like(track, model.n_units)])):
                out = model(torch.cat([input_ids, input_ids]), return_state=return_state)
        else:
            out = model(torch.cat([input_ids, input_ids]), state=state, return_state=return_state)
        if isinstance(out, tuple):
            return self._mix(out[0]), out[1]
        return self._mix(out)


__all__ = ["CondState", "ConditionalSampleLM", "GuidedSampleLM", "GuidedUnitLM", "PREFIX", "UnitConditionalLM",
           "UnitState"]

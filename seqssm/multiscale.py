"""A multi-scale backbone (SaShiMi, Goel et al. 2022, section 3.2 and Figure 1) built of seqssm blocks: causal at
every rate, so it trains in parallel and samples one token at a time with a fixed-size state.

Dimension names used in this file:
    b batch · l length at the outer (token) rate · d_s width of stage s · p pooling factor of a stage · P = Π p

With pool_factors [p0, p1] (SaShiMi's [4, 4]) and width multiplier x:

    stage 0: rate 1, width d        down[0] blocks ──────────── skip ──────────────────┐
             DownPool p0: (l, d) -> (l/p0, d·x)                                        │
    stage 1: rate 1/p0, width d·x   down[1] blocks ─── skip ──┐                         │
             DownPool p1                                      │                         │
    centre:  rate 1/P               centre blocks             │                         │
             UpPool p1, shifted by one pooled step ──── + ────┘ up[1] blocks            │
             UpPool p0, shifted by one pooled step ─────────────────────────── + ───────┘ up[0] blocks

Causality. A DownPool group t reads tokens t·p … t·p + p − 1, so what the inner stages make of it may only reach
outputs from (t + 1)·p on: UpPool shifts its output right by one pooled step (SaShiMi's shift; zeros before the
first group, the carried state when a stream continues). The Mamba paper's audio models (Gu & Dao 2023, section
4.4 and appendix E.4) are this SaShiMi skeleton with Mamba blocks; they keep non-selective (S4D) blocks at the
outer, full-rate stage, which `stage_layers: [s4d, mamba, mamba]` gives.

Recurrent mode. Each pooling level keeps a buffer of the p stage-s vectors of the group being filled and a queue of
the p up-pooled vectors that the current group receives (computed when the previous group closed). A token steps
the outer blocks; every p-th token closes a group and steps the next stage once, and so on inwards. The state is
O(1) in the length: the blocks' own states plus 2·p vectors per level.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from seqssm.config import ModelConfig, MultiScaleConfig
from seqssm.model import Block, check_input_ids, init_weights, run_block
from seqssm.layers.norm import make_norm
from seqssm.state import ModelState


@dataclass
class PoolState:
    """One pooling level's recurrent state: buffer and queue (b, p, d_s), and pos, tokens of the group seen."""

    buffer: torch.Tensor
    queue: torch.Tensor
    pos: int = 0

    def detach(self) -> "PoolState":
        return PoolState(self.buffer.detach(), self.queue.detach(), self.pos)

    def clone(self) -> "PoolState":
        return PoolState(self.buffer.clone(), self.queue.clone(), self.pos)

    def to(self, device) -> "PoolState":
        return PoolState(self.buffer.to(device), self.queue.to(device), self.pos)


class Stack(nn.Module):
    """n pre-norm residual Blocks of one stage; returns the residual stream x + Σ mixer outputs (no final norm)."""

    def __init__(self, cfg: ModelConfig, n: int):
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(n))

    def forward(self, x, states, want_state: bool):
        """x (b, l, d_s), states: list of layer states or None -> (b, l, d_s), new states (list, or Nones)."""
        hidden, residual, new = x, None, []
        for i, block in enumerate(self.blocks):
            hidden, residual, s = run_block(block, hidden, residual, None if states is None else states[i], want_state)
            new.append(s)
        return hidden + residual, new

    def step(self, x, states):
        """x (b, d_s) -> (b, d_s); states updated in place."""
        hidden, residual = x, None
        for block, s in zip(self.blocks, states):
            hidden, residual = block.step(hidden, residual, s)
        return hidden + residual


def stage_config(cfg: ModelConfig, stage: int) -> ModelConfig:
    """The flat-stack config of one stage: its width and mixer; dt_rank follows the stage's width."""
    layer = cfg.multiscale.stage_layers[stage] if cfg.multiscale.stage_layers else cfg.layer
    return dataclasses.replace(
        cfg, d_model=cfg.d_model * cfg.multiscale.pool_expand**stage, layer=layer, multiscale=MultiScaleConfig(),
        attention=dataclasses.replace(cfg.attention, layer_idx=[]), moe=dataclasses.replace(cfg.moe, layer_idx=[]),
    )


class MultiScaleBackbone(nn.Module):
    """Embedding -> SaShiMi U-Net of stacks -> final norm; the same interface as `seqssm.model.Backbone`.

    State layout (ModelState.layers): the blocks' states in module order (down stacks outer to inner, the centre,
    up stacks inner to outer), then one PoolState per level, outer first.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.pools = list(cfg.multiscale.pool_factors)
        n_levels = len(self.pools)
        stages = [stage_config(cfg, s) for s in range(n_levels + 1)]
        self.widths = [c.d_model for c in stages]
        self.embedding = nn.Embedding(cfg.padded_vocab_size, cfg.d_model)
        self.down = nn.ModuleList(Stack(stages[s], cfg.n_layer) for s in range(n_levels))
        self.centre = Stack(stages[-1], cfg.n_layer)
        self.up = nn.ModuleList(Stack(stages[s], cfg.n_layer) for s in range(n_levels))
        # DownPool: p vectors of width d_s -> one of width d_{s+1};  UpPool: one of d_{s+1} -> p of width d_s
        self.down_pool = nn.ModuleList(
            nn.Linear(p * self.widths[s], self.widths[s + 1]) for s, p in enumerate(self.pools))
        self.up_pool = nn.ModuleList(
            nn.Linear(self.widths[s + 1], p * self.widths[s]) for s, p in enumerate(self.pools))
        self.norm_f = make_norm(cfg.d_model, cfg.norm_eps, cfg.rms_norm)
        self.n_blocks = cfg.n_layer * (2 * n_levels + 1)
        self.apply(partial(init_weights, n_layer=self.n_blocks))

    @property
    def period(self) -> int:
        """P: tokens per innermost step; a parallel pass with a carried state runs on multiples of it."""
        return math.prod(self.pools)

    # ---------------------------------------------------------------- state
    def _stacks(self) -> list[Stack]:
        return [*self.down, self.centre, *reversed(self.up)]

    def allocate_state(self, batch_size: int, device=None) -> ModelState:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: must be a positive int, got {batch_size!r}")
        dtype = self.embedding.weight.dtype
        device = device or self.embedding.weight.device
        blocks = [blk.mixer.allocate_state(batch_size, device=device, dtype=dtype)
                  for stack in self._stacks() for blk in stack.blocks]
        pools = [PoolState(torch.zeros(batch_size, p, self.widths[s], device=device, dtype=dtype),
                           torch.zeros(batch_size, p, self.widths[s], device=device, dtype=dtype))
                 for s, p in enumerate(self.pools)]
        return ModelState(blocks + pools)

    def _check(self, state: ModelState) -> None:
        want = self.n_blocks + len(self.pools)
        if not isinstance(state, ModelState) or len(state.layers) != want:
            got = len(state.layers) if isinstance(state, ModelState) else type(state).__name__
            raise ValueError(f"state: expected a ModelState with {want} entries (blocks, then pool levels), got {got}")

    def _slot(self, stack: int) -> slice:
        """Where stack number `stack` (the order of _stacks) keeps its blocks' states in ModelState.layers."""
        n = self.cfg.n_layer
        return slice(stack * n, (stack + 1) * n)

    def _pool_state(self, state: ModelState, s: int) -> PoolState:
        return state.layers[self.n_blocks + s]

    def _phase(self, state: ModelState) -> int:
        """Tokens since the last innermost group closed (each level's pos, in mixed radix)."""
        phase, radix = 0, 1
        for s, p in enumerate(self.pools):
            phase += self._pool_state(state, s).pos * radix
            radix *= p
        return phase

    def _run_stack(self, stack_no: int, x, state: ModelState | None):
        stack = self._stacks()[stack_no]
        if state is None:
            return stack(x, None, False)[0]
        slot = self._slot(stack_no)
        y, new = stack(x, state.layers[slot], True)
        state.layers[slot] = new
        return y

    # ---------------------------------------------------------------- parallel mode
    def _level(self, s: int, x, state: ModelState | None):
        """Stage s on x (b, l_s, d_s), l_s a multiple of the inner pooling -> (b, l_s, d_s). A carried state
        must stand at a group boundary; it is advanced in place."""
        levels = len(self.pools)
        if s == levels:
            return self._run_stack(levels, x, state)
        b, l, d = x.shape
        p = self.pools[s]
        h = self._run_stack(s, x, state)
        inner = self._level(s + 1, self.down_pool[s](h.reshape(b, l // p, p * d)), state)
        lifted = self.up_pool[s](inner)  # (b, l/p, p·d): group t's contribution, which serves group t + 1
        if state is None:
            first = lifted.new_zeros(b, 1, p * d)
        else:
            first = self._pool_state(state, s).queue.reshape(b, 1, p * d).to(lifted.dtype)
        shifted = torch.cat([first, lifted[:, :-1]], dim=1).reshape(b, l, d)
        y = self._run_stack(2 * levels - s, h + shifted, state)
        if state is not None:  # the stream goes on at a group boundary; the next group receives the last lift
            ps = self._pool_state(state, s)
            ps.queue = lifted[:, -1].reshape(b, p, d)
            ps.pos = 0
        return y

    def _run(self, x, state: ModelState | None):
        """x (b, l, d) embedded -> the residual stream (b, l, d) before the final norm."""
        b, l, d = x.shape
        if state is None:
            pad = (-l) % self.period  # right padding never reaches earlier outputs: every stage is causal
            xp = torch.cat([x, x.new_zeros(b, pad, d)], dim=1) if pad else x
            return self._level(0, xp, None)[:, :l]
        # step up to the next innermost group boundary, run the aligned middle in parallel, step the rest
        head = min(l, (self.period - self._phase(state)) % self.period)
        body = (l - head) // self.period * self.period
        parts = [self._step_level(0, x[:, t], state)[:, None] for t in range(head)]
        if body:
            parts.append(self._level(0, x[:, head:head + body], state))
        parts += [self._step_level(0, x[:, t], state)[:, None] for t in range(head + body, l)]
        return torch.cat(parts, dim=1)

    def _final(self, stream):
        return self.norm_f(stream.to(self.norm_f.weight.dtype))

    def forward(self, input_ids, state: ModelState | None = None, return_state: bool = False, seq_idx=None):
        """input_ids (b, l) -> (hidden (b, l, d), ModelState or None), like Backbone.forward.

        Without a state any length works (padded to a multiple of P inside). With a carried state (streaming, or
        the prefill of generation) any length works too: the tokens before the next innermost group boundary
        and after the last one are stepped recurrently, the aligned middle runs in parallel. The state is
        advanced in place and returned."""
        check_input_ids(input_ids, self.cfg.vocab_size)
        if seq_idx is not None:
            raise ValueError("seq_idx: packed sequences are not supported by the multi-scale backbone")
        x = self.embedding(input_ids.long())
        if state is None and return_state:
            state = self.allocate_state(input_ids.shape[0], input_ids.device)
        if state is not None:
            self._check(state)
        return self._final(self._run(x, state)), state

    # ---------------------------------------------------------------- recurrent mode
    def _step_level(self, s: int, x, state: ModelState):
        """x (b, d_s) at stage s's rate -> (b, d_s); every state involved advances in place."""
        levels = len(self.pools)
        if s == levels:
            return self.centre.step(x, state.layers[self._slot(levels)])
        ps, p = self._pool_state(state, s), self.pools[s]
        h = self.down[s].step(x, state.layers[self._slot(s)])
        ps.buffer[:, ps.pos] = h
        y = h + ps.queue[:, ps.pos]  # the lift of the previous group (zeros before the first)
        ps.pos += 1
        if ps.pos == p:  # the group is complete: one step of the inner stage, whose lift serves the next group
            b, d = h.shape
            inner = self._step_level(s + 1, self.down_pool[s](ps.buffer.reshape(b, p * d)), state)
            ps.queue = self.up_pool[s](inner).reshape(b, p, d)
            ps.pos = 0
        return self.up[s].step(y, state.layers[self._slot(2 * levels - s)])

    def step(self, token_ids, state: ModelState):
        """token_ids (b,) -> hidden (b, d); the state advances by one token in place."""
        check_input_ids(token_ids, self.cfg.vocab_size, ndim=1)
        self._check(state)
        return self._final(self._step_level(0, self.embedding(token_ids.long()), state))


__all__ = ["MultiScaleBackbone", "PoolState", "Stack", "stage_config"]

"""Models: pre-norm residual blocks, the backbone, and the heads (language model, sequence and token classifiers).

Dimension names used in this file:
    b batch · l sequence length · d model width · v vocabulary (padded: v_pad) · c classes

The architecture is mamba_ssm's MambaLMHeadModel (paper section 3.4 and E.2): an embedding, n_layer blocks
"norm -> mixer" with a residual stream kept in float32, a final norm, and a (tied) linear head.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from seqssm.checkpoint import PretrainedMixin
from seqssm.config import ConfigError, ModelConfig
from seqssm.generation import GenerationMixin
from seqssm.layers.moe import SwitchMoE
from seqssm.layers.norm import RMSNorm, make_norm
from seqssm.layers.rcps import RCNorm, RCPSEmbedding, RCPSMixer, invariant_features
from seqssm.registry import HEADS, LAYERS
from seqssm.state import ModelState


def _at_least_fp32(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def check_input_ids(input_ids, vocab_size: int, ndim: int = 2) -> None:
    """One-line ValueError naming `input_ids` for a wrong type, shape or an id outside [0, vocab_size)."""
    if not isinstance(input_ids, torch.Tensor):
        raise ValueError(f"input_ids: expected a torch.Tensor, got {type(input_ids).__name__}")
    if input_ids.dtype not in (torch.long, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise ValueError(f"input_ids: expected an integer tensor, got dtype {input_ids.dtype}")
    if input_ids.dim() != ndim:
        want = "(b, l)" if ndim == 2 else "(b,)"
        raise ValueError(f"input_ids: expected shape {want}, got {tuple(input_ids.shape)}")
    if ndim == 2 and input_ids.shape[1] == 0:
        raise ValueError("input_ids: sequence length must be at least 1")
    if input_ids.numel():
        lo, hi = int(input_ids.min()), int(input_ids.max())
        bad = lo if lo < 0 else hi if hi >= vocab_size else None
        if bad is not None:
            raise ValueError(f"input_ids: token id {bad} is outside [0, {vocab_size})")


@torch.no_grad()
def init_weights(module: nn.Module, n_layer: int, initializer_range: float = 0.02) -> None:
    """mamba_ssm's `_init_weights`, applied to every module (post-order, via Module.apply).

    Linear biases start at zero (except dt_proj's, marked _no_reinit); embeddings N(0, 0.02). The output
    projection of every residual branch is re-drawn and scaled by 1/sqrt(n_layer) (GPT-2's prenorm residual
    rescaling, one residual per layer) so the residual stream's variance does not grow with depth.
    """
    if isinstance(module, nn.Linear) and module.bias is not None and not getattr(module.bias, "_no_reinit", False):
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=initializer_range)
    for name in ("out_proj", "fc2"):
        child = module._modules.get(name)
        if isinstance(child, nn.Linear):
            nn.init.kaiming_uniform_(child.weight, a=math.sqrt(5))  # nn.Linear's default draw
            child.weight /= math.sqrt(n_layer)


def mixer_name(cfg: ModelConfig, layer_idx: int) -> str:
    """The registry name of block `layer_idx`'s mixer: "attention" for indices in cfg.attention.layer_idx (a hybrid
    stack, as mamba_ssm's attn_layer_idx), cfg.layer otherwise."""
    return "attention" if layer_idx in cfg.attention.layer_idx else cfg.layer


class Block(nn.Module):
    """Pre-norm residual block: residual += hidden; hidden = mixer(norm(residual)).

    The add and the norm are done together, as mamba_ssm's fused add+norm: the block receives the previous
    mixer output and the running residual, so the residual stays in float32 (residual_in_fp32) even when the
    mixers run in bfloat16.
    """

    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        self.residual_in_fp32 = cfg.residual_in_fp32
        if cfg.strand.rc_equivariant:  # Caduceus-PS: one norm and one mixer of width d/2 shared by both strands
            self.norm = RCNorm(cfg.d_model, cfg.norm_eps, cfg.rms_norm)
            self.mixer = RCPSMixer(cfg, layer_idx, mixer_name(cfg, layer_idx))
        else:
            self.norm = make_norm(cfg.d_model, cfg.norm_eps, cfg.rms_norm)
            self.mixer = LAYERS.get(mixer_name(cfg, layer_idx))(cfg, layer_idx)
        # MoE-Mamba (Pióro et al. 2024, section 3): a second pre-norm residual sub-layer, a switch MoE FFN
        self.moe, self.moe_norm = None, None
        if layer_idx in cfg.moe.layer_idx:
            self.moe_norm = make_norm(cfg.d_model, cfg.norm_eps, cfg.rms_norm)
            self.moe = SwitchMoE(cfg, layer_idx)

    def _add_norm(self, hidden: torch.Tensor, residual: torch.Tensor | None, norm: nn.Module | None = None):
        norm = self.norm if norm is None else norm
        residual = hidden if residual is None else residual + hidden
        normed = norm(residual.to(norm.weight.dtype))
        if self.residual_in_fp32:
            residual = residual.to(_at_least_fp32(residual.dtype))  # float64 models stay float64
        return normed, residual

    def forward(self, hidden, residual=None, state=None, return_state: bool = False, seq_idx=None):
        """hidden, residual (b, l, d) -> (mixer output, residual, new layer state or None)."""
        normed, residual = self._add_norm(hidden, residual)
        if seq_idx is None:
            out, new_state = self.mixer(normed, state=state, return_state=return_state)
        else:
            out, new_state = self.mixer(normed, state=state, return_state=return_state, seq_idx=seq_idx)
        if self.moe is not None:  # a dropped token's MoE output is 0: the residual passes through unchanged
            normed, residual = self._add_norm(out, residual, self.moe_norm)
            out = self.moe(normed)
        return out, residual, new_state

    def step(self, hidden, residual, state):
        """hidden, residual (b, d) -> (mixer output, residual); the layer state is updated in place."""
        normed, residual = self._add_norm(hidden, residual)
        out = self.mixer.step(normed, state)
        if self.moe is not None:
            normed, residual = self._add_norm(out, residual, self.moe_norm)
            out = self.moe(normed.unsqueeze(1))[:, 0]
        return out, residual


def run_block(block: "Block", hidden, residual, state, return_state: bool, seq_idx=None):
    """block(...), or the same through activation checkpointing when block.checkpointed is set and gradients are
    being recorded: the block's activations are recomputed in backward instead of kept (memory for time)."""
    if getattr(block, "checkpointed", False) and torch.is_grad_enabled():
        from torch.utils.checkpoint import checkpoint

        return checkpoint(block, hidden, residual, state, return_state, seq_idx, use_reentrant=False)
    return block(hidden, residual, state, return_state, seq_idx)


def set_activation_checkpointing(model: nn.Module, on: bool = True) -> int:
    """Turn activation checkpointing on (or off) for every Block of a model; returns the number of blocks."""
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    for block in blocks:
        block.checkpointed = on
    return len(blocks)


class Backbone(nn.Module):
    """Embedding -> n_layer Blocks -> final norm; hidden states (b, l, d) in the model dtype."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.strand.rc_equivariant:
            self.embedding = RCPSEmbedding(cfg.padded_vocab_size, cfg.d_model, cfg.strand.rc_complement)
            self.norm_f = RCNorm(cfg.d_model, cfg.norm_eps, cfg.rms_norm)
        else:
            self.embedding = nn.Embedding(cfg.padded_vocab_size, cfg.d_model)
            self.norm_f = make_norm(cfg.d_model, cfg.norm_eps, cfg.rms_norm)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.apply(partial(init_weights, n_layer=cfg.n_layer))

    def _check_state(self, state: ModelState) -> None:
        if not isinstance(state, ModelState) or len(state.layers) != len(self.layers):
            got = len(state.layers) if isinstance(state, ModelState) else type(state).__name__
            raise ValueError(f"state: expected a ModelState with {len(self.layers)} layers, got {got}")

    def _final(self, hidden, residual):
        residual = hidden + residual
        return self.norm_f(residual.to(self.norm_f.weight.dtype))

    def forward(self, input_ids, state: ModelState | None = None, return_state: bool = False, seq_idx=None):
        """input_ids (b, l) -> (hidden (b, l, d), new ModelState or None); `state` continues a previous segment.

        seq_idx (b, l) int: several sequences packed in one row; each mixer keeps them apart."""
        check_input_ids(input_ids, self.cfg.vocab_size)
        if seq_idx is not None and (not isinstance(seq_idx, torch.Tensor) or seq_idx.shape != input_ids.shape):
            raise ValueError(f"seq_idx: expected shape {tuple(input_ids.shape)}, got {getattr(seq_idx, 'shape', None)}")
        if state is not None:
            self._check_state(state)
        hidden = self.embedding(input_ids.long())
        residual, new_states = None, []
        for i, layer in enumerate(self.layers):
            layer_state = None if state is None else state.layers[i]
            hidden, residual, s = run_block(layer, hidden, residual, layer_state, return_state, seq_idx)
            new_states.append(s)
        out = self._final(hidden, residual)
        return out, (ModelState(new_states) if state is not None or return_state else None)

    def allocate_state(self, batch_size: int, device=None) -> ModelState:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: must be a positive int, got {batch_size!r}")
        dtype = self.embedding.weight.dtype
        device = device or self.embedding.weight.device
        return ModelState([blk.mixer.allocate_state(batch_size, device=device, dtype=dtype) for blk in self.layers])

    def step(self, token_ids, state: ModelState):
        """token_ids (b,) -> hidden (b, d); every layer's state is advanced by one token in place."""
        check_input_ids(token_ids, self.cfg.vocab_size, ndim=1)
        self._check_state(state)
        hidden, residual = self.embedding(token_ids.long()), None
        for layer, layer_state in zip(self.layers, state.layers):
            hidden, residual = layer.step(hidden, residual, layer_state)
        return self._final(hidden, residual)


def make_backbone(cfg: ModelConfig) -> nn.Module:
    """A flat Backbone, or the multi-scale (SaShiMi) one when cfg.multiscale.pool_factors is set; both have the same
    interface (forward with state, allocate_state, step)."""
    if cfg.multiscale.pool_factors:
        from seqssm.multiscale import MultiScaleBackbone  # it builds on Block, defined above

        return MultiScaleBackbone(cfg)
    return Backbone(cfg)


class SeqModel(PretrainedMixin, nn.Module):
    """Base of the heads: holds `.config`, and the optimiser parameter groups."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not isinstance(cfg, ModelConfig):
            raise ConfigError(f"cfg: expected a ModelConfig, got {type(cfg).__name__}")
        cfg.validate()
        self.config = cfg

    def moe_layers(self) -> list[SwitchMoE]:
        return [m for m in self.modules() if isinstance(m, SwitchMoE)]

    def aux_loss(self) -> torch.Tensor:
        """moe_aux_weight · Σ over MoE layers of their last load-balancing loss (Switch Transformer eq. 4), to add
        to the training loss after a forward; a zero tensor when the model has no MoE layer or has not run."""
        losses = [m.last_aux_loss for m in self.moe_layers() if m.last_aux_loss is not None]
        if not losses:
            return torch.zeros((), device=next(self.parameters()).device)
        return self.config.moe.aux_weight * torch.stack(losses).sum()

    def dropped_tokens(self) -> int:
        """Tokens dropped over capacity by all MoE layers in the last forward (each layer counts its own)."""
        return sum(m.last_dropped for m in self.moe_layers())

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Two AdamW groups: decay on matrices; none on A_log, D, norms, biases and embeddings.

        Decaying A_log or D would pull the SSM towards A = -1 and no skip, which the paper's init chose
        against; norms, biases and embeddings follow the usual GPT practice.
        """
        exempt = set()
        for module in self.modules():
            if isinstance(module, (RMSNorm, nn.LayerNorm, nn.Embedding)):
                exempt.update(id(p) for p in module.parameters(recurse=False))
        decay, no_decay = [], []
        for name, p in self.named_parameters():  # tied parameters come once
            if not p.requires_grad:
                continue
            skip = id(p) in exempt or getattr(p, "_no_weight_decay", False) or name.endswith(".bias")
            (no_decay if skip else decay).append(p)
        return [{"params": decay, "weight_decay": float(weight_decay)}, {"params": no_decay, "weight_decay": 0.0}]


@HEADS.register("lm")
class MambaLM(GenerationMixin, SeqModel):
    """Causal language model: logits (b, l, v) for the next token at every position."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.backbone = make_backbone(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.padded_vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.backbone.embedding.weight

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        # The vocabulary is padded for efficient matmuls; padded rows are never valid tokens, so slice them off.
        logits = self.lm_head(hidden)[..., : self.config.vocab_size]
        return logits.to(_at_least_fp32(logits.dtype))

    def forward(self, input_ids, state: ModelState | None = None, return_state: bool = False):
        """input_ids (b, l) -> logits (b, l, v) float32 [, new ModelState when return_state]."""
        hidden, new_state = self.backbone(input_ids, state, return_state)
        logits = self._logits(hidden)
        return (logits, new_state) if return_state else logits


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, how: str) -> torch.Tensor:
    """hidden (b, l, d), attention_mask (b, l) with 1 for real tokens -> (b, d), ignoring padding positions.

    Padding must be on the right: the model is causal, so right padding never reaches real positions, while
    left padding would run through the state before the first real token.
    """
    b, l, _ = hidden.shape
    if attention_mask is None:
        mask = torch.ones(b, l, dtype=torch.bool, device=hidden.device)
    else:
        if not isinstance(attention_mask, torch.Tensor) or tuple(attention_mask.shape) != (b, l):
            got = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask)
            raise ValueError(f"attention_mask: expected shape {(b, l)} like input_ids, got {got}")
        mask = attention_mask.to(hidden.device) != 0
        if not bool(mask.any(dim=1).all()):
            row = int((~mask.any(dim=1)).nonzero()[0])
            raise ValueError(f"attention_mask: row {row} has no real tokens")
        if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
            raise ValueError("attention_mask: padding must be at the end of each row (right padding)")
    if how == "mean":
        m = mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * m).sum(1) / m.sum(1)
    if how == "max":
        return hidden.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
    if how == "last":
        last = mask.long().sum(1) - 1  # right padding: the last real token
        return hidden[torch.arange(b, device=hidden.device), last]
    raise ConfigError(f"pooling: must be mean, max or last, got {how!r}")


@HEADS.register("classify")
class SequenceClassifier(SeqModel):
    """One label per sequence: backbone -> padding-aware pooling (mean / max / last) -> linear."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.backbone = make_backbone(cfg)
        # rc_equivariant: the two strands' pooled halves are added, an RC-invariant feature of width d/2
        self.classifier = nn.Linear(cfg.d_model // 2 if cfg.strand.rc_equivariant else cfg.d_model, cfg.num_classes)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, input_ids, attention_mask=None):
        """input_ids (b, l), attention_mask (b, l) or None -> logits (b, c) float32."""
        hidden = self.hidden_states(input_ids, attention_mask)
        features = pool(hidden, attention_mask, self.config.pooling)
        if self.config.strand.rc_equivariant:
            features = invariant_features(features)
        logits = self.classifier(features)
        return logits.to(_at_least_fp32(logits.dtype))

    def hidden_states(self, input_ids, attention_mask=None):
        """(b, l, d) final hidden states. Causal mixers never let right padding reach a real token; a non-causal
        one (bimamba) would, through its reversed scan, so the padding is then given its own seq_idx and the
        mixers restart at it."""
        seq_idx = None
        if attention_mask is not None and tuple(getattr(attention_mask, "shape", ())) != tuple(input_ids.shape):
            raise ValueError(f"attention_mask: expected shape {tuple(input_ids.shape)} like input_ids, "
                             f"got {tuple(getattr(attention_mask, 'shape', ()))}")
        if attention_mask is not None and not all(
            getattr(m.mixer, "causal", True) for m in self.backbone.modules() if isinstance(m, Block)
        ):
            seq_idx = (attention_mask == 0).to(torch.int64)  # real tokens 0, right padding 1
        return self.backbone(input_ids, seq_idx=seq_idx)[0]


@HEADS.register("token")
class TokenClassifier(SeqModel):
    """One label per position (e.g. per-base annotation): backbone -> linear."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.backbone = make_backbone(cfg)
        self.classifier = nn.Linear(cfg.d_model, cfg.num_classes)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, input_ids):
        """input_ids (b, l) -> logits (b, l, c) float32."""
        hidden, _ = self.backbone(input_ids)
        logits = self.classifier(hidden)
        return logits.to(_at_least_fp32(logits.dtype))


def build_model(cfg: ModelConfig) -> nn.Module:
    """The model named by cfg.head ("lm", "classify", "token", or any registered head)."""
    if not isinstance(cfg, ModelConfig):
        raise ConfigError(f"cfg: expected a ModelConfig, got {type(cfg).__name__}")
    cfg.validate()
    return HEADS.get(cfg.head)(cfg)


__all__ = [
    "Backbone",
    "Block",
    "MambaLM",
    "SeqModel",
    "SequenceClassifier",
    "TokenClassifier",
    "build_model",
    "check_input_ids",
    "init_weights",
    "make_backbone",
    "mixer_name",
    "pool",
    "run_block",
    "set_activation_checkpointing",
]

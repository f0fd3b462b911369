"""seqssm: Mamba selective state space models (Gu & Dao 2023) for genomics and audio.

The core package (the folder seqssm/ of the source tree; kernels/, domains/, pipelines/ and configs/ install
beside it as seqssm.kernels, seqssm.domains, seqssm.pipelines and seqssm.configs): configs, the layer/head registries, models with streaming state and generation, checkpoints.
It imports seqssm.kernels only (never lightning, seqssm.domains or seqssm.pipelines).
"""

from seqssm._version import __version__
from seqssm.config import (
    AttentionConfig, ConfigError, GenerateConfig, Mamba2Config, ModelConfig, MoEConfig, MultiScaleConfig, SSMConfig,
    StrandConfig, load_config, save_config,
)
from seqssm.registry import HEADS, LAYERS, Registry
from seqssm.state import LayerState, ModelState
from seqssm import layers  # noqa: F401  (registers the built-in mixers)
from seqssm.model import MambaLM, SequenceClassifier, TokenClassifier, build_model
from seqssm.checkpoint import CheckpointError, load_mamba_ssm_state_dict, load_pretrained

__all__ = [
    "__version__",
    "AttentionConfig",
    "Mamba2Config",
    "MoEConfig",
    "MultiScaleConfig",
    "SSMConfig",
    "StrandConfig",
    "CheckpointError",
    "ConfigError",
    "GenerateConfig",
    "HEADS",
    "LAYERS",
    "LayerState",
    "MambaLM",
    "ModelConfig",
    "ModelState",
    "Registry",
    "SequenceClassifier",
    "TokenClassifier",
    "build_model",
    "load_config",
    "load_mamba_ssm_state_dict",
    "load_pretrained",
    "save_config",
]

"""Sequence mixers and norms. Importing this package registers every built-in mixer in seqssm.registry.LAYERS;
a new mixer registers itself with `@LAYERS.register(name)` and is imported here."""

from seqssm.layers.mamba import Mamba
from seqssm.layers.attention import Attention
from seqssm.layers.mamba2 import Mamba2
from seqssm.layers.moe import SwitchMoE
from seqssm.layers.bimamba import BiMamba
from seqssm.layers.norm import GatedRMSNorm, RMSNorm, make_norm
from seqssm.layers.s4d import S4D

__all__ = ["Attention", "BiMamba", "GatedRMSNorm", "Mamba", "Mamba2", "RMSNorm", "S4D", "SwitchMoE", "make_norm"]

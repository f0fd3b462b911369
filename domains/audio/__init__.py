"""seqssm.domains.audio: the raw-audio plugin (SaShiMi / Mamba paper setting: one quantised sample per token).

Files -> load_audio (soundfile; mono, resample) -> a quantiser (mu-law or linear ids) -> AudioFolder -> RandomCrops
for training or WholeClips for evaluation -> bits_per_sample. Registered as `audio` in the `seqssm.domains`
entry-point group; `plugin` is what the group points at.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seqssm.domains.audio.data import (
    AudioFolder, RandomCrops, WholeClips, fsdd_split, pad_collate, parse_fsdd_name, split_by_file,
)
from seqssm.domains.audio.io import (
    AUDIO_SUFFIXES, AudioInfo, AudioInputError, audio_info, iter_audio_blocks, list_audio_files, load_audio,
    save_wav,
)
from seqssm.domains.audio.corpus import AudioCorpus, convention, make_quantizer, split_files
from seqssm.domains.audio.metrics import bits_per_sample, unigram_bits
from seqssm.domains.audio.quantize import LinearQuantizer, MuLawQuantizer, build_quantizer, minmax_scale


@dataclass(frozen=True)
class AudioPlugin:
    """The plugin object behind the entry point: its name, the input errors a CLI should report in one line, and
    the file suffixes it reads."""

    name: str = "audio"
    description: str = "raw audio, one quantised sample per token (WAV/FLAC/OGG via soundfile)"
    user_errors: tuple = (AudioInputError,)
    suffixes: tuple = AUDIO_SUFFIXES
    quantizers: dict = field(default_factory=lambda: {"mulaw": MuLawQuantizer, "linear": LinearQuantizer})
    source: str = "audio"  # `pretrain` data.source
    strands: bool = False

    def corpus(self, path, holdout: float, options=None) -> AudioCorpus:
        """options: sample_rate and bits (the pretraining data config)."""
        return AudioCorpus(path, holdout, options.sample_rate, options.bits)

    def vocab_size(self, options=None) -> int:
        return 1 << options.bits

    quantizer = staticmethod(make_quantizer)
    split_files = staticmethod(split_files)
    convention = staticmethod(convention)


plugin = AudioPlugin()

__all__ = [
    "AUDIO_SUFFIXES",
    "AudioCorpus",
    "AudioFolder",
    "AudioInfo",
    "AudioInputError",
    "AudioPlugin",
    "LinearQuantizer",
    "MuLawQuantizer",
    "RandomCrops",
    "WholeClips",
    "audio_info",
    "bits_per_sample",
    "build_quantizer",
    "convention",
    "make_quantizer",
    "split_files",
    "fsdd_split",
    "iter_audio_blocks",
    "list_audio_files",
    "load_audio",
    "minmax_scale",
    "pad_collate",
    "parse_fsdd_name",
    "plugin",
    "save_wav",
    "split_by_file",
    "unigram_bits",
]

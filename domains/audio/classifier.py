"""A spoken-digit classifier: log-mel features -> a small conv net -> digit logits. Its penultimate features and its
class probabilities feed the sample-quality metrics (FID, IS, mIS, AM; seqssm.domains.audio.quality), in the role the
SC09 ResNet plays for SaShiMi (Goel et al. 2022, section 5.2) and the Mamba paper (section 4.4, Table 4).

Dimension names: b batch · l samples · m mel bins · t frames · c channels · f feature width · k classes.

Every clip, real or generated, enters the same way (`prepare`): mono float wave at `sample_rate`, min-max scaled,
8-bit mu-law quantised and decoded (the domain the audio models generate in, so real and generated clips carry the
same quantisation noise), then padded with silence or cut to `clip_samples`. The log-mel front end is torchaudio's
MelSpectrogram; the net is model code only (no training here; `seqssm audio classifier` trains it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import torch
from torch import nn

from seqssm.config import require
from seqssm.domains.audio.quantize import MuLawQuantizer


@dataclass
class DigitClassifierConfig:
    """The classifier's shape; configs/audio_classifier.yaml mirrors it under `model:`."""

    sample_rate: int = 8000
    clip_samples: int = 8000  # every clip is padded (silence) or cut to this many samples (FSDD: 0.14-2.28 s)
    n_fft: int = 256
    hop: int = 80  # 10 ms at 8 kHz
    n_mels: int = 40
    channels: List[int] = field(default_factory=lambda: [32, 64, 96])  # one conv block per entry, 2x2 max-pool after
    features: int = 128  # width of the penultimate layer (the FID features)
    num_classes: int = 10
    dropout: float = 0.2

    def validate(self, prefix: str = "") -> None:
        p = prefix
        require(self.sample_rate >= 1000, p + "sample_rate", self.sample_rate, "must be >= 1000 Hz")
        require(self.clip_samples >= self.n_fft, p + "clip_samples", self.clip_samples, f"must be >= n_fft")
        require(self.n_fft >= 16 and self.hop >= 1, p + "n_fft", self.n_fft, "must be >= 16 with hop >= 1")
        require(2 <= self.n_mels <= self.n_fft // 2 + 1, p + "n_mels", self.n_mels, "must be in [2, n_fft/2 + 1]")
        require(bool(self.channels) and all(c >= 1 for c in self.channels), p + "channels", list(self.channels),
                "must list one or more widths >= 1")
        require(self.features >= 2, p + "features", self.features, "must be >= 2")
        require(self.num_classes >= 2, p + "num_classes", self.num_classes, "must be >= 2")
        require(0 <= self.dropout < 1, p + "dropout", self.dropout, "must be in [0, 1)")


def prepare(wave: torch.Tensor, clip_samples: int | None, quantizer: MuLawQuantizer | None = None) -> torch.Tensor:
    """wave (l,) float -> (clip_samples,) float32: min-max scaled, mu-law round trip, padded or cut at the end
    (clip_samples None: neither)."""
    q = quantizer or MuLawQuantizer(8, "minmax", "sashimi")
    x = q.decode(q.encode(wave))
    if clip_samples is None:
        return x
    if len(x) >= clip_samples:
        return x[:clip_samples].contiguous()
    return torch.cat([x, x.new_zeros(clip_samples - len(x))])


class DigitClassifier(nn.Module):
    """wave (b, l) -> logits (b, k); `embed` gives the penultimate features (b, f) as well."""

    def __init__(self, cfg: DigitClassifierConfig):
        super().__init__()
        import torchaudio  # the feature transform only; torchaudio's I/O is not used

        cfg.validate()
        self.config = cfg
        self.mel = torchaudio.transforms.MelSpectrogram(cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop,
                                                        n_mels=cfg.n_mels, power=2.0)
        blocks, c_in = [], 1
        for c in cfg.channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.convs = nn.Sequential(*blocks)
        # mean and max over the remaining (mel, frame) grid: a feature that does not depend on where the digit sits
        self.proj = nn.Sequential(nn.Linear(2 * c_in, cfg.features), nn.ReLU())
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.features, cfg.num_classes)

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """(b, l) -> (b, 1, m, t): log(1e-5 + mel power), roughly zero-mean per clip."""
        spec = torch.log(self.mel(wave.float()) + 1e-5)
        return (spec - spec.mean(dim=(1, 2), keepdim=True))[:, None]

    def embed(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """wave (b, l) -> (features (b, f), logits (b, k))."""
        if wave.dim() != 2:
            raise ValueError(f"wave: expected shape (b, l), got {tuple(wave.shape)}")
        h = self.convs(self.log_mel(wave))  # (b, c, m', t')
        feats = self.proj(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))
        return feats, self.head(self.drop(feats))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.embed(wave)[1]

    @torch.no_grad()
    def features_and_probs(self, waves: torch.Tensor, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """waves (n, l) prepared clips -> (features (n, f) float64, class probabilities (n, k) float64), eval mode."""
        was = self.training
        self.eval()
        feats, probs = [], []
        for i in range(0, len(waves), batch_size):
            f, logits = self.embed(waves[i:i + batch_size])
            feats.append(f.double())
            probs.append(torch.softmax(logits.double(), dim=-1))
        self.train(was)
        return torch.cat(feats), torch.cat(probs)


__all__ = ["DigitClassifier", "DigitClassifierConfig", "prepare"]

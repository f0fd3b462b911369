"""Acoustic units: each 20 ms frame of a clip named by the nearest of k log-mel centroids (k-means).

Dimension names: l samples · f frames (f = ceil(l / hop)) · m mel bins · k units.

Why: a sample-level model trained for an hour on one CPU core learns the sound of the recordings, not their words
(docs/audio.md). Words live at the frame rate: a spoken digit is 10-100 frames, not 8,000 samples. So the
two-stage model (`units.stage` in the audio job) splits the work as WaveNet's local conditioning (van den Oord et
al. 2016, section 2.6) and discrete-unit speech models (Lakhotia et al. 2021, "generative spoken language modeling")
do: a *planner* (a small Mamba over unit ids, conditioned on digit and speaker) says what to say, 50 tokens a
second; a *vocoder* (the sample-level model, given the unit of every sample's frame) says it. The units here are
plain k-means over normalised log-mel frames of the training clips (no learned encoder), so that they can be fitted
in seconds and read back in one table.

Frame f covers samples [f * hop, (f + 1) * hop); its log-mel is computed by a window centred on sample f * hop
(torchaudio's `center=True`), so it sees about half a window ahead — fine for a condition given whole in advance.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Sequence

import torch


@dataclass(frozen=True)
class UnitSpec:
    """The framing and features the centroids were fitted on (saved with them)."""

    sample_rate: int = 8000
    hop: int = 160  # 20 ms at 8 kHz
    n_fft: int = 512  # 64 ms window
    n_mels: int = 40


class UnitCoder:
    """Waveform (l,) in [-1, 1] -> unit ids (f,); the centroids (k, m) live in normalised log-mel space."""

    def __init__(self, spec: UnitSpec, centroids: torch.Tensor, mean: torch.Tensor, std: torch.Tensor):
        import torchaudio

        self.spec, self.centroids, self.mean, self.std = spec, centroids.float(), mean.float(), std.float()
        self._mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=spec.sample_rate, n_fft=spec.n_fft, hop_length=spec.hop, n_mels=spec.n_mels, center=True)

    @property
    def k(self) -> int:
        return len(self.centroids)

    def frames(self, length: int) -> int:
        """Frames of a clip of `length` samples: ceil(length / hop)."""
        return math.ceil(length / self.spec.hop)

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (l,) -> raw log-mel (f, m)."""
        n = len(wave)
        if n <= self.spec.n_fft // 2:  # the centred window reflects the clip's edges: it needs n_fft / 2 + 1 samples
            wave = torch.nn.functional.pad(wave, (0, self.spec.n_fft // 2 + 1 - n))
        with torch.no_grad():
            mel = self._mel(wave.float())  # (m, 1 + l // hop)
        return torch.log(mel + 1e-5).T[: self.frames(n)]

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (l,) -> normalised log-mel (f, m)."""
        return (self.log_mel(wave) - self.mean) / self.std

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (l,) -> unit ids (f,) long: the nearest centroid of every frame."""
        return torch.cdist(self.features(wave), self.centroids).argmin(1)

    def track(self, units: torch.Tensor, length: int) -> torch.Tensor:
        """units (..., f) -> the unit of every sample (..., length): unit f repeated hop times (cut or padded with
        the last frame's unit to `length`)."""
        per_sample = units.repeat_interleave(self.spec.hop, dim=-1)
        if per_sample.shape[-1] < length:
            pad = per_sample[..., -1:].expand(*per_sample.shape[:-1], length - per_sample.shape[-1])
            per_sample = torch.cat([per_sample, pad], -1)
        return per_sample[..., :length]

    # ------------------------------------------------------------------ fitting and saving
    @classmethod
    def fit(cls, waves: Sequence[torch.Tensor], k: int, spec: UnitSpec = UnitSpec(), iters: int = 30,
            seed: int = 0) -> "UnitCoder":
        """k-means (k-means++ seeding, then Lloyd's iterations) over every frame of `waves`."""
        probe = cls(spec, torch.zeros(1, spec.n_mels), torch.zeros(spec.n_mels), torch.ones(spec.n_mels))
        x = torch.cat([probe.log_mel(w) for w in waves])  # (frames, m)
        if len(x) < k:
            raise ValueError(f"units.k {k}: more units than the {len(x)} frames of the training clips")
        mean, std = x.mean(0), x.std(0).clamp_min(1e-3)
        x = (x - mean) / std
        g = torch.Generator().manual_seed(seed)
        centroids = kmeans_pp(x, k, g)
        for _ in range(iters):
            assign = torch.cdist(x, centroids).argmin(1)
            sums = torch.zeros_like(centroids).index_add_(0, assign, x)
            counts = torch.bincount(assign, minlength=k).to(x.dtype)
            empty = counts == 0
            centroids = torch.where(empty[:, None], centroids, sums / counts.clamp_min(1)[:, None])
        return cls(spec, centroids, mean, std)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"centroids": self.centroids.contiguous(), "mean": self.mean.contiguous(), "std": self.std.contiguous()}

    def metadata(self) -> dict[str, str]:
        return {"unit_spec": json.dumps(asdict(self.spec))}

    def save(self, path) -> None:
        from safetensors.torch import save_file

        save_file(self.state_dict(), str(path), metadata=self.metadata())

    def to_bytes(self) -> bytes:
        from safetensors.torch import save

        return save(self.state_dict(), metadata=self.metadata())

    @classmethod
    def load(cls, path) -> "UnitCoder":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            spec = UnitSpec(**json.loads(f.metadata()["unit_spec"]))
            t = {name: f.get_tensor(name) for name in ("centroids", "mean", "std")}
        return cls(spec, t["centroids"], t["mean"], t["std"])

    def same_as(self, other: "UnitCoder") -> bool:
        return self.spec == other.spec and self.centroids.shape == other.centroids.shape and bool(
            torch.equal(self.centroids, other.centroids))


def kmeans_pp(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each next centre drawn with probability ∝ squared distance
    to the nearest centre so far. x (n, m) -> (k, m)."""
    first = int(torch.randint(len(x), (1,), generator=generator))
    centres = [x[first]]
    d2 = ((x - x[first]) ** 2).sum(1)
    for _ in range(k - 1):
        i = int(torch.multinomial(d2.clamp_min(0) + 1e-12, 1, generator=generator))
        centres.append(x[i])
        d2 = torch.minimum(d2, ((x - x[i]) ** 2).sum(1))
    return torch.stack(centres)


__all__ = ["UnitCoder", "UnitSpec", "kmeans_pp"]

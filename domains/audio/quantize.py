"""Quantisers: waveform samples <-> integer ids (the tokenizers of the audio domain), with exact inverses on ids.

Dimension names: l samples (any leading shape works elementwise).

MuLawQuantizer(bits, scaling, bins), mu = 2^bits - 1, V = 2^bits ids:
    scaling "minmax"  per clip, x <- (2x - (max + min)) / (max - min): the clip fills [-1, 1] (SaShiMi, Goel et al.
                      2022); a constant clip (max == min) becomes silence instead of dividing by zero.
    scaling "none"    plain mu-law of the [-1, 1] waveform.
    companding        e = sign(x) · ln(1 + mu|x|) / ln(1 + mu), in [-1, 1]; inverse x = sign(e)((1 + mu)^|e| - 1)/mu.
    bins "round"      id = floor((e + 1)/2 · mu + 1/2): V levels at e = 2 id/mu - 1, both ends included (the
                      WaveNet / torchaudio mu_law_encoding grid); decode returns the level.
    bins "sashimi"    id = min(floor((e + 1)/2 · V), V - 1): V equal bins of [-1, 1] in e (SaShiMi's `quantize`,
                      which scales by V - 0.01); decode returns the bin centre. The README's FSDD baselines use
                      minmax + sashimi (unigram 7.375 bits); minmax + round gives 7.373.
LinearQuantizer(bits): V levels evenly over [-1, 1], id = floor((x + 1)/2 · (V - 1) + 1/2).

decode(encode(x)) is within half a step of scale(x) (in the companded domain for mu-law) and
encode(decode(ids), prescaled=True) == ids for every id (prescaled matters only for "minmax").
The arithmetic is float64 so that the re-encoding of a level lands on its own id, not next door.
`name` and `config()` spell the convention out, so a bits-per-sample figure can say which one it used.
"""

from __future__ import annotations

import math

import torch

SCALINGS = ("minmax", "none")
BINS = ("round", "sashimi")


def _as_wave(wave) -> torch.Tensor:
    w = torch.as_tensor(wave)
    if not w.is_floating_point():
        raise TypeError(f"wave: expected a floating-point tensor, got {w.dtype}")
    if not torch.isfinite(w).all():
        raise ValueError("wave: contains NaN or infinite samples")
    return w.to(torch.float64)


def _as_ids(ids, vocab_size: int) -> torch.Tensor:
    i = torch.as_tensor(ids)
    if i.is_floating_point() or i.is_complex() or i.dtype == torch.bool:
        raise TypeError(f"ids: expected an integer tensor, got {i.dtype}")
    if i.numel() and (int(i.min()) < 0 or int(i.max()) >= vocab_size):
        raise ValueError(f"ids: must lie in [0, {vocab_size - 1}], got [{int(i.min())}, {int(i.max())}]")
    return i.long()


def minmax_scale(wave: torch.Tensor) -> torch.Tensor:
    """Map a clip's [min, max] onto [-1, 1] (float64); a constant clip maps to zeros (silence)."""
    w = _as_wave(wave)
    if w.numel() == 0:
        return w
    lo, hi = w.min(), w.max()
    if hi <= lo:
        return torch.zeros_like(w)
    return ((2 * w - (hi + lo)) / (hi - lo)).clamp_(-1.0, 1.0)


class MuLawQuantizer:
    """Mu-law companding then uniform quantisation to 2^bits ids; see the module docstring for the formulas."""

    def __init__(self, bits: int = 8, scaling: str = "minmax", bins: str = "sashimi"):
        if not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ValueError(f"bits: must be an integer in [1, 16], got {bits!r}")
        if scaling not in SCALINGS:
            raise ValueError(f"scaling: must be one of {', '.join(SCALINGS)}, got {scaling!r}")
        if bins not in BINS:
            raise ValueError(f"bins: must be one of {', '.join(BINS)}, got {bins!r}")
        self.bits, self.scaling, self.bins = bits, scaling, bins
        self.vocab_size = 1 << bits
        self.mu = self.vocab_size - 1
        self.zero_id = int(self.encode(torch.zeros(1, dtype=torch.float64))[0])  # the id silence encodes to

    @property
    def name(self) -> str:
        return f"mulaw{self.bits}-{self.scaling}-{self.bins}"

    def config(self) -> dict:
        return {"kind": "mulaw", "bits": self.bits, "scaling": self.scaling, "bins": self.bins,
                "mu": self.mu, "vocab_size": self.vocab_size, "zero_id": self.zero_id, "name": self.name}

    def scale(self, wave) -> torch.Tensor:
        """The wave as the quantiser sees it before companding (float64): min-max scaled, or clamped to [-1, 1]."""
        return minmax_scale(wave) if self.scaling == "minmax" else _as_wave(wave).clamp(-1.0, 1.0)

    def compand(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sign(x) * torch.log1p(self.mu * x.abs()) / math.log1p(self.mu)

    def expand(self, e: torch.Tensor) -> torch.Tensor:
        return torch.sign(e) * torch.expm1(e.abs() * math.log1p(self.mu)) / self.mu

    def encode(self, wave, prescaled: bool = False) -> torch.Tensor:
        """wave (..., l) float -> ids (..., l) long in [0, 2^bits). Minmax scaling treats the input as one clip.

        prescaled=True skips the min-max scaling (the wave is already in the quantiser's domain, e.g. decode's
        output, whose own min and max need not be -1 and 1): encode(decode(ids), prescaled=True) == ids.
        """
        x = _as_wave(wave).clamp(-1.0, 1.0) if prescaled else self.scale(wave)
        e = self.compand(x)
        if self.bins == "round":
            ids = torch.floor((e + 1) / 2 * self.mu + 0.5)
        else:
            ids = torch.floor((e + 1) / 2 * self.vocab_size).clamp_(max=self.vocab_size - 1)
        return ids.long()

    def levels_companded(self, ids: torch.Tensor) -> torch.Tensor:
        i = ids.to(torch.float64)
        return 2 * i / self.mu - 1 if self.bins == "round" else (2 * i + 1) / self.vocab_size - 1

    def decode(self, ids) -> torch.Tensor:
        """ids (..., l) -> wave (..., l) float32 in [-1, 1] (in the scaled domain: minmax scaling is not undone)."""
        i = _as_ids(ids, self.vocab_size)
        return self.expand(self.levels_companded(i)).to(torch.float32)

    def __repr__(self) -> str:
        return f"MuLawQuantizer(bits={self.bits}, scaling={self.scaling!r}, bins={self.bins!r})"


class LinearQuantizer:
    """2^bits evenly spaced levels over [-1, 1], both ends included; values outside are clamped."""

    def __init__(self, bits: int = 8):
        if not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ValueError(f"bits: must be an integer in [1, 16], got {bits!r}")
        self.bits = bits
        self.vocab_size = 1 << bits
        self.zero_id = int(self.encode(torch.zeros(1, dtype=torch.float64))[0])

    @property
    def name(self) -> str:
        return f"linear{self.bits}"

    def config(self) -> dict:
        return {"kind": "linear", "bits": self.bits, "vocab_size": self.vocab_size, "zero_id": self.zero_id,
                "name": self.name}

    def encode(self, wave, prescaled: bool = False) -> torch.Tensor:
        """wave (..., l) float -> ids (..., l) long; `prescaled` is accepted for symmetry with MuLawQuantizer."""
        x = _as_wave(wave).clamp(-1.0, 1.0)
        return torch.floor((x + 1) / 2 * (self.vocab_size - 1) + 0.5).long()

    def decode(self, ids) -> torch.Tensor:
        i = _as_ids(ids, self.vocab_size).to(torch.float64)
        return (2 * i / (self.vocab_size - 1) - 1).to(torch.float32)

    def __repr__(self) -> str:
        return f"LinearQuantizer(bits={self.bits})"


def build_quantizer(config: dict) -> MuLawQuantizer | LinearQuantizer:
    """Rebuild a quantiser from its config() (e.g. stored next to a checkpoint)."""
    kind = config.get("kind")
    if kind == "mulaw":
        return MuLawQuantizer(int(config["bits"]), config.get("scaling", "minmax"), config.get("bins", "sashimi"))
    if kind == "linear":
        return LinearQuantizer(int(config["bits"]))
    raise ValueError(f"quantizer kind: must be 'mulaw' or 'linear', got {kind!r}")


__all__ = ["BINS", "SCALINGS", "LinearQuantizer", "MuLawQuantizer", "build_quantizer", "minmax_scale"]

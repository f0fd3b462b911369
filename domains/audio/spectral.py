"""The spectral unit decoder: acoustic units and a speaker -> a log-magnitude spectrogram -> Griffin-Lim -> a wave.

Dimension names: b batch · f frames · k units · n frequency bins (n_fft // 2 + 1) · d model width · l samples.

Why (docs/audio.md, "Two stages"): the sample-level vocoder, given the real units of test takes, rendered the digit
the classifier names for only 22-33% of clips, while the same units voiced by their centroids' mel frames and
Griffin-Lim were named 81% of the time, and the true STFT magnitude through this module's Griffin-Lim 97%. What the units carry
is lost in the sample-level model, not in the units. This decoder is the third road: a frame-level model that maps
the units of a clip to the spectrogram they came from, then Griffin-Lim (Griffin & Lim 1984) for the phase, as
Tacotron did (Wang et al. 2017, section 3.3). It reads the whole clip at once (layer "bimamba": a frame's
neighbours say how it is coarticulated, which the unit alone cannot) and the speaker (an embedding added at every
frame: the voice, which the units were fitted to ignore). It trains in minutes on a CPU and renders a clip in a
fraction of a second; the price is Griffin-Lim's phasey timbre, against a model of every sample.

Frames: frame t is the STFT window centred on sample t * hop (torchaudio's `center=True`), as UnitCoder frames
them, so the unit ids (f,) and the target (f, n) line up one to one.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from seqssm.domains.audio.units import UnitSpec

LOG_FLOOR = 1e-4  # log(|X| + 1e-4): -9.2 nats, below the quietest frame of an 8-bit clip
# Rendering silences the bins under LOW_CUT_HZ: speech has nothing there, but the per-clip min-max scaling of the
# training clips leaves DC offsets that the decoder learns, and Griffin-Lim turns them into a slow drift of the wave.
LOW_CUT_HZ = 40.0


def log_magnitude(wave: torch.Tensor, spec: UnitSpec, frames: int) -> torch.Tensor:
    """wave (l,) -> log(|STFT| + LOG_FLOOR) (frames, n), the frames of UnitCoder.encode(wave)."""
    if len(wave) <= spec.n_fft // 2:  # the centred window reflects the edges: it needs n_fft / 2 + 1 samples
        wave = torch.nn.functional.pad(wave, (0, spec.n_fft // 2 + 1 - len(wave)))
    window = torch.hann_window(spec.n_fft)
    stft = torch.stft(wave.float(), spec.n_fft, spec.hop, window=window, center=True, return_complex=True)
    return torch.log(stft.abs() + LOG_FLOOR).T[:frames]


def griffin_lim(log_mag: torch.Tensor, spec: UnitSpec, n_iter: int = 64, momentum: float = 0.99) -> torch.Tensor:
    """log-magnitude (f, n) -> wave (f * hop,), peak 0.9: Griffin-Lim phase (the fast variant of Perraudin et al.
    2013, torchaudio's), started from zero phase so that a clip is the same on every call; the bins under
    LOW_CUT_HZ are silenced first."""
    import torchaudio

    if log_mag.dim() != 2 or log_mag.shape[1] != spec.n_fft // 2 + 1:
        raise ValueError(f"log_mag: expected (f, {spec.n_fft // 2 + 1}), got {tuple(log_mag.shape)}")
    magnitude = (log_mag.float().exp() - LOG_FLOOR).clamp_min(0).T  # (n, f)
    low = int(LOW_CUT_HZ * spec.n_fft / spec.sample_rate) + 1  # bins 0 .. low - 1 lie under LOW_CUT_HZ
    magnitude = torch.cat([torch.zeros_like(magnitude[:low]), magnitude[low:]])
    # F centred frames make (F - 1) * hop samples: one frame of silence after the last gives frame f - 1 its whole
    # hop, and a clip shorter than a window gets the frames the inverse STFT needs; both are cut off below
    pad = max(1, spec.n_fft // spec.hop + 2 - magnitude.shape[1])
    magnitude = torch.nn.functional.pad(magnitude, (0, pad))
    gl = torchaudio.transforms.GriffinLim(n_fft=spec.n_fft, hop_length=spec.hop, power=1.0, n_iter=n_iter,
                                          momentum=momentum, rand_init=False,
                                          length=(magnitude.shape[1] - 1) * spec.hop)
    wave = gl(magnitude)[: len(log_mag) * spec.hop]
    return wave / wave.abs().max().clamp_min(1e-6) * 0.9


def centroid_log_magnitude(coder, units: torch.Tensor) -> torch.Tensor:
    """The coder's table as a decoder: units (f,) -> each centroid's log-mel frame, back to (f, n) linear-frequency
    log-magnitudes by the least-squares inverse of the mel filters."""
    import torchaudio

    spec = coder.spec
    mel_power = (coder.centroids[units] * coder.std + coder.mean).exp().T  # (m, f), as UnitCoder.log_mel took it
    power = torchaudio.transforms.InverseMelScale(n_stft=spec.n_fft // 2 + 1, n_mels=spec.n_mels,
                                                  sample_rate=spec.sample_rate)(mel_power)
    return 0.5 * torch.log(power.clamp_min(0) + 1e-8).T.clamp_min(math.log(LOG_FLOOR))


class UnitDecoder(nn.Module):
    """A `token` model of the core (backbone -> one linear output per position) read as log-magnitudes: unit ids
    (token k pads) plus a speaker embedding added to every frame's embedding -> (b, f, n)."""

    def __init__(self, model: nn.Module, speakers: Sequence[str], n_units: int, spec: UnitSpec):
        super().__init__()
        cfg = model.config
        if cfg.vocab_size != n_units + 1 or cfg.num_classes != spec.n_fft // 2 + 1:
            raise ValueError(f"a decoder of {n_units} units and n_fft {spec.n_fft} needs model.vocab_size "
                             f"{n_units + 1} and model.num_classes {spec.n_fft // 2 + 1}, got {cfg.vocab_size} "
                             f"and {cfg.num_classes}")
        if not speakers:
            raise ValueError("speakers: need at least one")
        self.model, self.speakers, self.n_units, self.spec = model, list(speakers), n_units, spec
        self.speaker_embed = nn.Embedding(len(self.speakers), cfg.d_model)
        nn.init.normal_(self.speaker_embed.weight, std=0.02)  # as the unit embedding (init_weights)
        self._offset: torch.Tensor | None = None
        model.backbone.embedding.register_forward_hook(self._add_offset)

    @property
    def config(self):
        return self.model.config

    def _add_offset(self, module, inputs, output):
        return output if self._offset is None else output + self._offset[:, None].to(output.dtype)

    def speaker_id(self, speaker: str) -> int:
        if speaker not in self.speakers:
            raise ValueError(f"speaker {speaker!r}: unknown; this decoder knows {', '.join(self.speakers)}")
        return self.speakers.index(speaker)

    def forward(self, units: torch.Tensor, speaker: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """units (b, f) long in [0, k] (k: padding), speaker (b,) long, mask (b, f) 1 for real frames ->
        log-magnitudes (b, f, n) float32. Right padding gets a sequence id of its own, so the backward scan does
        not carry it into the real frames."""
        if units.dim() != 2 or speaker.shape != units.shape[:1]:
            raise ValueError(f"units (b, f) and speaker (b,): got {tuple(units.shape)} and {tuple(speaker.shape)}")
        seq_idx = None if mask is None else (mask == 0).to(torch.int64)
        self._offset = self.speaker_embed(speaker)
        try:
            hidden, _ = self.model.backbone(units, seq_idx=seq_idx)
        finally:
            self._offset = None
        return self.model.classifier(hidden).float()

    @torch.no_grad()
    def render(self, units: torch.Tensor, speaker: str, n_iter: int = 64) -> torch.Tensor:
        """units (f,) -> wave (f * hop,): the decoded spectrogram through Griffin-Lim."""
        log_mag = self(units[None].long(), torch.tensor([self.speaker_id(speaker)]))[0]
        return griffin_lim(log_mag, self.spec, n_iter)

    def condition_state_dict(self) -> dict[str, torch.Tensor]:
        return {"speaker_embed": self.speaker_embed.weight.detach().contiguous()}

    def load_condition_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.speaker_embed.weight.copy_(tensors["speaker_embed"])

    def param_groups(self, weight_decay: float) -> list[dict]:
        """The inner model's AdamW groups; the speaker table joins the no-decay group (embeddings)."""
        groups = self.model.param_groups(weight_decay)
        groups[1]["params"] = groups[1]["params"] + [self.speaker_embed.weight]
        return groups


__all__ = ["LOG_FLOOR", "LOW_CUT_HZ", "UnitDecoder", "centroid_log_magnitude", "griffin_lim", "log_magnitude"]

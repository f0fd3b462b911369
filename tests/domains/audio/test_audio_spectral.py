"""The spectral unit decoder (seqssm.domains.audio.spectral): frames that line up with the coder's units, Griffin-Lim
that gives back the magnitude it was handed, and a decoder whose padding, speaker and shapes behave."""

from __future__ import annotations

import math

import pytest
import torch

from seqssm import ModelConfig, build_model
from seqssm.domains.audio.spectral import (LOG_FLOOR, UnitDecoder, centroid_log_magnitude, griffin_lim,
                                           log_magnitude)
from seqssm.domains.audio.units import UnitCoder, UnitSpec

SPEC = UnitSpec(sample_rate=8000, hop=40, n_fft=128, n_mels=8)


def _decoder(k: int = 5, speakers=("ann", "bob")) -> UnitDecoder:
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=16, n_layer=2, vocab_size=k + 1, layer="bimamba", head="token",
                      num_classes=SPEC.n_fft // 2 + 1)
    cfg.ssm.d_state = 4
    return UnitDecoder(build_model(cfg), speakers, k, SPEC).eval()


@pytest.mark.parametrize("length", [30, 64, 65, 400, 1001], ids=lambda n: f"l{n}")
def test_log_magnitude_has_one_frame_per_unit(length):
    wave = torch.randn(length) * 0.1
    coder = UnitCoder(SPEC, torch.randn(3, SPEC.n_mels), torch.zeros(SPEC.n_mels), torch.ones(SPEC.n_mels))
    got = log_magnitude(wave, SPEC, coder.frames(length))
    assert got.shape == (len(coder.encode(wave)), SPEC.n_fft // 2 + 1)
    assert got.min() >= math.log(LOG_FLOOR) - 1e-6


def test_log_magnitude_is_the_stft_of_the_centred_window():
    wave = torch.randn(800)
    got = log_magnitude(wave, SPEC, 20)
    frame = 7  # centred on sample 7 * hop: wholly inside the clip, no reflection
    centre = frame * SPEC.hop
    segment = wave[centre - SPEC.n_fft // 2: centre + SPEC.n_fft // 2] * torch.hann_window(SPEC.n_fft)
    want = torch.log(torch.fft.rfft(segment).abs() + LOG_FLOOR)
    assert (got[frame] - want).abs().max() < 1e-4


def test_griffin_lim_gives_back_the_magnitude_it_was_handed():
    """A tone's magnitude through Griffin-Lim: the new wave's spectrogram is the old one (spectral convergence), and
    the wave is f * hop samples with peak 0.9."""
    t = torch.arange(4000) / SPEC.sample_rate
    wave = 0.5 * torch.sin(2 * math.pi * 440 * t) * torch.linspace(0.2, 1, 4000)
    frames = 100
    target = log_magnitude(wave, SPEC, frames)
    out = griffin_lim(target, SPEC, n_iter=64)
    assert out.shape == (frames * SPEC.hop,) and out.abs().max() == pytest.approx(0.9, abs=1e-6)
    again = log_magnitude(out, SPEC, frames)
    a, b = target.exp() - LOG_FLOOR, again.exp() - LOG_FLOOR
    a, b = a / a.norm(), b / b.norm()  # Griffin-Lim keeps the shape, the peak normalisation sets the scale
    inner = slice(4, frames - 4)  # the edges see reflected padding
    assert (a[inner] - b[inner]).norm() / a[inner].norm() < 0.15
    assert torch.equal(out, griffin_lim(target, SPEC, n_iter=64))  # no random phase: the same clip every call


def test_griffin_lim_leaves_out_what_lies_under_the_low_cut():
    """A tone on a DC offset: the rendered wave keeps the tone and drops the offset (bins under LOW_CUT_HZ)."""
    t = torch.arange(4000) / SPEC.sample_rate
    wave = 0.3 + 0.3 * torch.sin(2 * math.pi * 440 * t)
    out = griffin_lim(log_magnitude(wave, SPEC, 100), SPEC, n_iter=32)
    assert wave.mean() / wave.abs().max() > 0.4  # the input sits mostly above zero
    assert out[400:-400].mean().abs() < 0.02 and out.abs().max() == pytest.approx(0.9, abs=1e-6)


def test_the_coders_table_as_a_decoder_puts_a_tone_where_it_was():
    """centroid_log_magnitude: a centroid fitted on a 1 kHz tone, mapped back to linear frequency, is loudest
    near 1 kHz, and a centroid of near silence is nowhere louder."""
    t = torch.arange(2000) / SPEC.sample_rate
    tone, hush = 0.5 * torch.sin(2 * math.pi * 1000 * t), 1e-3 * torch.randn(2000)
    probe = UnitCoder(SPEC, torch.zeros(1, SPEC.n_mels), torch.zeros(SPEC.n_mels), torch.ones(SPEC.n_mels))
    centroids = torch.stack([probe.log_mel(tone)[5:-5].mean(0), probe.log_mel(hush)[5:-5].mean(0)])
    coder = UnitCoder(SPEC, centroids, torch.zeros(SPEC.n_mels), torch.ones(SPEC.n_mels))
    table = centroid_log_magnitude(coder, torch.tensor([0, 1, 0]))
    assert table.shape == (3, SPEC.n_fft // 2 + 1) and table.min() >= math.log(LOG_FLOOR) - 1e-6
    bin_hz = SPEC.sample_rate / SPEC.n_fft
    assert abs(float(table[0].argmax()) * bin_hz - 1000) < 250  # 40 mel bands over 4 kHz: a band or two wide
    assert torch.equal(table[0], table[2])
    assert (table[0] >= table[1] - 1e-6).all() and table[0].max() > table[1].max() + 3  # the tone over the hush


@pytest.mark.parametrize("frames", [1, 2, 3], ids=lambda f: f"f{f}")
def test_griffin_lim_of_a_few_frames(frames):
    out = griffin_lim(torch.zeros(frames, SPEC.n_fft // 2 + 1), SPEC, n_iter=4)
    assert out.shape == (frames * SPEC.hop,) and torch.isfinite(out).all()


def test_griffin_lim_refuses_another_number_of_bins():
    with pytest.raises(ValueError, match=r"log_mag: expected \(f, 65\)"):
        griffin_lim(torch.zeros(10, 64), SPEC)


def test_decoder_padding_does_not_reach_the_real_frames():
    """A row padded to the batch's length (the backward scan reads the padding first) gives the same frames as the
    row alone."""
    dec = _decoder()
    short, long = torch.randint(0, 5, (7,)), torch.randint(0, 5, (12,))
    units = torch.full((2, 12), 5)
    units[0, :7], units[1] = short, long
    mask = torch.zeros(2, 12)
    mask[0, :7], mask[1] = 1, 1
    speaker = torch.tensor([0, 1])
    with torch.no_grad():
        batch = dec(units, speaker, mask)
        alone = dec(short[None], speaker[:1])
    assert batch.shape == (2, 12, 65) and batch.dtype == torch.float32
    assert (batch[0, :7] - alone[0]).abs().max() < 1e-5


def test_decoder_reads_the_speaker():
    dec = _decoder()
    units = torch.randint(0, 5, (1, 9))
    with torch.no_grad():
        dec.speaker_embed.weight.normal_()
        a, b = dec(units, torch.tensor([0])), dec(units, torch.tensor([1]))
    assert (a - b).abs().max() > 1e-4


def test_render_is_f_times_hop_samples_and_its_tables_round_trip():
    dec = _decoder()
    wave = dec.render(torch.tensor([0, 1, 2, 3, 4, 4, 4]), "bob", n_iter=4)
    assert wave.shape == (7 * SPEC.hop,)
    other = _decoder()
    other.load_condition_state_dict(dec.condition_state_dict())
    assert torch.equal(other.speaker_embed.weight, dec.speaker_embed.weight)


@pytest.mark.parametrize("case", ["vocab", "bins", "speakers", "unknown-speaker", "shapes"])
def test_decoder_bad_input(case):
    cfg = ModelConfig(d_model=16, n_layer=1, vocab_size=6, layer="bimamba", head="token", num_classes=65)
    if case == "vocab":
        with pytest.raises(ValueError, match="needs model.vocab_size 8"):
            UnitDecoder(build_model(cfg), ["ann"], 7, SPEC)
    elif case == "bins":
        with pytest.raises(ValueError, match="model.num_classes 129"):
            UnitDecoder(build_model(cfg), ["ann"], 5, UnitSpec(hop=40, n_fft=256, n_mels=8))
    elif case == "speakers":
        with pytest.raises(ValueError, match="speakers: need at least one"):
            UnitDecoder(build_model(cfg), [], 5, SPEC)
    elif case == "unknown-speaker":
        with pytest.raises(ValueError, match="speaker 'zoe': unknown; this decoder knows ann, bob"):
            _decoder().render(torch.tensor([1, 2]), "zoe")
    else:
        with pytest.raises(ValueError, match=r"units \(b, f\) and speaker \(b,\)"):
            _decoder()(torch.zeros(2, 5, dtype=torch.long), torch.tensor([0]))

"""load_audio / iter_audio_blocks / save_wav: conversions that must happen, and files that must be refused."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from seqssm.domains.audio import AudioInputError, audio_info, iter_audio_blocks, list_audio_files, load_audio, save_wav

from audio_helpers import tone, write


@pytest.mark.parametrize("fmt,subtype,tol", [
    pytest.param("WAV", "PCM_16", 1 / 32768, id="wav-pcm16"),
    pytest.param("WAV", "FLOAT", 1e-7, id="wav-float"),
    pytest.param("FLAC", "PCM_16", 1 / 32768, id="flac"),
    pytest.param("OGG", "VORBIS", 0.05, id="ogg-vorbis"),
])
def test_load_roundtrip_formats(tmp_path, fmt, subtype, tol):
    x = tone(4000)
    p = write(tmp_path / f"a.{fmt.lower()}", x, 8000, subtype, fmt)
    wave, info = load_audio(p, 8000)
    assert wave.dtype == torch.float32 and wave.shape == (4000,)
    assert info.sample_rate == 8000 and info.channels == 1 and info.format == fmt
    assert float((wave - torch.from_numpy(x)).abs().max()) <= tol


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = tone(800, 200), tone(800, 300, amp=0.25)
    p = write(tmp_path / "st.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    wave, info = load_audio(p, 8000)
    assert info.channels == 2
    torch.testing.assert_close(wave, torch.from_numpy((left + right) / 2), atol=1e-7, rtol=0)


def test_other_rate_is_resampled(tmp_path):
    p = write(tmp_path / "r16k.wav", tone(1600, 100, rate=16000), rate=16000, subtype="FLOAT")
    wave, info = load_audio(p, 8000)
    assert info.sample_rate == 16000 and wave.shape == (800,)
    # a 100 Hz tone survives resampling: compare away from the edges, where the filter sees the clip boundary
    torch.testing.assert_close(wave[100:-100], torch.from_numpy(tone(800, 100))[100:-100], atol=5e-3, rtol=0)


def test_float_file_beyond_full_scale_is_clamped(tmp_path):
    p = write(tmp_path / "loud.wav", np.array([2.0, -3.0, 0.5], np.float32), subtype="FLOAT")
    assert load_audio(p)[0].tolist() == [1.0, -1.0, 0.5]


def test_blocks_cover_the_file_in_order(tmp_path):
    x = tone(1000)
    p = write(tmp_path / "b.wav", x, subtype="FLOAT")
    blocks = list(iter_audio_blocks(p, block_frames=300))
    assert [len(b) for b in blocks] == [300, 300, 300, 100]
    np.testing.assert_array_equal(np.concatenate(blocks), x)


def _truncated(tmp_path):
    p = write(tmp_path / "t.wav", tone(1000))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p, "truncated"


def _empty(tmp_path):
    p = tmp_path / "e.wav"
    p.write_bytes(b"")
    return p, "empty"


def _no_samples(tmp_path):
    return write(tmp_path / "z.wav", np.zeros(0, np.float32)), "no samples"


def _text(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio\n" * 10)
    return p, "not a readable audio file"


def _header_only(tmp_path):
    p = write(tmp_path / "h.wav", tone(100))
    p.write_bytes(p.read_bytes()[:30])
    return p, "not a readable audio file"


def _nan(tmp_path):
    return write(tmp_path / "n.wav", np.array([0.1, np.nan, 0.2], np.float32), subtype="FLOAT"), "NaN"


def _inf(tmp_path):
    return write(tmp_path / "i.wav", np.array([0.1, np.inf], np.float32), subtype="FLOAT"), "NaN or infinite"


def _missing(tmp_path):
    return tmp_path / "missing.wav", "no such file"


@pytest.mark.parametrize("make", [_truncated, _empty, _no_samples, _text, _header_only, _nan, _inf, _missing],
                         ids=lambda f: f.__name__.strip("_"))
def test_bad_files_give_one_line_naming_the_file(tmp_path, make):
    path, words = make(tmp_path)
    with pytest.raises(AudioInputError) as err:
        load_audio(path, 8000)
    msg = str(err.value)
    assert str(path) in msg and words in msg and "\n" not in msg
    assert isinstance(err.value, ValueError)


def test_folder_without_audio_is_refused(tmp_path):
    (tmp_path / "readme.txt").write_text("no audio here")
    with pytest.raises(AudioInputError, match="no audio files"):
        list_audio_files(tmp_path)


def test_folder_listing_is_sorted_and_filtered(tmp_path):
    for name in ("b.wav", "a.flac", "c.OGG", "d.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_audio_files(tmp_path)] == ["a.flac", "b.wav", "c.OGG"]


def test_save_wav_roundtrip_and_atomic(tmp_path):
    x = torch.linspace(-1.2, 1.2, 50)  # beyond full scale on purpose: clipped, not wrapped around
    p = save_wav(tmp_path / "out.wav", x, 8000)
    info = audio_info(p)
    assert (info.subtype, info.sample_rate, info.frames) == ("PCM_16", 8000, 50)
    back, _ = load_audio(p)
    torch.testing.assert_close(back, x.clamp(-1, 1), atol=1 / 32768, rtol=0)
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]  # no temporary file left behind


def test_save_wav_failure_leaves_old_file_and_no_temp(tmp_path):
    p = save_wav(tmp_path / "keep.wav", torch.zeros(10), 8000)
    before = p.read_bytes()
    with pytest.raises(AudioInputError, match="NaN"):
        save_wav(p, torch.tensor([0.0, float("nan")]), 8000)
    assert p.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["keep.wav"]


def test_save_wav_interrupted_write_removes_temp(tmp_path, monkeypatch):
    p = save_wav(tmp_path / "keep.wav", torch.zeros(10), 8000)
    before = p.read_bytes()

    def broken_write(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(sf, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        save_wav(p, torch.ones(10) * 0.5, 8000)
    assert p.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["keep.wav"]

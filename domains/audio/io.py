"""Audio file I/O through soundfile (libsndfile): WAV, FLAC and OGG Vorbis, no FFmpeg.

Dimension names: l samples (frames) · c channels.

Everything the models see is mono float32 in [-1, 1] at one sample rate; files in stereo or at other rates are
converted (channel mean, torchaudio.functional.resample), not refused. What cannot be used (a missing, empty,
truncated or corrupt file, a non-audio file with an audio name, NaN/inf samples, a folder with no audio) raises
AudioInputError with one line naming the file, so a command line can print it and exit 2.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import soundfile as sf
import torch

from seqssm.atomic import atomic_open

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
DEFAULT_BLOCK_FRAMES = 1 << 16


class AudioInputError(ValueError):
    """An audio file or folder that cannot be used; the message is one line naming the path."""


@dataclass(frozen=True)
class AudioInfo:
    """What the file holds (before conversion): its own rate, frame count, channels and encoding."""

    path: str
    sample_rate: int
    frames: int
    channels: int
    format: str
    subtype: str


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _check_wav_complete(path: Path) -> None:
    """libsndfile reads a truncated WAV silently (fewer frames than its header declares), so compare the size the
    'data' chunk declares with the bytes actually present."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            return  # not RIFF/WAVE: libsndfile decides (and refuses it if it is not audio)
        if head[:4] == b"RF64":
            return  # 64-bit sizes live in a ds64 chunk; rare enough to leave to libsndfile
        size = path.stat().st_size
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return
            cid, clen = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                # 0 and 0xFFFFFFFF are what streaming writers leave when they cannot seek back: size unknown
                if clen not in (0, 0xFFFFFFFF) and f.tell() + clen > size:
                    raise AudioInputError(
                        f"{path}: truncated WAV (data chunk declares {clen} bytes, file has {size - f.tell()})"
                    )
                return
            f.seek(clen + (clen & 1), os.SEEK_CUR)  # chunks are padded to an even length


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Open the file's header; raise AudioInputError if it is missing, empty, truncated or not audio."""
    p = Path(path)
    if not p.exists():
        raise AudioInputError(f"{p}: no such file")
    if p.is_dir():
        raise AudioInputError(f"{p}: is a folder, expected an audio file")
    if p.stat().st_size == 0:
        raise AudioInputError(f"{p}: empty file (0 bytes)")
    try:
        info = sf.info(str(p))
    except (sf.SoundFileError, RuntimeError) as err:
        raise AudioInputError(f"{p}: not a readable audio file ({_one_line(err)})") from None
    if info.format == "WAV" or p.suffix.lower() == ".wav":
        _check_wav_complete(p)
    if info.frames <= 0:
        raise AudioInputError(f"{p}: contains no samples")
    return AudioInfo(str(p), int(info.samplerate), int(info.frames), int(info.channels), info.format, info.subtype)


def iter_audio_blocks(path: str | os.PathLike, block_frames: int = DEFAULT_BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """Yield mono float32 blocks (l,) of at most block_frames samples at the file's own rate.

    Long files never sit in memory whole in their multichannel form. Resampling is left to the caller on the whole
    signal (load_audio), because resampling block by block would put seams at the block edges.
    """
    if block_frames < 1:
        raise ValueError(f"block_frames: must be >= 1, got {block_frames}")
    info = audio_info(path)
    try:
        with sf.SoundFile(info.path) as f:
            while True:
                block = f.read(block_frames, dtype="float32", always_2d=True)  # (l, c)
                if len(block) == 0:
                    return
                if not np.isfinite(block).all():
                    raise AudioInputError(f"{info.path}: contains NaN or infinite samples")
                yield block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
    except (sf.SoundFileError, RuntimeError) as err:
        raise AudioInputError(f"{info.path}: corrupt audio data ({_one_line(err)})") from None


def load_audio(
    path: str | os.PathLike, sample_rate: int | None = None, mono: bool = True,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
) -> tuple[torch.Tensor, AudioInfo]:
    """Read a WAV/FLAC/OGG file as float32 (l,) in [-1, 1], mono, resampled to sample_rate (None: keep the file's).

    Returns (wave, info) where info describes the file as stored (its own rate and channels).
    """
    if not mono:
        raise NotImplementedError("mono=False: the audio models here are single-channel")
    info = audio_info(path)
    blocks = list(iter_audio_blocks(path, block_frames))
    wave = torch.from_numpy(np.concatenate(blocks) if blocks else np.zeros(0, np.float32))
    if wave.numel() == 0:
        raise AudioInputError(f"{info.path}: contains no samples")
    if sample_rate is not None and sample_rate != info.sample_rate:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate: must be > 0, got {sample_rate}")
        wave = _resample(wave, info.sample_rate, sample_rate)
    # float files may exceed full scale; integer PCM cannot. Clamp so every consumer sees [-1, 1].
    return wave.clamp_(-1.0, 1.0), info


def _resample(wave: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    import torchaudio.functional as AF  # only the functional ops: torchaudio's own I/O is not used anywhere here

    return AF.resample(wave, orig, new).to(torch.float32)


def list_audio_files(folder: str | os.PathLike, suffixes: Sequence[str] = AUDIO_SUFFIXES) -> list[Path]:
    """The audio files directly in a folder, sorted by name; AudioInputError if there are none."""
    p = Path(folder)
    if not p.is_dir():
        raise AudioInputError(f"{p}: no such folder")
    found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
    if not found:
        raise AudioInputError(f"{p}: no audio files ({', '.join(suffixes)})")
    return found


def save_wav(path: str | os.PathLike, wave: torch.Tensor | np.ndarray, sample_rate: int) -> Path:
    """Write a mono wave (l,) in [-1, 1] as 16-bit PCM WAV, atomically (temp file in the same folder, os.replace).

    Samples beyond full scale are clipped (as a DAC would); NaN/inf are refused rather than written as noise.
    """
    p = Path(path)
    data = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    if data.ndim != 1:
        raise ValueError(f"wave: expected shape (l,), got {tuple(data.shape)}")
    if not np.isfinite(data).all():
        raise AudioInputError(f"{p}: refusing to write NaN or infinite samples")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate: must be > 0, got {sample_rate}")
    data = np.clip(data.astype(np.float32), -1.0, 1.0)
    with atomic_open(p, "wb") as f:
        sf.write(f, data, sample_rate, format="WAV", subtype="PCM_16")
    return p


__all__ = [
    "AUDIO_SUFFIXES",
    "AudioInfo",
    "AudioInputError",
    "audio_info",
    "iter_audio_blocks",
    "list_audio_files",
    "load_audio",
    "save_wav",
]

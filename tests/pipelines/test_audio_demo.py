"""The audio part of `make demo`, on the bundled FSDD subset with a tiny model: it trains, scores the test takes
beside the reference points, and writes a generated clip with its picture."""

from __future__ import annotations

import json
from pathlib import Path

import soundfile as sf

from seqssm.domains.audio import parse_fsdd_name
from seqssm.pipelines import demo

ROOT = Path(__file__).resolve().parents[2]
TINY = ["model.d_model=8", "model.ssm.d_state=4", "train.max_steps=3", "train.val_every=3", "train.warmup_steps=1",
        "data.crop_len=256", "train.progress_bar=false"]


def test_bundled_fsdd_subset_is_one_speaker_takes_0_to_11():
    files = sorted((ROOT / demo.DEMO_AUDIO).glob("*.wav"))
    assert len(files) == 120
    assert {parse_fsdd_name(f)[1] for f in files} == {"jackson"}
    assert {parse_fsdd_name(f)[2] for f in files} == set(range(12))
    assert all(sf.info(str(f)).samplerate == 8000 for f in files)


def test_demo_audio_trains_scores_and_generates(tmp_path, capsys):
    out = tmp_path / "out"
    overrides = [arg for kv in TINY for arg in ("--audio-set", kv)]
    assert demo.main(["--skip-lm", "--skip-dna", "--out", str(out), *overrides]) == 0
    printed = capsys.readouterr().out
    m = json.loads((out / "audio" / "metrics.json").read_text())
    assert m["steps"] == 3 and m["files"]["test"] == 50
    line = next(ln for ln in printed.splitlines() if "test bits per sample" in ln)
    assert f"{m['test_bits_per_sample']:.4f}" in line
    assert "unigram" in printed and "8.0000" in printed
    wave, rate = sf.read(str(out / "audio" / "generated" / "sample_00.wav"))
    assert rate == 8000 and len(wave) == 8000
    assert (out / "audio" / "generated" / "sample_00.png").is_file()

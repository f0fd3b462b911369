"""What the acoustic units carry, without the vocoder: unit ids -> their centroids' log-mel frames -> a magnitude
spectrogram (least-squares inverse of the mel filters) -> Griffin-Lim phase -> WAV. Score the folders it writes
with `seqssm audio score` to see whether a plan names its digit before any sample-level model says it.

    python scripts/units_griffin_lim.py --coder RUN --out DIR --files FSDD_FILES       # real units (the ceiling)
    python scripts/units_griffin_lim.py --coder RUN --out DIR --plan PLAN_RUN --batch 2  # the planner's samples
    python scripts/units_griffin_lim.py --coder RUN --out DIR --files FSDD_FILES --true-magnitude  # no units at all

Clips are named {digit}_{speaker}_{i}.wav, as `seqssm audio score` reads the asked digit. A diagnostic only: the
centroids are averages, so the sound is buzzy and flat; Griffin-Lim (Griffin & Lim 1984) as the spectral unit
decoder renders (64 iterations, zero initial phase, the bins under 40 Hz silenced).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from seqssm.domains.audio import AudioFolder, list_audio_files, parse_fsdd_name, save_wav
from seqssm.domains.audio.spectral import centroid_log_magnitude, griffin_lim, log_magnitude
from seqssm.pipelines.audio.infer import load_run, sample_plans
from seqssm.pipelines.audio.twostage import clip_units, read_coder, speed_waves


def units_to_wave(coder, units: torch.Tensor) -> torch.Tensor:
    """units (f,) -> a waveform (f * hop,), peak 0.9: the coder's table as a decoder, voiced by the same Griffin-Lim
    as the spectral unit decoder (seqssm.domains.audio.spectral), so the two compare like for like."""
    return griffin_lim(centroid_log_magnitude(coder, units), coder.spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coder", required=True, help="a two-stage run folder (vocoder or planner) holding the coder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--files", help="FSDD-named files or a folder: their own units")
    ap.add_argument("--true-magnitude", action="store_true",
                    help="with --files: voice each file's own STFT magnitude instead of its units (what Griffin-Lim "
                         "alone costs)")
    ap.add_argument("--plan", help="a planner run: sample plans for every digit x speaker")
    ap.add_argument("--batch", type=int, default=2, help="with --plan: plans per digit x speaker")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.true_magnitude and not args.files:
        ap.error("--true-magnitude: voices --files (their own spectra), not plans")
    coder = read_coder(args.coder, "--coder")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    named = []
    if args.files:
        src = Path(args.files)
        files = list_audio_files(src) if src.is_dir() else [src]
        run = load_run(args.coder)
        clips = AudioFolder(files, coder.spec.sample_rate, run.quantizer)
        if args.true_magnitude:  # the file as the models see it (quantised, decoded), its whole spectrum
            for i, wave in speed_waves(clips, run.quantizer):
                spectrum = log_magnitude(wave, coder.spec, coder.frames(len(wave)))
                save_wav(out / files[i].name, griffin_lim(spectrum, coder.spec).numpy(), coder.spec.sample_rate)
            print(f"{len(files)} clips in {out}")
            return
        plans = clip_units(coder, clips, run.quantizer)
        named = [(parse_fsdd_name(f)[:2], p) for f, p in zip(files, plans)]
    else:
        planner = load_run(args.plan).model
        conditions = [(d, s) for d in range(planner.n_digits) for s in planner.speakers for _ in range(args.batch)]
        prefix = torch.stack([planner.prefix(d, s) for d, s in conditions])
        plans = sample_plans(planner, coder, prefix, coder.frames(round(2.3 * coder.spec.sample_rate)),
                             args.temperature, args.seed)
        named = list(zip(conditions, plans))
    seen: dict[str, int] = {}
    for (digit, speaker), units in named:
        key = f"{digit}_{speaker}"
        seen[key] = seen.get(key, -1) + 1
        save_wav(out / f"{key}_{seen[key]:02d}.wav", units_to_wave(coder, units).numpy(), coder.spec.sample_rate)
    print(f"{len(named)} clips in {out}")


if __name__ == "__main__":
    main()

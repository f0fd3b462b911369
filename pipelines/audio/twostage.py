"""The two-stage audio model's data and sampling (seqssm.domains.audio.units explains the why): unit tracks for the
vocoder, unit sequences for the planner, and plan-then-vocode generation.

Dimension names: b batch · l samples · f frames (units) · k units.

Stage "vocoder": every training clip's units come from the run's coder (fitted on the training clips), spread to
one unit per sample (the track); crops of samples and track are cut together. Stage "planner": each clip is the
sequence [end, u_0, …, u_{f-1}, end] of its units (token k is both the start and the end), read after the prefix
tokens [digit, speaker] of a ConditionalSampleLM. Generation: the planner samples units until its end token (or
the length asked for; `sample_plans` in infer.py, beside the sampling loop), the track is spread from them, and
the vocoder samples every sample given its unit.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from seqssm.domains.audio.units import UnitCoder, UnitSpec
from seqssm.pipelines.jobconfig import UsageError

UNITS_FILE = "units.safetensors"  # the coder (centroids, normalisation, framing) beside a two-stage run's weights


def fit_coder(clips, quantizer, units_cfg, seed: int) -> UnitCoder:
    """k-means units over the frames of the training clips, as the models see them (quantised and decoded)."""
    spec = UnitSpec(sample_rate=clips.sample_rate, hop=units_cfg.hop, n_fft=units_cfg.n_fft, n_mels=units_cfg.n_mels)
    waves = [quantizer.decode(clips[i]).float() for i in range(len(clips))]
    try:
        return UnitCoder.fit(waves, units_cfg.k, spec, units_cfg.kmeans_iters, seed)
    except ValueError as err:  # more units than frames: the job's k, said in one line
        raise UsageError(str(err)) from None


def speed_waves(clips, quantizer, speeds=(1.0,)):
    """Yields (i, wave (l,)) for every clip of an AudioFolder as the models see it (quantised, decoded), at each
    speed in turn (clips[0] at speeds[0], …; a speed s != 1 plays the clip s times faster, pitch and all: the speed
    perturbation of Ko et al. 2015)."""
    import torchaudio

    rate = clips.sample_rate
    for speed in speeds:
        for i in range(len(clips)):
            wave = quantizer.decode(clips[i]).float()
            if speed != 1.0:
                wave = torchaudio.functional.resample(wave, round(rate * speed), rate)
            yield i, wave


def clip_units(coder: UnitCoder, clips, quantizer, speeds=(1.0,)) -> list[torch.Tensor]:
    """The unit ids (f,) of every clip of an AudioFolder, at each speed in turn (speed_waves)."""
    return [coder.encode(wave) for _, wave in speed_waves(clips, quantizer, speeds)]


class Tracked(Dataset):
    """Clips with their start token, the unit track stacked beside the ids: items (l + 1, 2) = [ids, track].
    Item 0 is the start token; item j >= 1 is sample j - 1 and carries that sample's unit. Cut by RandomCrops
    (which crops and pads along the first dimension) and split by SplitTrack."""

    def __init__(self, clips, coder: UnitCoder, quantizer, start_id: int):
        self.clips, self.quantizer, self.start_id = clips, quantizer, start_id
        self.tracks = [coder.track(u, len(clips[i])) for i, u in enumerate(clip_units(coder, clips, quantizer))]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> torch.Tensor:
        ids, track = self.clips[i], self.tracks[i]
        return torch.stack([torch.cat([ids.new_tensor([self.start_id]), ids]), torch.cat([track[:1], track])], 1)


class SplitTrack(Dataset):
    """Items {"ids": (l, 2), "mask"} of crops of a Tracked dataset -> {"ids": (l,), "mask", "track": (l,)}; padded
    positions get unit 0 (they are masked)."""

    def __init__(self, crops):
        self.crops = crops

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> dict:
        item = self.crops[i]
        both, mask = item["ids"], item["mask"]
        return {"ids": both[:, 0], "mask": mask, "track": torch.where(mask > 0, both[:, 1], 0)}

    def set_epoch(self, epoch: int) -> None:
        self.crops.set_epoch(epoch)


class WholeTracked(Dataset):
    """Whole clips of a Tracked dataset, for scoring: {"ids": (l + 1,), "mask", "track": (l + 1,)}."""

    def __init__(self, tracked: Tracked, no_unit: int | None = None):
        self.tracked, self.no_unit = tracked, no_unit  # no_unit: every position gets this id instead (no units)

    def __len__(self) -> int:
        return len(self.tracked)

    def __getitem__(self, i: int) -> dict:
        both = self.tracked[i]
        track = both[:, 1] if self.no_unit is None else torch.full_like(both[:, 1], self.no_unit)
        return {"ids": both[:, 0], "mask": torch.ones(len(both)), "track": track}


class UnitSequences(Dataset):
    """The planner's items: {"ids": [k, u_0, …, u_{f-1}, k], "mask": ones}; token k starts and ends a clip."""

    def __init__(self, units: list[torch.Tensor], k: int):
        self.items = [torch.cat([torch.tensor([k]), u, torch.tensor([k])]) for u in units]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return {"ids": self.items[i], "mask": torch.ones(len(self.items[i]))}

    def set_epoch(self, epoch: int) -> None:  # whole sequences: nothing to redraw
        pass


def read_coder(path, what: str) -> UnitCoder:
    """The coder saved in a two-stage run folder (or its model/ folder); one-line UsageError otherwise."""
    folder = Path(path)
    for candidate in (folder / "model" / UNITS_FILE, folder / UNITS_FILE):
        if candidate.is_file():
            try:
                return UnitCoder.load(candidate)
            except Exception as err:  # safetensors raises its own types for a damaged file; a key may be missing
                reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
                raise UsageError(f"{what} {path}: {candidate.name} is not a unit coder ({reason})") from None
    raise UsageError(f"{what} {path}: no {UNITS_FILE} there (not a run of units.stage vocoder or planner)")


def plan_track(coder: UnitCoder, plans: list[torch.Tensor], n_units: int) -> tuple[torch.Tensor, list[int]]:
    """Plans -> (track (b, n) of the longest plan's samples, padded with the "no unit" id n_units; each row's
    length in samples)."""
    lengths = [len(p) * coder.spec.hop for p in plans]
    n = max(lengths)
    track = torch.full((len(plans), n), n_units, dtype=torch.long)
    for row, p in zip(track, plans):
        row[: len(p) * coder.spec.hop] = p.repeat_interleave(coder.spec.hop)
    return track, lengths


def resynthesis_plans(run, files) -> tuple[list[torch.Tensor], list[tuple[int, str]]]:
    """The units of FSDD-named files, as the vocoder was trained on them, and each file's (digit, speaker): the
    vocoder alone given real units (`generate --resynth`), the planner left out. One-line UsageError for a name
    that is not FSDD's or a speaker the vocoder does not know."""
    from seqssm.domains.audio import AudioFolder, parse_fsdd_name

    conditions = []
    for f in files:
        try:
            digit, speaker, _ = parse_fsdd_name(f)
        except ValueError as err:
            raise UsageError(f"--resynth: {err}") from None
        if speaker not in run.model.speakers or not 0 <= digit < run.job.condition.n_digits:
            raise UsageError(f"--resynth {f}: digit {digit} or speaker {speaker!r} unknown to the model "
                             f"(it knows {', '.join(run.model.speakers)})")
        conditions.append((digit, speaker))
    clips = AudioFolder(files, run.job.data.sample_rate, run.quantizer)
    return clip_units(run.coder, clips, run.quantizer), conditions


__all__ = ["SplitTrack", "Tracked", "UNITS_FILE", "UnitSequences", "WholeTracked", "clip_units", "fit_coder",
           "plan_track", "read_coder", "resynthesis_plans", "speed_waves"]

"""Scoring, run loading and generation of the audio jobs (no Lightning here: `seqssm audio eval` and `generate` load a
trained run and use the model directly).

Dimension names: b batch · l samples · v vocabulary (2^bits quantisation levels).

Every clip is scored in full: the model reads [start] + x_0 … x_{l-2} and predicts x_0 … x_{l-1}, where the start
token is the quantiser's zero level (silence), so the first sample of a clip counts too (as in the n-gram and
`xz` baselines of ../shared/data/README.md, which score all 897,663 test samples of FSDD takes 0-4).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

import seqssm
from seqssm.atomic import atomic_open
from seqssm.domains.audio import AudioFolder, WholeClips, build_quantizer, pad_collate, parse_fsdd_name
from seqssm.domains.audio.conditional import ConditionalSampleLM, UnitConditionalLM
from seqssm.domains.audio.spectral import UnitDecoder
from seqssm.pipelines.audio.config import AudioJobConfig
from seqssm.pipelines.audio.twostage import Tracked, WholeTracked, read_coder
from seqssm.pipelines.jobconfig import UsageError
from seqssm.pipelines.training import LN2
from seqssm.pipelines.rundir import save_figure

QUANTIZER_FILE = "quantizer.json"
CONDITION_FILE = "condition.safetensors"  # a conditional run's digit and speaker embeddings, beside the lm weights


class WithStart(Dataset):
    """Clip ids (l,) -> (l + 1,) with the start token (the quantiser's zero level) in front."""

    def __init__(self, clips, start_id: int):
        self.clips, self.start_id = clips, start_id

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.cat([torch.tensor([self.start_id]), self.clips[i]])

    @property
    def quantizer(self):  # RandomCrops pads with the quantiser's zero level
        return self.clips.quantizer


class WithCondition(Dataset):
    """Items of a dataset of dicts (crops or whole clips) with "cond": their prefix tokens (2,) added."""

    def __init__(self, dataset, prefixes: list[torch.Tensor]):
        self.dataset, self.prefixes = dataset, prefixes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        return {**self.dataset[i], "cond": self.prefixes[i]}

    def set_epoch(self, epoch: int) -> None:  # RandomCrops draws new crops every epoch
        self.dataset.set_epoch(epoch)


def collate_with_condition(pad_id: int):
    """pad_collate, and the items' "cond" prefixes stacked (b, 2) when they have them."""
    pad = pad_collate(pad_id)

    def collate(items):
        batch = pad(items)
        if "cond" in items[0]:
            batch["cond"] = torch.stack([it["cond"] for it in items])
        if "track" in items[0]:  # padded with unit 0: padded positions are masked, and the model is causal
            track = torch.zeros_like(batch["ids"])
            for row, it in zip(track, items):
                row[:len(it["track"])] = it["track"]
            batch["track"] = track
        return batch

    return collate


def condition_prefixes(model, files, on) -> list[torch.Tensor]:
    """The prefix tokens of each FSDD file under a conditional model: its digit and speaker where `on` names them
    (a speaker the model does not know, e.g. a held-out one, is "any"), "any" otherwise."""
    out = []
    for f in files:
        digit, speaker, _ = parse_fsdd_name(f)
        out.append(model.prefix(digit if "digit" in on else None,
                                speaker if "speaker" in on and speaker in model.speakers else None))
    return out


@torch.no_grad()
def classify_digits(model, files, sample_rate: int, quantizer, batch_size: int, progress: bool = True) -> dict:
    """The conditional model as a classifier of its own (Bayes' rule, equal priors): each FSDD file's digit is the
    d with the highest log p(x | d, any speaker). Returns the accuracy, the confusion matrix (true digit rows,
    predicted columns) and the mean bits per file that the true digit is worth over "any" (the same number `eval
    --condition digit` and `--condition any` give, per file)."""
    n = model.n_digits
    bits = []  # (files,) bits per file under digit d, then under "any"
    for d in [*range(n), None]:
        res = score_files(model, files, sample_rate, quantizer, batch_size, progress=progress,
                          prefixes=[model.prefix(d, None) for _ in files])
        bits.append(torch.tensor([r["bits_per_sample"] * r["samples"] for r in res["per_file"]], dtype=torch.float64))
    table = torch.stack(bits, 1)  # (files, n + 1) total bits of each file
    truth = torch.tensor([parse_fsdd_name(f)[0] for f in files])
    pred = table[:, :n].argmin(1)
    confusion = torch.zeros(n, n, dtype=torch.long)
    confusion.index_put_((truth, pred), torch.ones_like(truth), accumulate=True)
    gained = table[:, n] - table[torch.arange(len(files)), truth]
    return {"files": len(files), "accuracy": float((pred == truth).double().mean()),
            "confusion": confusion.tolist(), "bits_per_file_given_true_digit": float(gained.mean())}


def nll_sum(model, ids: torch.Tensor, mask: torch.Tensor, prefix: torch.Tensor | None = None,
            track: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (b, l+1) starting with the start token, mask (b, l+1) -> (summed NLL in nats (b,), counted samples (b,)).
    prefix (b, 2): a conditional model's condition tokens, read before the start token. track (b, l+1): a unit
    vocoder's unit of every item of ids (seqssm.domains.audio.units); item i + 1's unit conditions its prediction."""
    inputs = ids[:, :-1] if prefix is None else torch.cat([prefix.to(ids), ids[:, :-1]], dim=1)
    if track is None:
        logits = model(inputs)  # (b, l, v) float32
    else:
        with model.following(track[:, 1:].to(ids)):
            logits = model(inputs)
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")  # (b, l)
    m = mask[:, 1:].to(nll.dtype)
    return (nll * m).sum(1), m.sum(1)


@torch.no_grad()
def condition_log_ratio(model, ids: torch.Tensor, prefix: torch.Tensor,
                        start_id: int) -> torch.Tensor:
    """ids (b, l) sampled clips, prefix (b, 2) their conditions -> (b,) log p(ids | condition) - log p(ids | any,
    any) in nats, both from one parallel pass of the (unguided) model."""
    full = torch.cat([torch.full((ids.shape[0], 1), start_id), ids], dim=1)
    anyp = model.prefix(None, None).expand_as(prefix)
    out = []
    for i in range(0, len(full), 16):  # 16 clips per pass: the logits of a whole batch of clips need not fit
        x = full[i:i + 16]
        mask = torch.ones_like(x, dtype=torch.float32)
        nll_c, _ = nll_sum(model, x, mask, prefix[i:i + 16])
        nll_a, _ = nll_sum(model, x, mask, anyp[i:i + 16])
        out.append(nll_a - nll_c)
    return torch.cat(out).double()


@torch.no_grad()
def plan_evidence(planner, plans: list[torch.Tensor], prefix: torch.Tensor, k: int,
                  batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampled plans (units (f_i,) each) and their prefixes (b, 2) -> (b,) log p(plan | condition) per token and
    (b,) log p(plan | condition) - log p(plan | any, any), in nats: parallel passes of the planner over each plan as
    it was trained, [k, u_0, …, u_{f-1}, k] (a plan cut at --seconds is scored as if it ended there)."""
    collate = collate_with_condition(k)
    anyp = planner.prefix(None, None)
    own, ratio = [], []
    for i in range(0, len(plans), batch_size):
        rows = range(i, min(i + batch_size, len(plans)))
        items = [{"ids": torch.cat([torch.tensor([k]), plans[j], torch.tensor([k])]),
                  "mask": torch.ones(len(plans[j]) + 2)} for j in rows]
        batch = collate(items)
        nll_c, count = nll_sum(planner, batch["ids"], batch["mask"], prefix[i:i + len(items)])
        nll_a, _ = nll_sum(planner, batch["ids"], batch["mask"], anyp.expand(len(items), -1))
        own.append(-nll_c.double() / count.double())
        ratio.append((nll_a - nll_c).double())
    return torch.cat(own), torch.cat(ratio)


@torch.no_grad()
def score_files(model, files, sample_rate: int, quantizer, batch_size: int, progress: bool = True,
                prefixes: list[torch.Tensor] | None = None, coder=None, no_units: bool = False) -> dict:
    """Bits per sample of every file and of all of them together (total NLL / total samples); a conditional model
    scores each file under its own prefix (its digit and speaker: p(x | digit, speaker)); a unit vocoder (coder
    given) under the file's own units as well (p(x | units, digit, speaker)), or under none (no_units: the "no
    unit" id everywhere, p(x | digit, speaker) of a vocoder trained with units.drop_prob)."""
    clips = AudioFolder(files, sample_rate, quantizer)
    if coder is None:
        data = WholeClips(WithStart(clips, quantizer.zero_id))
    else:
        data = WholeTracked(Tracked(clips, coder, quantizer, quantizer.zero_id), coder.k if no_units else None)
    if prefixes is not None:
        data = WithCondition(data, prefixes)
    order = sorted(range(len(data)), key=lambda i: len(clips[i]))  # similar lengths together: little padding
    loader = DataLoader(torch.utils.data.Subset(data, order), batch_size=batch_size,
                        collate_fn=collate_with_condition(quantizer.zero_id))
    model.eval()
    device = next(model.parameters()).device
    nll, count = torch.zeros(len(data), dtype=torch.float64), torch.zeros(len(data), dtype=torch.float64)
    pos = 0
    for batch in tqdm(loader, desc="scoring", unit="batch", disable=not progress, leave=False):
        track = batch.get("track")
        s, c = nll_sum(model, batch["ids"].to(device), batch["mask"].to(device), batch.get("cond"),
                       None if track is None else track.to(device))
        idx = order[pos:pos + len(s)]
        nll[idx], count[idx] = s.double().cpu(), c.double().cpu()
        pos += len(s)
    per_file = [{"file": str(files[i]), "samples": int(count[i]), "bits_per_sample": float(nll[i] / count[i] / LN2)}
                for i in range(len(data))]
    return {"files": len(data), "samples": int(count.sum()), "bits_per_sample": float(nll.sum() / count.sum() / LN2),
            "per_file": per_file}


# ----------------------------------------------------------------------------------------------------- runs


@dataclass
class AudioRun:
    model: torch.nn.Module
    job: AudioJobConfig
    quantizer: object
    folder: Path
    coder: object = None  # a two-stage run's UnitCoder (units.stage vocoder, planner or decoder)


def load_run(path, flag: str = "--model") -> AudioRun:
    """A run folder of `seqssm audio train` (or its model/ folder): the model, its job and its quantiser."""
    folder = Path(path)
    model_dir = folder / "model" if (folder / "model").is_dir() else folder
    run_dir = model_dir.parent if model_dir.name == "model" else model_dir
    for need in (model_dir / "config.yaml", model_dir / QUANTIZER_FILE, run_dir / "config.yaml"):
        if not need.is_file():
            raise UsageError(f"{flag} {path}: not a run folder of 'seqssm audio train' ({need.name} missing)")
    job = seqssm.load_config(AudioJobConfig, str(run_dir / "config.yaml"))
    quantizer = build_quantizer(json.loads((model_dir / QUANTIZER_FILE).read_text()))
    model = seqssm.load_pretrained(str(model_dir))
    if job.condition.by:
        if not (model_dir / CONDITION_FILE).is_file():
            raise UsageError(f"{flag} {path}: a conditional run without its {CONDITION_FILE}")
        from safetensors.torch import load_file

        coder = None
        if job.units.stage != "none":
            coder = read_coder(model_dir, flag)
        if job.units.stage == "vocoder":
            model = UnitConditionalLM(model, job.condition.n_digits, job.condition.speakers, coder.k)
        elif job.units.stage == "decoder":
            model = UnitDecoder(model, job.condition.speakers, coder.k, coder.spec)
        else:
            model = ConditionalSampleLM(model, job.condition.n_digits, job.condition.speakers)
        model.load_condition_state_dict(load_file(str(model_dir / CONDITION_FILE)))
        return AudioRun(model.eval(), job, quantizer, run_dir, coder)
    return AudioRun(model.eval(), job, quantizer, run_dir)


def write_table(path, result: dict) -> None:
    """Per-file TSV (file, samples, bits_per_sample) and a last row with the total, written atomically."""
    with atomic_open(path, "w") as f:
        f.write("file\tsamples\tbits_per_sample\n")
        for row in result["per_file"]:
            f.write(f"{row['file']}\t{row['samples']}\t{row['bits_per_sample']:.4f}\n")
        f.write(f"ALL\t{result['samples']}\t{result['bits_per_sample']:.4f}\n")


# ----------------------------------------------------------------------------------------------- generation


@torch.no_grad()
def generate_ids(model, n_samples: int, batch: int, prompt: torch.Tensor | None, temperature: float,
                 top_p: float, seed: int, start_id: int, progress: bool = True, prefix: torch.Tensor | None = None,
                 lengths: list[int] | None = None):
    """Sample n_samples ids per row with the recurrent state (one step per sample, never a growing context):
    the core's decoding loop (GenerationMixin.generate), with a per-step hook that adds up the likelihood, times
    each tenth of the clip and moves the progress bar.

    Returns (ids (b, n_samples), loglik (b,) the natural log-likelihood of each row's samples under the model's
    unfiltered distribution at temperature 1 — used to rank samples — and seconds per block of generated time).
    prompt (l,) ids: read once in parallel mode (seqssm's streaming forward), then continued.
    prefix (b, 2): a conditional model's condition tokens per row (seqssm.domains.audio.conditional), read first.
    lengths: each row's length in samples (two-stage rows end with their plans): loglik counts those samples only.
    """
    device = next(model.parameters()).device
    first = torch.full((batch, 1), start_id, dtype=torch.long, device=device)
    if prefix is not None:
        first = torch.cat([prefix.to(device), first], dim=1)
    context = first if prompt is None else torch.cat([first, prompt.to(device)[None].expand(batch, -1)], dim=1)
    loglik = torch.zeros(batch, dtype=torch.float64)
    times, block = [], max(1, n_samples // 10)
    keep = None if lengths is None else torch.tensor(lengths)
    clock = [time.perf_counter()]
    bar = tqdm(total=n_samples, desc="sampling", unit="sample", unit_scale=True, disable=not progress, leave=False)

    def on_step(i: int, token: torch.Tensor, logits: torch.Tensor) -> None:
        if i == 0:
            clock[0] = time.perf_counter()  # the per-step clock starts after the prompt's parallel pass
        step = torch.log_softmax(logits.double(), -1).gather(1, token[:, None])[:, 0].cpu()
        loglik.add_(step if lengths is None else torch.where(i < keep, step, 0.0))
        bar.update(1)
        if (i + 1) % block == 0:
            now = time.perf_counter()
            times.append(now - clock[0])
            clock[0] = now

    out = model.generate(context, n_samples, temperature=temperature, top_k=0, top_p=top_p, seed=seed,
                         on_step=on_step)
    bar.close()
    return out[:, context.shape[1]:].cpu(), loglik, times


@torch.no_grad()
def sample_plans(planner, coder, prefix: torch.Tensor, max_frames: int, temperature: float,
                 seed: int, check_parallel: bool = False):
    """Unit ids (f_i,) per row of prefix (b, 2), sampled from the planner until its end token or max_frames
    (at least one frame each: a row whose first token is the end gets the first non-end unit it was most likely
    to say, so no clip is empty). check_parallel: also return the largest relative difference between the
    recurrent steps' log-likelihood of the drawn ids and one parallel pass over them."""
    k = coder.k
    ids, loglik, _ = generate_ids(planner, max_frames, len(prefix), None, temperature, 1.0, seed, k,
                                  progress=False, prefix=prefix)
    check = None
    if check_parallel:  # every drawn step, the ones after an end token included: what the recurrent loop scored
        full = torch.cat([torch.full((len(ids), 1), k), ids], dim=1)
        with torch.no_grad():
            nll, _ = nll_sum(planner, full, torch.ones(full.shape), prefix)
        check = float(((loglik + nll.double()).abs() / nll.double()).max())
    plans = []
    for row in ids:
        ends = (row == k).nonzero()
        plans.append(row[: int(ends[0]) if len(ends) else len(row)])
    for i, plan in enumerate(plans):
        if len(plan) == 0:
            logits = planner(torch.cat([prefix[i:i + 1], torch.tensor([[k]])], 1))[0, -1, :k]
            plans[i] = logits.argmax()[None]
    return (plans, check) if check_parallel else plans


def plot_clip(wave: np.ndarray, sample_rate: int, path, title: str) -> None:
    """Waveform above its log-magnitude spectrogram, as PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(2, 1, figsize=(9, 5), dpi=100, sharex=True)
    t = np.arange(len(wave)) / sample_rate
    a.plot(t, wave, lw=0.4)
    a.set_ylim(-1.05, 1.05)
    a.set_ylabel("amplitude")
    a.set_title(title, fontsize=9)
    nfft = 256 if sample_rate <= 16000 else 1024
    if len(wave) > nfft:
        b.specgram(wave, NFFT=nfft, Fs=sample_rate, noverlap=nfft // 2, cmap="magma")
    b.set_xlabel("seconds")
    b.set_ylabel("Hz")
    fig.tight_layout()
    save_figure(fig, path)

"""`seqssm audio score`: FID, IS, mIS and AM of folders of clips against the FSDD test takes, with the digit classifier
of `seqssm audio classifier` (definitions in seqssm.domains.audio.quality), bootstrap intervals, the asked-digit
accuracy of conditioned clips, and the ceiling (the test takes against themselves, split in halves).
`seqssm audio ngram`: clips sampled from an interpolated n-gram of the training takes (the floor).

Dimension names: n clips · f feature width · k classes.

Every clip, generated or real, passes the same `prepare` (min-max scaling, 8-bit mu-law round trip, 1 s window).
A clip named like FSDD, `{digit}_{speaker}_{i}.wav` (what `seqssm audio generate --digit` writes), counts as asked
for that digit and speaker; the share the classifier names the asked digit is reported as `digit_accuracy`.
Output folder: score.json, score.md (the table) and examples/<set>/class_<k>.png (log-mel spectrograms of a few
clips per predicted class), staged and moved into place.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import torch

from seqssm.domains.audio import AudioInputError, audio_info, fsdd_split, list_audio_files, load_audio, parse_fsdd_name
from seqssm.domains.audio.classifier import prepare
from seqssm.domains.audio.quality import accuracy, all_metrics, bootstrap
from seqssm.pipelines.audio.classifier import load_classifier
from seqssm.pipelines.jobconfig import UsageError
from seqssm.pipelines.rundir import atomic_write_json, check_out_dir, publish, staging_dir, save_figure
from seqssm.atomic import atomic_write_text

ASKED = re.compile(r"^(?P<digit>\d)_(?P<speaker>[A-Za-z]+)_\d+\.wav$")
METRICS = ("fid", "is", "mis", "am")


def load_clips(classifier, files, check_rate: bool = True) -> list[torch.Tensor]:
    """The files as mono float waves at the classifier's rate; a clip at another rate is refused (one line)."""
    cfg = classifier.config
    waves = []
    for f in files:
        if check_rate:
            rate = audio_info(f).sample_rate
            if rate != cfg.sample_rate:
                raise AudioInputError(f"{f}: sample rate {rate} Hz; the classifier scores {cfg.sample_rate} Hz clips "
                                      f"(resample them first)")
        waves.append(load_audio(f, cfg.sample_rate)[0])
    return waves


def embed_waves(classifier, waves) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """(features (n, f), probabilities (n, k), prepared waves (n, l)) of raw waves."""
    x = torch.stack([prepare(w, classifier.config.clip_samples) for w in waves])
    feats, probs = classifier.features_and_probs(x)
    return feats.numpy(), probs.numpy(), x


def embed_files(classifier, files, check_rate: bool = True) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    return embed_waves(classifier, load_clips(classifier, files, check_rate))


def score_set(feats, probs, ref_feats, ref_probs, asked=None, rounds: int = 200, seed: int = 0) -> dict:
    """The four metrics of one set against the reference, their bootstrap intervals (clips resampled, the reference
    fixed), and the asked-digit accuracy when every clip names one."""
    n = len(feats)
    if n < 2:
        raise UsageError(f"{n} clip(s): FID needs two or more")
    row = {"clips": n, **all_metrics(feats, probs, ref_feats, ref_probs)}
    iv = bootstrap(lambda idx: all_metrics(feats[idx], probs[idx], ref_feats, ref_probs), n, rounds, seed)
    if asked is not None:
        row["digit_accuracy"] = accuracy(probs, asked)
        iv.update(bootstrap(lambda idx: {"digit_accuracy": accuracy(probs[idx], asked[idx])}, n, rounds, seed))
    row["interval95"] = iv
    row["predicted_class_counts"] = np.bincount(probs.argmax(1), minlength=probs.shape[1]).tolist()
    return row


def plot_examples(classifier, waves: torch.Tensor, probs: np.ndarray, names: list[str], folder: Path,
                  per_class: int = 4) -> list[str]:
    """One PNG per predicted class: the log-mel spectrograms of up to per_class of its most confident clips."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    pred = probs.argmax(1)
    with torch.no_grad():
        mels = classifier.log_mel(waves)[:, 0].numpy()  # (n, m, t)
    for k in range(probs.shape[1]):
        idx = [int(i) for i in np.argsort(-probs[:, k]) if pred[i] == k][:per_class]
        if not idx:
            continue
        fig, axes = plt.subplots(1, len(idx), figsize=(3 * len(idx), 2.6), dpi=90, squeeze=False)
        for ax, i in zip(axes[0], idx):
            ax.imshow(mels[i], origin="lower", aspect="auto", cmap="magma")
            ax.set_title(f"{names[i]}\np={probs[i, k]:.2f}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(f"predicted {k}", fontsize=9)
        fig.tight_layout()
        path = folder / f"class_{k}.png"
        save_figure(fig, path)
        written.append(path.name)
    return written


def _cell(row: dict, key: str) -> str:
    if key not in row:
        return "–"
    lo, hi = row["interval95"][key]
    fmt = ".1%" if key == "digit_accuracy" else ".2f" if key != "mis" else ".1f"
    return f"{row[key]:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def markdown(result: dict) -> str:
    lines = [f"Reference: {result['reference']['clips']} FSDD test clips (takes {result['reference']['takes']}); "
             f"classifier `{result['classifier']}`; 95% percentile bootstrap over each set's clips "
             f"({result['rounds']} rounds, the reference fixed).", "",
             "| set | clips | FID ↓ | IS ↑ | mIS ↑ | AM ↓ | asked digit named |", "|---|---|---|---|---|---|---|"]
    for name, row in result["sets"].items():
        lines.append(f"| {name} | {row['clips']} | " + " | ".join(_cell(row, k) for k in (*METRICS, "digit_accuracy"))
                     + " |")
    return "\n".join(lines) + "\n"


def score_folders(folders, classifier_path, out, reference=None, ceiling: bool = False, rounds: int = 200,
                  seed: int = 0, overwrite: bool = False, labels=None, window: float = 0.0) -> dict:
    """Score each folder as a set; with window > 0 (seconds), each folder's clips are cut into consecutive windows
    and every window position is a set of its own (drift over a long free run)."""
    t0 = time.perf_counter()
    classifier = load_classifier(classifier_path)
    from seqssm import load_config
    from seqssm.pipelines.audio.config import ClassifierJobConfig

    job = load_config(ClassifierJobConfig, str(Path(classifier_path) / "config.yaml"))
    labels = list(labels or [])
    if labels and len(labels) != len(folders):
        raise UsageError(f"--label: {len(labels)} labels for {len(folders)} folders")
    clip_lists = [list_audio_files(f) for f in folders]  # AudioInputError for a folder with no audio
    ref_folder = reference or job.data.folder
    out = check_out_dir(out, overwrite)
    _, ref_files = fsdd_split(ref_folder, job.data.test_takes)
    ref_feats, ref_probs, ref_waves = embed_files(classifier, ref_files, check_rate=False)
    ref_digits = np.array([parse_fsdd_name(f)[0] for f in ref_files])
    result = {"classifier": str(classifier_path), "rounds": rounds, "seed": seed,
              "reference": {"folder": str(ref_folder), "takes": list(job.data.test_takes), "clips": len(ref_files),
                            "classifier_accuracy": accuracy(ref_probs, ref_digits)},
              "definitions": "FID Heusel et al. 2017; IS Salimans et al. 2016; mIS Gurumurthy et al. 2017; "
                             "AM Zhou et al. 2018 (seqssm.domains.audio.quality)", "sets": {}}
    embedded = {}
    if ceiling:  # the test takes against themselves: a random half scored against the other half
        perm = np.random.default_rng(seed).permutation(len(ref_files))
        a, b = np.sort(perm[: len(perm) // 2]), np.sort(perm[len(perm) // 2:])
        row = score_set(ref_feats[a], ref_probs[a], ref_feats[b], ref_probs[b], ref_digits[a], rounds, seed)
        row["note"] = "half of the test takes against the other half"
        result["sets"]["ceiling: test takes, half vs half"] = row
        embedded["ceiling"] = (ref_waves[a], ref_probs[a], [ref_files[i].name for i in a])
    for i, (folder, files) in enumerate(zip(folders, clip_lists)):
        name = labels[i] if labels else Path(folder).name
        if window > 0:
            _score_windows(classifier, files, name, window, ref_feats, ref_probs, rounds, seed, result, embedded)
            continue
        feats, probs, waves = embed_files(classifier, files)
        asked = [ASKED.match(f.name) for f in files]
        digits = np.array([int(m["digit"]) for m in asked]) if all(asked) else None
        row = score_set(feats, probs, ref_feats, ref_probs, digits, rounds, seed)
        row["folder"] = str(folder)
        if all(asked):  # per asked speaker: accuracy, and FID against that speaker's test clips
            speakers = np.array([m["speaker"] for m in asked])
            ref_spk = np.array([parse_fsdd_name(f)[1] for f in ref_files])
            row["per_speaker"] = {}
            for s in sorted(set(speakers)):
                sel, ref_sel = speakers == s, ref_spk == s
                entry = {"clips": int(sel.sum()), "digit_accuracy": accuracy(probs[sel], digits[sel])}
                if sel.sum() >= 2 and ref_sel.sum() >= 2:
                    from seqssm.domains.audio.quality import fid

                    entry["fid_vs_speaker_test_clips"] = fid(feats[sel], ref_feats[ref_sel])
                row["per_speaker"][s] = entry
            row["per_digit_accuracy"] = {str(d): accuracy(probs[digits == d], digits[digits == d])
                                         for d in sorted(set(digits.tolist()))}
        result["sets"][name] = row
        embedded[name] = (waves, probs, [f.name for f in files])
    result["seconds"] = round(time.perf_counter() - t0, 1)
    with staging_dir(out) as stage:
        for name, (waves, probs, names) in embedded.items():
            folder = stage / "examples" / re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
            folder.mkdir(parents=True, exist_ok=True)
            result["sets"]["ceiling: test takes, half vs half" if name == "ceiling" else name]["example_pngs"] = \
                [str(Path("examples") / folder.name / p) for p in plot_examples(classifier, waves, probs, names, folder)]
        atomic_write_json(stage / "score.json", result)
        atomic_write_text(stage / "score.md", markdown(result))
        publish(stage, out, ["score.json", "score.md", "examples"])
    return result


def _score_windows(classifier, files, name, window, ref_feats, ref_probs, rounds, seed, result, embedded) -> None:
    n = int(round(window * classifier.config.sample_rate))
    clips = load_clips(classifier, files)
    count = min(len(c) for c in clips) // n
    if count < 1:
        raise UsageError(f"--window {window}: longer than the shortest clip of {name}")
    for k in range(count):
        feats, probs, waves = embed_waves(classifier, [c[k * n:(k + 1) * n] for c in clips])
        label = f"{name} @ {k * window:g}-{(k + 1) * window:g} s"
        row = score_set(feats, probs, ref_feats, ref_probs, None, rounds, seed)
        row["mean_max_prob"] = float(probs.max(1).mean())
        result["sets"][label] = row
        if k in (0, count - 1):
            embedded[label] = (waves, probs, [f"{f.name}@{k}" for f in files])


def ngram_clips(data: str, out, clips: int, seconds: float, order: int, seed: int, test_takes=(0, 1, 2, 3, 4),
                overwrite: bool = False) -> dict:
    """Sample `clips` clips of `seconds` from an order-N n-gram of the FSDD training takes into `out`."""
    from seqssm.domains.audio import AudioFolder, make_quantizer, save_wav
    from seqssm.domains.audio.ngram import NGramSampler

    if clips < 1 or seconds <= 0 or not 1 <= order <= 3:
        raise UsageError(f"--clips {clips}, --seconds {seconds}, --order {order}: need >= 1, > 0 and 1-3")
    out = check_out_dir(out, overwrite)
    train, test = fsdd_split(data, test_takes)
    q = make_quantizer("mulaw", 8)
    t0 = time.perf_counter()
    folder = AudioFolder(train, 8000, q)
    model = NGramSampler([folder[i] for i in range(len(folder))], q.vocab_size, order, q.zero_id)
    test_clips = AudioFolder(test, 8000, q)
    total = sum(model.bits(test_clips[i]) * len(test_clips[i]) for i in range(len(test_clips)))
    test_bits = total / sum(len(test_clips[i]) for i in range(len(test_clips)))
    ids = model.sample(clips, int(round(seconds * 8000)), seed)
    report = {"order": order, "smoothing": "Witten-Bell interpolation", "train_clips": len(train),
              "test_bits_per_sample": test_bits, "clips": clips, "seconds": seconds, "seed": seed,
              "quantizer": q.name, "wall_seconds": round(time.perf_counter() - t0, 1)}
    with staging_dir(out) as stage:
        names = []
        for i in range(clips):
            save_wav(stage / f"sample_{i:03d}.wav", q.decode(torch.from_numpy(ids[i])), 8000)
            names.append(f"sample_{i:03d}.wav")
        atomic_write_json(stage / "ngram.json", report)
        publish(stage, out, names + ["ngram.json"])
    return report


__all__ = ["embed_files", "markdown", "ngram_clips", "score_folders", "score_set"]

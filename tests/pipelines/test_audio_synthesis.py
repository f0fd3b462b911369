"""Synthesis measured: `seqssm audio classifier`, `score`, `ngram`, and generation conditioned on digit and speaker
(recurrent = parallel, one-line errors), end to end on a tiny synthetic FSDD-like folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from seqssm import ModelConfig, build_model
from seqssm.domains.audio.conditional import ConditionalSampleLM, GuidedSampleLM
from seqssm.pipelines.audio.classifier import load_classifier
from seqssm.pipelines.audio.infer import condition_log_ratio, generate_ids, load_run, nll_sum, score_files
from seqssm.pipelines.cli import main

from pipeline_helpers import FSDD_SPEAKERS, as_sets, fsdd_tone, write_fsdd_like

SPEAKERS = FSDD_SPEAKERS
TINY_CLF = ["model.clip_samples=1024", "model.n_fft=64", "model.hop=32", "model.n_mels=8", "model.channels=[4]",
            "model.features=8", "train.max_epochs=30", "train.max_minutes=0.5", "train.batch_size=8",
            "train.progress=false", "train.lr=0.01"]
TINY_LM = ["model.d_model=8", "model.n_layer=1", "model.ssm.d_state=4", "model.multiscale.pool_factors=[2,2]",
           "data.crop_len=128", "data.batch_size=4", "data.eval_batch_size=8", "train.max_steps=3",
           "train.val_every=3", "train.warmup_steps=1", "train.progress_bar=false", "train.threads=1",
           "data.val_fraction=0.1"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_fsdd_like(tmp_path_factory.mktemp("fsdd"))


@pytest.fixture(scope="module")
def classifier(folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clf") / "run"
    assert main(["audio", "classifier", "--data", str(folder), "--out", str(out), *as_sets(TINY_CLF)]) == 0
    return out


@pytest.fixture(scope="module")
def cond_run(folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cond") / "run"
    args = ["audio", "train", "--data", str(folder), "--out", str(out),
            *as_sets(TINY_LM + ["condition.by=[digit,speaker]"])]
    assert main(args) == 0
    return out


def test_classifier_run_folder_and_accuracy(classifier):
    m = json.loads((classifier / "metrics.json").read_text())
    assert m["test_clips"] == 3 * 2 * 5 and m["train_clips"] == 3 * 2 * 3
    assert m["test_accuracy"] >= 0.9  # two tones an octave and a half apart
    model = load_classifier(classifier)
    feats, probs = model.features_and_probs(torch.zeros(3, 1024))
    assert feats.shape == (3, 8) and probs.shape == (3, 10)
    assert torch.allclose(probs.sum(1), torch.ones(3, dtype=probs.dtype))


def _copy_as(folder: Path, dest: Path, names: dict[str, str], rate: int = 8000) -> Path:
    dest.mkdir()
    for src, dst in names.items():
        data, _ = sf.read(str(folder / src), dtype="float32")
        sf.write(str(dest / dst), data, rate)
    return dest


def test_score_ceiling_and_asked_digits(folder, classifier, tmp_path, capsys):
    # "generated" clips: training takes renamed as asked; half of them asked for the wrong digit
    names = {f"{d}_{s}_{t}.wav": f"{d if t % 2 else 1 - d}_{s}_{t:02d}.wav"
             for d in (0, 1) for s in SPEAKERS for t in (5, 6, 7)}
    clips = _copy_as(folder, tmp_path / "gen", names)
    out = tmp_path / "score"
    # no --reference: the classifier's own data folder, its test takes
    assert main(["audio", "score", str(clips), "--classifier", str(classifier), "--out", str(out), "--ceiling",
                 "--rounds", "20"]) == 0
    res = json.loads((out / "score.json").read_text())
    assert res["reference"]["folder"] == str(folder.resolve())
    ceiling, gen = res["sets"]["ceiling: test takes, half vs half"], res["sets"]["gen"]
    assert res["reference"]["clips"] == 30 and ceiling["clips"] == 15 and gen["clips"] == 18
    assert gen["digit_accuracy"] == pytest.approx(12 / 18)  # takes 5 and 7 asked right, take 6 asked wrong
    for row in (ceiling, gen):
        for key in ("fid", "is", "mis", "am"):
            lo, hi = row["interval95"][key]
            assert lo <= hi and np.isfinite(row[key])
        assert 1.0 <= row["is"] <= 10.0 and row["fid"] >= 0
    assert set(gen["per_speaker"]) == set(SPEAKERS)
    assert (out / "score.md").read_text().count("\n| ") == 3  # header row excluded: two sets + header
    assert gen["example_pngs"] and all((out / p).is_file() for p in gen["example_pngs"])
    assert "FID" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["empty-folder", "other-rate", "not-a-classifier"])
def test_score_bad_input_is_one_line_exit_2_without_output(folder, classifier, tmp_path, capsys, case):
    clips = tmp_path / "clips"
    if case == "empty-folder":
        clips.mkdir()
        needle = "no audio files"
    elif case == "other-rate":
        _copy_as(folder, clips, {"0_ann_5.wav": "0_ann_00.wav"}, rate=16000)
        needle = "sample rate 16000 Hz"
    else:
        _copy_as(folder, clips, {"0_ann_5.wav": "0_ann_00.wav"})
        classifier = tmp_path
        needle = "not a run folder"
    out = tmp_path / "out"
    status = main(["audio", "score", str(clips), "--classifier", str(classifier), "--out", str(out),
                   "--reference", str(folder), "--rounds", "10"])
    err = capsys.readouterr().err
    assert status == 2 and needle in err and err.count("\n") == 1
    assert not out.exists()


def test_ngram_floor_clips(folder, tmp_path):
    out = tmp_path / "ngram"
    assert main(["audio", "ngram", "--data", str(folder), "--out", str(out), "--clips", "3", "--seconds", "0.05",
                 "--order", "2"]) == 0
    files = sorted(out.glob("sample_*.wav"))
    assert len(files) == 3 and all(sf.info(str(f)).frames == 400 for f in files)
    report = json.loads((out / "ngram.json").read_text())
    assert 0 < report["test_bits_per_sample"] < 8


def test_conditional_generate_equals_parallel_and_names_the_condition(cond_run, tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["audio", "generate", "--model", str(cond_run), "--out", str(out), "--digit", "1", "--speaker",
                 "bob,cy", "--seconds", "0.02", "--batch", "2", "--check-parallel", "--no-png"]) == 0
    report = json.loads((out / "generate.json").read_text())
    assert report["batch"] == 4 and report["recurrent_vs_parallel_loglik_max_rel_diff"] < 1e-4
    assert report["temperature"] == 0.5  # the sample-level default
    assert sorted(p.name for p in out.glob("*.wav")) == ["1_bob_00.wav", "1_bob_01.wav", "1_cy_00.wav", "1_cy_01.wav"]
    m = json.loads((cond_run / "metrics.json").read_text())
    assert m["condition"]["speakers"] == list(SPEAKERS)


def test_guided_generate_equals_parallel(cond_run, tmp_path):
    out = tmp_path / "guided"
    assert main(["audio", "generate", "--model", str(cond_run), "--out", str(out), "--digit", "0,1", "--speaker",
                 "ann", "--guidance", "3", "--seconds", "0.02", "--batch", "2", "--check-parallel", "--no-png"]) == 0
    report = json.loads((out / "generate.json").read_text())
    assert report["guidance"] == 3.0 and report["batch"] == 4
    assert report["recurrent_vs_parallel_loglik_max_rel_diff"] < 1e-4
    assert sorted(p.name for p in out.glob("*.wav")) == ["0_ann_00.wav", "0_ann_01.wav", "1_ann_00.wav", "1_ann_01.wav"]


def test_keep_ranks_by_likelihood(cond_run, tmp_path):
    out = tmp_path / "keep"
    assert main(["audio", "generate", "--model", str(cond_run), "--out", str(out), "--digit", "all", "--seconds",
                 "0.01", "--batch", "3", "--keep", "1", "--no-png"]) == 0
    report = json.loads((out / "generate.json").read_text())
    assert report["batch"] == 30  # the model knows digits 0-9: 3 clips each, the most likely one kept
    assert [c["file"] for c in report["clips"]] == [f"{d}_any_00.wav" for d in range(10)]
    assert sorted(p.name for p in out.glob("*.wav")) == [f"{d}_any_00.wav" for d in range(10)]


def test_rank_by_condition_orders_clips_by_the_condition_log_ratio(cond_run, tmp_path):
    out = tmp_path / "rank"
    assert main(["audio", "generate", "--model", str(cond_run), "--out", str(out), "--digit", "2,5", "--seconds",
                 "0.01", "--batch", "4", "--keep", "3", "--rank-by", "condition", "--no-png"]) == 0
    report = json.loads((out / "generate.json").read_text())
    assert report["rank_by"] == "condition"
    assert [c["file"] for c in report["clips"]] == [f"{d}_any_{r:02d}.wav" for d in (2, 5) for r in range(3)]
    for d in (2, 5):
        ratios = [c["condition_log_ratio"] for c in report["clips"] if c["digit"] == d]
        assert ratios == sorted(ratios, reverse=True)  # the best of each digit's four first, the worst dropped


def test_condition_log_ratio_is_log_p_given_condition_minus_given_any():
    model = _random_conditional([])
    ids = torch.randint(0, 16, (3, 12), generator=torch.Generator().manual_seed(1))
    prefix = torch.stack([model.prefix(1, "ann"), model.prefix(7, None), model.prefix(None, "bob")])
    got = condition_log_ratio(model, ids, prefix, start_id=8)
    full = torch.cat([torch.full((3, 1), 8), ids], dim=1)

    def loglik(pre):  # log p(x_1..x_l | prefix, start) summed, from the model's logits directly
        logp = model(torch.cat([pre, full[:, :-1]], dim=1)).double().log_softmax(-1)
        return logp.gather(-1, full[:, 1:, None])[..., 0].sum(1)

    want = loglik(prefix) - loglik(model.prefix(None, None).expand(3, 2))
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-9), (got, want)
    assert (want.abs() > 1e-3).all()  # the conditions do change the likelihood (random embeddings)


@pytest.mark.parametrize("args,needle", [
    (["--digit", "12"], "--digit 12: unknown digit"),
    (["--digit", "seven"], "--digit seven: unknown digit"),
    (["--speaker", "theo"], "--speaker theo: unknown speaker; this model knows ann, bob, cy"),
    (["--keep", "5"], "--keep 5: must be at most --batch 1"),
    (["--guidance", "-1"], "--guidance -1.0: must be >= 0"),
    (["--guidance", "nan"], "--guidance nan: must be >= 0"),
    (["--rank-by", "condition"], "--rank-by condition: ranks only with --rank or --keep"),
    (["--rank-by", "condition", "--rank"], "--rank-by condition: every clip needs a --digit or --speaker"),
], ids=["digit-12", "digit-word", "unknown-speaker", "keep-over-batch", "guidance-negative", "guidance-nan",
        "rank-by-without-rank", "rank-by-condition-any"])
def test_conditional_generate_bad_options(cond_run, tmp_path, capsys, args, needle):
    out = tmp_path / "gen"
    status = main(["audio", "generate", "--model", str(cond_run), "--out", str(out), "--seconds", "0.01", *args])
    err = capsys.readouterr().err
    assert status == 2 and needle in err and err.count("\n") == 1
    assert not out.exists()


def _random_conditional(pools) -> ConditionalSampleLM:
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=16, n_layer=1, vocab_size=16, tie_embeddings=False)
    cfg.multiscale.pool_factors = pools
    cfg.ssm.d_state = 4
    model = ConditionalSampleLM(build_model(cfg), 10, ["ann", "bob"]).double().eval()
    with torch.no_grad():
        model.digit_embed.weight.normal_()  # untrained embeddings are near 0: make the condition visible
        model.speaker_embed.weight.normal_()
    return model


@pytest.mark.parametrize("pools", [[], [2, 2]], ids=["flat", "multiscale"])
def test_conditional_model_recurrent_equals_parallel_and_the_condition_matters(pools):
    model = _random_conditional(pools)
    prefix = torch.stack([model.prefix(3, "bob"), model.prefix(None, "ann"), model.prefix(7, None)])
    ids, loglik, _ = generate_ids(model, 13, 3, None, 1.0, 1.0, 0, 0, progress=False, prefix=prefix)
    full = torch.cat([torch.zeros(3, 1, dtype=torch.long), ids], dim=1)
    with torch.no_grad():
        nll, _ = nll_sum(model, full, torch.ones(full.shape), prefix)
    assert torch.allclose(-nll.double(), loglik, rtol=1e-9, atol=1e-9)
    with torch.no_grad():  # the same samples under another condition have another likelihood
        other, _ = nll_sum(model, full, torch.ones(full.shape), prefix[[1, 2, 0]])
    assert (other - nll).abs().min() > 1e-6
    assert model._offset is None  # the hook's condition is cleared after every call


@pytest.mark.parametrize("args", [["--digit", "7"], ["--guidance", "2"]], ids=["digit", "guidance"])
def test_unconditional_model_refuses_a_condition(tmp_path, folder, capsys, args):
    out = tmp_path / "run"
    assert main(["audio", "train", "--data", str(folder), "--out", str(out), *as_sets(TINY_LM)]) == 0
    status = main(["audio", "generate", "--model", str(out), "--out", str(tmp_path / "g"), *args])
    err = capsys.readouterr().err
    assert status == 2 and "is unconditional" in err and err.count("\n") == 1
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("pools", [[], [2, 2]], ids=["flat", "multiscale"])
@pytest.mark.parametrize("weight", [0.0, 1.0, 3.0], ids=lambda w: f"w{w:g}")
def test_guided_model_is_the_guidance_formula_and_recurrent_equals_parallel(pools, weight):
    model = _random_conditional(pools)
    guided = GuidedSampleLM(model, weight)
    prefix = torch.stack([model.prefix(3, "bob"), model.prefix(None, "ann"), model.prefix(7, None)])
    ids, loglik, _ = generate_ids(guided, 11, 3, None, 1.0, 1.0, 0, 0, progress=False, prefix=prefix)
    full = torch.cat([torch.zeros(3, 1, dtype=torch.long), ids], dim=1)
    with torch.no_grad():
        nll, _ = nll_sum(guided, full, torch.ones(full.shape), prefix)
        # the formula from two separate passes of the conditional model: with the asked prefix and with [any, any]
        inputs = torch.cat([prefix, full[:, :-1]], dim=1)
        free = torch.cat([model.prefix(None, None).expand(3, 2), full[:, :-1]], dim=1)
        lc, lu = torch.log_softmax(model(inputs), -1), torch.log_softmax(model(free), -1)
        expect = torch.log_softmax(lu + weight * (lc - lu), -1).gather(2, full[:, 1:, None])[..., 0].sum(1)
    assert torch.allclose(-nll.double(), loglik, rtol=1e-9, atol=1e-9)  # recurrent steps = one parallel pass
    assert torch.allclose(expect, loglik, rtol=1e-9, atol=1e-9)
    if weight == 1.0:  # no guidance: the conditional model itself
        assert torch.allclose(-nll_sum(model, full, torch.ones(full.shape), prefix)[0], loglik, rtol=1e-9)
    with pytest.raises(ValueError, match="must be >= 0"):
        GuidedSampleLM(model, -0.5)


def test_score_window_by_window(folder, classifier, tmp_path):
    clips = tmp_path / "long"
    clips.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):  # a low tone for 0.1 s, then a high one
        sf.write(str(clips / f"sample_{i}.wav"), np.concatenate([fsdd_tone(rng, 0, 800), fsdd_tone(rng, 1, 800)]), 8000)
    out = tmp_path / "score"
    assert main(["audio", "score", str(clips), "--classifier", str(classifier), "--out", str(out), "--window", "0.1",
                 "--rounds", "10", "--reference", str(folder)]) == 0
    sets = json.loads((out / "score.json").read_text())["sets"]
    assert list(sets) == ["long @ 0-0.1 s", "long @ 0.1-0.2 s"]
    assert np.argmax(sets["long @ 0-0.1 s"]["predicted_class_counts"]) == 0
    assert np.argmax(sets["long @ 0.1-0.2 s"]["predicted_class_counts"]) == 1


@pytest.mark.parametrize("condition", ["true", "digit", "speaker", "any"])
def test_eval_of_a_conditional_model_under_each_condition(cond_run, folder, capsys, condition):
    assert main(["audio", "eval", "--model", str(cond_run), "--data", str(folder / "1_bob_0.wav"),
                 "--condition", condition]) == 0
    bits = float(capsys.readouterr().out.split(": ")[1].split()[0])
    assert 0 < bits < 9


def test_classify_digit_is_bayes_rule_over_the_model_likelihoods(cond_run, folder, tmp_path, capsys):
    data = tmp_path / "few"
    data.mkdir()
    names = [f"{d}_{s}_{t}.wav" for d in (0, 1) for s in ("ann", "cy") for t in (0, 5)]
    for name in names:
        (data / name).write_bytes((folder / name).read_bytes())
    out = tmp_path / "classify.json"
    assert main(["audio", "eval", "--model", str(cond_run), "--data", str(data), "--classify-digit",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert "digit named by the model itself" in capsys.readouterr().out
    # by hand: every file's total NLL under each digit (prefix built here from the names), argmin, and the true
    # digit's gain over "any"
    run = load_run(cond_run)
    files = sorted(data.glob("*.wav"))
    totals = []
    for d in [*range(run.model.n_digits), None]:
        r = score_files(run.model, files, 8000, run.quantizer, 4, progress=False,
                        prefixes=[run.model.prefix(d, None)] * len(files))
        totals.append([x["bits_per_sample"] * x["samples"] for x in r["per_file"]])
    totals = np.array(totals).T  # (files, digits + 1)
    truth = np.array([int(f.name[0]) for f in files])
    pred = totals[:, :-1].argmin(1)
    assert res["files"] == len(files) and res["accuracy"] == pytest.approx(float((pred == truth).mean()))
    want = np.zeros((run.model.n_digits,) * 2, dtype=int)
    np.add.at(want, (truth, pred), 1)
    assert res["confusion"] == want.tolist()
    gain = totals[:, -1] - totals[np.arange(len(files)), truth]
    assert res["bits_per_file_given_true_digit"] == pytest.approx(float(gain.mean()), rel=1e-6, abs=1e-6)
    (data / "odd.wav").write_bytes((folder / names[0]).read_bytes())  # not an FSDD name: one line naming it
    assert main(["audio", "eval", "--model", str(cond_run), "--data", str(data), "--classify-digit"]) == 2
    err = capsys.readouterr().err
    assert "odd.wav" in err and err.count("\n") == 1

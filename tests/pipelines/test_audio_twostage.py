"""The two-stage audio model end to end on a tiny FSDD-like folder: `audio train` with units.stage vocoder (the coder
fitted on the training clips) and planner (over that coder's units), `audio generate --plan` (recurrent = parallel,
clips as long as their plans), `audio eval` of the vocoder, and the one-line errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import soundfile as sf
import torch

from seqssm.domains.audio.units import UnitCoder
from seqssm.pipelines.cli import main

from pipeline_helpers import as_sets, write_fsdd_like

UNITS = ["units.k=4", "units.hop=40", "units.n_fft=128", "units.n_mels=8", "units.kmeans_iters=5"]
TINY_VOC = ["model.d_model=8", "model.n_layer=1", "model.ssm.d_state=4", "model.multiscale.pool_factors=[2,2]",
            "data.crop_len=128", "data.batch_size=4", "data.eval_batch_size=8", "train.max_steps=3",
            "train.val_every=3", "train.warmup_steps=1", "train.progress_bar=false", "train.threads=1",
            "train.max_minutes=0", "data.val_fraction=0.1", *UNITS]
TINY_PLAN = ["model.d_model=8", "model.n_layer=1", "model.ssm.d_state=4", "model.vocab_size=5", "data.batch_size=4",
             "data.eval_batch_size=8", "train.max_steps=3", "train.val_every=3", "train.warmup_steps=1",
             "train.progress_bar=false", "train.threads=1", "train.max_minutes=0", "data.val_fraction=0.1"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_fsdd_like(tmp_path_factory.mktemp("fsdd"))


@pytest.fixture(scope="module")
def vocoder(folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("voc") / "run"
    assert main(["audio", "train", "--config", "audio_fsdd_units", "--data", str(folder), "--out", str(out),
                 *as_sets(TINY_VOC)]) == 0
    return out


@pytest.fixture(scope="module")
def planner(folder, vocoder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plan") / "run"
    assert main(["audio", "train", "--config", "audio_fsdd_plan", "--data", str(folder), "--out", str(out),
                 *as_sets(TINY_PLAN + [f"units.coder={vocoder}"])]) == 0
    return out


def test_run_folders_hold_the_coder_and_say_what_was_scored(vocoder, planner):
    coder = UnitCoder.load(vocoder / "model" / "units.safetensors")
    assert coder.k == 4 and coder.spec.hop == 40
    assert UnitCoder.load(planner / "model" / "units.safetensors").same_as(coder)
    v = json.loads((vocoder / "metrics.json").read_text())
    p = json.loads((planner / "metrics.json").read_text())
    assert v["units"]["stage"] == "vocoder" and "units" in v["units"]["test_scored_as"]
    assert p["units"]["stage"] == "planner" and "bits per unit" in p["units"]["test_scored_as"]
    assert 0 < p["test_bits_per_sample"] < 8 and 0 < v["test_bits_per_sample"] < 16


def test_eval_of_the_vocoder_is_its_test_score_given_the_true_units(vocoder, folder, tmp_path, capsys):
    test = tmp_path / "test"
    test.mkdir()
    for f in folder.glob("*.wav"):
        if int(f.stem.split("_")[2]) <= 4:
            shutil.copy(f, test / f.name)
    assert main(["audio", "eval", "--model", str(vocoder), "--data", str(test)]) == 0
    got = float(capsys.readouterr().out.split(": ")[1].split()[0])
    want = json.loads((vocoder / "metrics.json").read_text())["test_bits_per_sample"]
    assert got == pytest.approx(want, abs=1e-4)


def test_eval_without_units_scores_the_no_unit_track(vocoder, folder, capsys):
    from seqssm.pipelines.audio.infer import load_run, nll_sum

    f = folder / "1_cy_2.wav"
    assert main(["audio", "eval", "--model", str(vocoder), "--data", str(f), "--no-units"]) == 0
    got = float(capsys.readouterr().out.split(": ")[1].split()[0])
    run = load_run(vocoder)
    ids = run.quantizer.encode(torch.from_numpy(sf.read(str(f), dtype="float32")[0]))
    full = torch.cat([torch.tensor([run.quantizer.zero_id]), ids])[None]
    with torch.no_grad():
        nll, count = nll_sum(run.model, full, torch.ones(full.shape), run.model.prefix(1, "cy")[None],
                             torch.full_like(full, run.coder.k))
    assert got == pytest.approx(float(nll / count) / math.log(2), abs=1e-4)


def test_generate_plans_then_vocodes_and_equals_the_parallel_pass(vocoder, planner, tmp_path):
    out = tmp_path / "gen"
    assert main(["audio", "generate", "--model", str(vocoder), "--plan", str(planner), "--out", str(out), "--digit",
                 "0,1", "--speaker", "ann", "--seconds", "0.2", "--batch", "2", "--check-parallel", "--no-png",
                 "--temperature", "1"]) == 0
    report = json.loads((out / "generate.json").read_text())
    assert report["recurrent_vs_parallel_loglik_max_rel_diff"] < 1e-4
    assert report["plan"] == {"run": str(planner), "temperature": 1.0}
    names = [c["file"] for c in report["clips"]]
    assert names == ["0_ann_00.wav", "0_ann_01.wav", "1_ann_00.wav", "1_ann_01.wav"]
    for clip in report["clips"]:
        units = clip["units"]
        assert 1 <= len(units) <= 40 and all(0 <= u < 4 for u in units)  # 0.2 s = 40 frames of 40 samples at most
        assert sf.info(str(out / clip["file"])).frames == 40 * len(units)


def test_resynth_says_real_units_with_the_files_digit_and_speaker(vocoder, folder, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("0_ann_1.wav", "0_ann_2.wav", "1_cy_3.wav"):
        shutil.copy(folder / name, src / name)
    out = tmp_path / "resynth"
    assert main(["audio", "generate", "--model", str(vocoder), "--resynth", str(src), "--out", str(out),
                 "--check-parallel", "--no-png"]) == 0
    report = json.loads((out / "generate.json").read_text())
    assert report["recurrent_vs_parallel_loglik_max_rel_diff"] < 1e-4 and report["resynth"] == str(src)
    assert [c["file"] for c in report["clips"]] == ["0_ann_00.wav", "0_ann_01.wav", "1_cy_00.wav"]
    coder = UnitCoder.load(vocoder / "model" / "units.safetensors")
    for clip, name in zip(report["clips"], ("0_ann_1.wav", "0_ann_2.wav", "1_cy_3.wav")):
        frames = coder.frames(sf.info(str(src / name)).frames)  # the file's own units, whole
        assert len(clip["units"]) == frames and sf.info(str(out / clip["file"])).frames == 40 * frames


def test_unit_guided_generate_equals_the_parallel_pass(vocoder, planner, tmp_path):
    out = tmp_path / "guided"
    assert main(["audio", "generate", "--model", str(vocoder), "--plan", str(planner), "--out", str(out), "--digit",
                 "1", "--speaker", "bob", "--seconds", "0.1", "--batch", "2", "--guidance", "3", "--check-parallel",
                 "--no-png", "--temperature", "1"]) == 0
    report = json.loads((out / "generate.json").read_text())
    assert report["guidance"] == 3.0 and report["recurrent_vs_parallel_loglik_max_rel_diff"] < 1e-4


def test_unit_drop_replaces_whole_tracks_at_its_rate():
    from seqssm.pipelines.audio.train import AudioTask
    from seqssm.pipelines.jobconfig import TrainConfig

    class Stub:
        n_units = 9

    task = AudioTask(Stub(), TrainConfig(), unit_drop=0.3)
    torch.manual_seed(0)
    track = torch.randint(0, 9, (2000, 6))
    got = task._track({"track": track})
    dropped = (got == 9).all(1)
    assert torch.equal(got[~dropped], track[~dropped])  # a row is kept whole or dropped whole
    assert 0.25 < dropped.double().mean() < 0.35
    assert AudioTask(Stub(), TrainConfig())._track({"track": track}) is track  # no drop: untouched


def _refused(argv, capsys, needle, out: Path):
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2 and needle in err and err.count("\n") == 1, err
    assert not out.exists()


@pytest.mark.parametrize("case", ["no-plan", "planner-as-model", "plan-for-plain-model", "guidance-without-unit-drop",
                                  "rank-by-condition",
                                  "plan-temperature-0", "another-coder", "resynth-with-plan", "resynth-with-digit",
                                  "resynth-not-fsdd", "resynth-plain-model", "resynth-missing", "plan-missing"])
def test_generate_bad_two_stage_options(case, vocoder, planner, folder, tmp_path, capsys):
    out = tmp_path / "gen"
    base = ["audio", "generate", "--out", str(out), "--seconds", "0.05", "--digit", "1"]
    if case in ("plan-for-plain-model", "resynth-plain-model"):
        plain = tmp_path / "plain"
        assert main(["audio", "train", "--data", str(folder), "--out", str(plain),
                     *as_sets([s for s in TINY_VOC if not s.startswith("units.")] + ["condition.by=[digit]"])]) == 0
        capsys.readouterr()
    if case == "guidance-without-unit-drop":  # a vocoder of the same coder, trained with units.drop_prob 0
        assert main(["audio", "train", "--config", "audio_fsdd_units", "--data", str(folder), "--out",
                     str(tmp_path / "plain"),
                     *as_sets(TINY_VOC + ["units.drop_prob=0", f"units.coder={vocoder}"])]) == 0
        capsys.readouterr()
    other = tmp_path / "other"
    if case == "another-coder":  # the same planner, told it learnt another coder's units
        shutil.copytree(planner, other)
        coder = UnitCoder.load(other / "model" / "units.safetensors")
        UnitCoder(coder.spec, coder.centroids + 1, coder.mean, coder.std).save(other / "model" / "units.safetensors")
    odd = tmp_path / "odd.wav"
    shutil.copy(folder / "1_bob_3.wav", odd)
    base_r = ["--model", str(vocoder), "--resynth", str(folder / "1_bob_3.wav")]
    base = [a for a in base if a not in ("--digit", "1")] if case.startswith("resynth") else base
    argv, needle = {
        "resynth-missing": (["--model", str(vocoder), "--resynth", str(tmp_path / "nowhere")],
                            "--resynth " + str(tmp_path / "nowhere") + ": no such file or folder"),
        "plan-missing": (["--model", str(vocoder), "--plan", str(tmp_path / "nowhere")],
                         "--plan " + str(tmp_path / "nowhere") + ": not a run folder"),
        "resynth-with-plan": (base_r + ["--plan", str(planner)], "--plan: not with --resynth"),
        "resynth-with-digit": (base_r + ["--digit", "1"], "--digit: not with --resynth"),
        "resynth-not-fsdd": (["--model", str(vocoder), "--resynth", str(odd)], "--resynth: "),
        "resynth-plain-model": (["--model", str(tmp_path / "plain"), "--resynth", str(folder)],
                                "--resynth: the model at"),
        "no-plan": (["--model", str(vocoder)], "a unit vocoder; name the planner of its units with --plan RUN"),
        "planner-as-model": (["--model", str(planner)], "a planner of units; give its vocoder as --model"),
        "plan-for-plain-model": (["--model", str(tmp_path / "plain"), "--plan", str(planner)],
                                 "--plan: the model at"),
        "guidance-without-unit-drop": (["--model", str(tmp_path / "plain"), "--plan", str(planner), "--guidance", "2"],
                                       "was trained without units.drop_prob"),
        "rank-by-condition": (["--model", str(vocoder), "--plan", str(planner), "--keep", "1", "--rank-by",
                               "condition"], "--rank-by condition: not available for a two-stage model"),
        "plan-temperature-0": (["--model", str(vocoder), "--plan", str(planner), "--plan-temperature", "0"],
                               "--plan-temperature 0.0: must be > 0"),
        "another-coder": (["--model", str(vocoder), "--plan", str(other)], "learnt the units of another coder"),
    }[case]
    _refused(base + argv, capsys, needle, out)


@pytest.mark.parametrize("case", ["vocab", "no-coder", "not-a-units-run", "unconditional", "more-units-than-frames",
                                  "damaged-coder", "other-rate"])
def test_train_bad_two_stage_jobs(case, vocoder, folder, tmp_path, capsys):
    out = tmp_path / "run"
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "units.safetensors").write_bytes(b"not a safetensors file")
    config, sets, needle = {
        "more-units-than-frames": ("audio_fsdd_units", TINY_VOC + ["units.k=100000"], "units.k 100000: more units"),
        "damaged-coder": ("audio_fsdd_plan", TINY_PLAN + [f"units.coder={damaged}"], "is not a unit coder"),
        "other-rate": ("audio_fsdd_plan", TINY_PLAN + [f"units.coder={vocoder}", "data.sample_rate=16000"],
                       "its units are of 8000 Hz audio, data.sample_rate is 16000"),
        "vocab": ("audio_fsdd_plan", TINY_PLAN + ["model.vocab_size=9", f"units.coder={vocoder}"],
                  "model.vocab_size 9: the planner of"),
        "no-coder": ("audio_fsdd_plan", TINY_PLAN, "units.coder"),
        "not-a-units-run": ("audio_fsdd_plan", TINY_PLAN + [f"units.coder={folder}"], "no units.safetensors there"),
        "unconditional": ("audio_fsdd_units", TINY_VOC + ["condition.by=[]"], "needs condition.by"),
    }[case]
    _refused(["audio", "train", "--config", config, "--data", str(folder), "--out", str(out), *as_sets(sets)], capsys,
             needle, out)


def test_vocoder_units_change_its_likelihood(vocoder, folder):
    """The trained vocoder reads its track: the same clip scores differently under its own units and under one
    constant unit (the tables are trained from zero, so three steps already move them)."""
    from seqssm.pipelines.audio.infer import load_run, nll_sum

    run = load_run(vocoder)
    wave = sf.read(str(next(folder.glob("1_ann_0.wav"))), dtype="float32")[0]
    ids = run.quantizer.encode(torch.from_numpy(wave))
    full = torch.cat([torch.tensor([run.quantizer.zero_id]), ids])[None]
    track = run.coder.track(run.coder.encode(run.quantizer.decode(ids).float()), len(ids))[None]
    prefix = run.model.prefix(1, "ann")[None]
    with torch.no_grad():
        own, _ = nll_sum(run.model, full, torch.ones(full.shape), prefix, torch.cat([track[:, :1], track], 1))
        flat, _ = nll_sum(run.model, full, torch.ones(full.shape), prefix, torch.zeros_like(full))
    assert (own - flat).abs().item() > 1e-6


def test_planner_speed_perturbation_adds_each_clip_at_each_speed(vocoder, folder):
    from seqssm.domains.audio import AudioFolder, make_quantizer
    from seqssm.pipelines.audio.twostage import clip_units

    coder = UnitCoder.load(vocoder / "model" / "units.safetensors")
    files = sorted(folder.glob("*_ann_*.wav"))[:3]
    quantizer = make_quantizer("mulaw", 8, "minmax", "sashimi")
    clips = AudioFolder(files, 8000, quantizer)
    once = clip_units(coder, clips, quantizer)
    both = clip_units(coder, clips, quantizer, (1.0, 2.0))
    assert len(both) == 6 and all(torch.equal(a, b) for a, b in zip(once, both[:3]))
    for normal, fast, f in zip(both[:3], both[3:], files):
        assert len(normal) == coder.frames(sf.info(str(f)).frames)
        assert len(fast) == coder.frames(round(sf.info(str(f)).frames / 2))  # twice as fast: half the samples


def test_init_from_a_run_starts_from_all_of_it(vocoder):
    """train.init_from of an audio job: the backbone (init_model), the output layer and the condition tables (and
    units) of the source run, so a fine-tuned or continued run starts where the source ended."""
    from seqssm import build_model
    from seqssm.domains.audio.conditional import UnitConditionalLM
    from seqssm.pipelines.audio.infer import load_run
    from seqssm.pipelines.audio.train import init_condition_tables, init_head
    from seqssm.pipelines.training import init_model

    run = load_run(vocoder)
    torch.manual_seed(5)
    lm = build_model(run.job.model)
    init_model(lm, str(vocoder))
    init_head(lm, str(vocoder))
    model = UnitConditionalLM(lm, run.model.n_digits, run.model.speakers, run.coder.k)
    with torch.no_grad():
        model.unit_embed.weight.normal_()
    init_condition_tables(model, str(vocoder))
    want = run.model.state_dict()
    got = model.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want), [k for k in want if not torch.equal(got[k], want[k])]


def test_init_from_refuses_a_run_with_other_speakers(vocoder, folder, tmp_path, capsys):
    _refused(["audio", "train", "--config", "audio_fsdd_units", "--data", str(folder), "--out", str(tmp_path / "r"),
              *as_sets(TINY_VOC + [f"train.init_from={vocoder}", "condition.speakers=[ann,bob]"])], capsys,
             "a conditional run with other speakers (ann, bob, cy)", tmp_path / "r")


def test_eval_without_units_needs_a_vocoder_trained_with_unit_drop(vocoder, folder, tmp_path, capsys):
    run = tmp_path / "nodrop"
    assert main(["audio", "train", "--config", "audio_fsdd_units", "--data", str(folder), "--out", str(run),
                 *as_sets(TINY_VOC + ["units.drop_prob=0", f"units.coder={vocoder}"])]) == 0
    capsys.readouterr()
    status = main(["audio", "eval", "--model", str(run), "--data", str(folder / "1_cy_2.wav"), "--no-units"])
    err = capsys.readouterr().err
    assert status == 2 and "--no-units: the model at" in err and err.count("\n") == 1


def test_default_temperature_is_the_vocoders_own(vocoder, planner, tmp_path):
    out = tmp_path / "default"
    assert main(["audio", "generate", "--model", str(vocoder), "--plan", str(planner), "--out", str(out), "--digit",
                 "0", "--speaker", "ann", "--seconds", "0.05", "--no-png"]) == 0
    assert json.loads((out / "generate.json").read_text())["temperature"] == 0.8

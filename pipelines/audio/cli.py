"""The `seqssm audio` subcommand: `train` (pipelines/audio/train.py), `eval` and `generate`
(pipelines/audio/infer.py). Light at import time: Lightning loads only when `train` runs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from seqssm import GenerateConfig
from seqssm.domains.audio import list_audio_files, load_audio, parse_fsdd_name, save_wav
from seqssm.domains.audio.conditional import ConditionalSampleLM, GuidedSampleLM, GuidedUnitLM, UnitConditionalLM
from seqssm.pipelines.audio.config import DEFAULT_CONFIG, load_job
from seqssm.pipelines.audio.twostage import plan_track, resynthesis_plans
from seqssm.pipelines.audio.infer import (classify_digits, condition_log_ratio, condition_prefixes, generate_ids,
                                          load_run, nll_sum, plan_evidence, sample_plans, plot_clip, score_files,
                                          write_table)
from seqssm.pipelines.jobconfig import UsageError, add_train_parser, print_resolved
from seqssm.pipelines.rundir import atomic_write_json
from seqssm.pipelines.training import LN2


def _cmd_train(args: argparse.Namespace) -> int:
    job = load_job(args.config, args.set, args.data, args.out)
    if args.print_config:
        return print_resolved(job)
    from seqssm.pipelines.audio.train import train_audio  # Lightning loads here, not for `seqssm info`

    m = train_audio(job, overwrite=args.overwrite)
    if m.get("units", {}).get("stage") == "decoder":
        t = m["test"]
        print(f"seqssm audio train: {m['steps']} steps in {m['seconds']:.0f} s; val {m['val_l1']:.4f}, test "
              f"{t['l1']:.4f} mean |Δ log-magnitude| per frame, {t['lsd_db']:.2f} dB log-spectral distance "
              f"({t['frames']} frames; the coder's own table: {t['table_l1']:.4f}, {t['table_lsd_db']:.2f} dB)\n"
              f"  run folder {job.out_dir}")
        return 0
    unit = "unit" if m.get("units", {}).get("stage") == "planner" else "sample"  # a planner's tokens are units
    line = (f"seqssm audio train: {m['steps']} steps in {m['seconds']:.0f} s; val {m['val_bits_per_sample']:.4f}, "
            f"test {m['test_bits_per_sample']:.4f} bits per {unit} ({m['test_samples']} {unit}s)")
    if "heldout_bits_per_sample" in m:
        line += f"; held-out speakers {m['heldout_bits_per_sample']:.4f}"
    print(f"{line}\n  {m['convention']}\n  run folder {job.out_dir}")
    return 0


def _cmd_classifier(args: argparse.Namespace) -> int:
    from seqssm.pipelines.audio.classifier import load_job as load_classifier_job, train_classifier

    job = load_classifier_job(args.config, args.set, args.data, args.out)
    if args.print_config:
        return print_resolved(job)
    m = train_classifier(job, overwrite=args.overwrite)
    print(f"seqssm audio classifier: {m['epochs']} epochs ({m['steps']} steps) in {m['train_seconds']:.0f} s; "
          f"test accuracy {m['test_accuracy']:.4f} on {m['test_clips']} clips (takes {m['test_takes']})\n"
          f"  run folder {job.out_dir}")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from seqssm.pipelines.audio.score import markdown, score_folders

    if args.rounds < 10:
        raise UsageError(f"--rounds {args.rounds}: must be >= 10")
    res = score_folders(args.clips, args.classifier, args.out, args.reference, args.ceiling, args.rounds, args.seed,
                        args.overwrite, args.label, args.window)
    print(markdown(res), end="")
    print(f"  classifier accuracy on the reference: {res['reference']['classifier_accuracy']:.4f}; "
          f"{res['seconds']:.0f} s; score.json, score.md and examples/ in {args.out}")
    return 0


def _cmd_ngram(args: argparse.Namespace) -> int:
    from seqssm.pipelines.audio.score import ngram_clips

    r = ngram_clips(args.data, args.out, args.clips, args.seconds, args.order, args.seed, overwrite=args.overwrite)
    print(f"seqssm audio ngram: order {r['order']} ({r['smoothing']}), test {r['test_bits_per_sample']:.4f} bits "
          f"per sample; {r['clips']} clips of {r['seconds']:g} s in {args.out} ({r['wall_seconds']:.0f} s)")
    return 0


# Default temperatures, by the metrics of docs/audio.md: sample-level models, of 1, 0.9, 0.7, 0.5, 0.3 and top-p 0.9,
# scored best on FID, IS and mIS at 0.5 ("Sampling choices"); the unit vocoder, given real units, named the asked
# digit most often at 0.8 and scored worse at 0.7 and 0.5 ("Two stages")
SAMPLE_TEMPERATURE = 0.5
VOCODER_TEMPERATURE = 0.8


def _files_of(arg: str, flag: str = "--data") -> list[Path]:
    p = Path(arg)
    if p.is_dir():
        return list_audio_files(p)
    if not p.exists():
        raise UsageError(f"{flag} {arg}: no such file or folder")
    return [p]


def _cmd_eval(args: argparse.Namespace) -> int:
    run = load_run(args.model)
    files = _files_of(args.data)
    if run.job.units.stage == "planner":
        raise UsageError(f"--model {args.model}: a planner of units (its test bits per unit are in its metrics.json); "
                         "eval scores sample-level models")
    if args.no_units and not (run.job.units.stage == "vocoder" and run.job.units.drop_prob > 0):
        raise UsageError(f"--no-units: the model at {args.model} is not a vocoder trained with units.drop_prob")
    if args.classify_digit and run.job.units.stage == "vocoder":
        raise UsageError(f"--classify-digit: the model at {args.model} is given each file's units, which already "
                         "name the digit")
    if args.classify_digit:
        return _classify_digits(args, run, files)
    prefixes = None
    if isinstance(run.model, ConditionalSampleLM):  # each file under its own digit / speaker (FSDD names) or "any"
        given = {"true": run.job.condition.by, "digit": ["digit"], "speaker": ["speaker"], "any": []}[args.condition]
        prefixes = condition_prefixes(run.model, files, given)
    elif args.condition != "true":
        raise UsageError(f"--condition {args.condition}: the model at {args.model} is unconditional")
    res = score_files(run.model, files, run.job.data.sample_rate, run.quantizer, args.batch_size or
                      run.job.data.eval_batch_size, prefixes=prefixes, coder=run.coder, no_units=args.no_units)
    width = max(len(Path(r["file"]).name) for r in res["per_file"])
    if args.per_file:
        for r in res["per_file"]:
            print(f"{Path(r['file']).name:<{width}}  {r['samples']:>8}  {r['bits_per_sample']:.4f}")
    print(f"{args.data}: {res['bits_per_sample']:.4f} bits per sample over {res['samples']} samples in "
          f"{res['files']} files ({run.quantizer.name}, {run.job.data.sample_rate} Hz)")
    if args.out:
        write_table(args.out, res)
    return 0


def _classify_digits(args: argparse.Namespace, run, files) -> int:
    """`eval --classify-digit`: the conditional model's own digit accuracy on FSDD-named files (Bayes' rule)."""
    if not isinstance(run.model, ConditionalSampleLM) or "digit" not in run.job.condition.by:
        raise UsageError(f"--classify-digit: the model at {args.model} is not conditioned on the digit")
    for f in files:
        try:
            parse_fsdd_name(f)
        except ValueError as err:  # AudioInputError: names the file already
            raise UsageError(f"--classify-digit: {err}") from None
    res = classify_digits(run.model, files, run.job.data.sample_rate, run.quantizer,
                          args.batch_size or run.job.data.eval_batch_size)
    print(f"{args.data}: digit named by the model itself (argmax_d log p(x | d)) for {res['accuracy']:.1%} of "
          f"{res['files']} files (chance {1 / run.model.n_digits:.0%}); the true digit is worth "
          f"{res['bits_per_file_given_true_digit']:.1f} bits per file over 'any'")
    print("confusion (rows: true digit, columns: named):")
    for d, row in enumerate(res["confusion"]):
        print(f"  {d}: " + " ".join(f"{c:3d}" for c in row))
    if args.out:
        atomic_write_json(args.out, res)
    return 0


def _conditions(args, run) -> list[tuple[int | None, str | None]]:
    """(digit, speaker) per condition asked for: the product of --digit and --speaker (comma lists or 'all');
    [(None, None)] for an unconditional model. One-line UsageError for what the model cannot be asked."""
    model = run.model
    if not isinstance(model, ConditionalSampleLM):
        for flag, value in (("--digit", args.digit), ("--speaker", args.speaker)):
            if value is not None:
                raise UsageError(f"{flag}: the model at {args.model} is unconditional (its condition.by is [])")
        return [(None, None)]
    on = run.job.condition.by

    def parse(flag, value, known, cast, key):
        if value is None or value == "any":
            return [None]
        if key not in on:
            raise UsageError(f"{flag}: the model at {args.model} is not conditioned on the {key} "
                             f"(condition.by {list(on)})")
        if value == "all":
            return list(known)
        out = []
        for item in value.split(","):
            try:
                v = cast(item.strip())
            except ValueError:
                v = None
            if v not in known:
                raise UsageError(f"{flag} {item.strip()}: unknown {key}; this model knows "
                                 f"{', '.join(str(k) for k in known)} (or all, any)")
            out.append(v)
        return out

    digits = parse("--digit", args.digit, list(range(model.n_digits)), int, "digit")
    speakers = parse("--speaker", args.speaker, model.speakers, str, "speaker")
    return [(d, s) for d in digits for s in speakers]


def _planner_of(args: argparse.Namespace, run):
    """The planner of a two-stage run (--plan), checked against the vocoder; None for a sample-level model. The
    options a two-stage model does not take are refused in one line."""
    stage = run.job.units.stage
    if stage == "planner":
        raise UsageError(f"--model {args.model}: a planner of units; give its vocoder as --model and it as --plan")
    if stage != "vocoder":
        for flag in ("--plan", "--resynth"):
            if getattr(args, flag[2:]):
                raise UsageError(f"{flag}: the model at {args.model} is not a unit vocoder (units.stage {stage})")
        return None
    if args.guidance != 1.0 and not run.job.units.drop_prob > 0:
        raise UsageError(f"--guidance: the vocoder at {args.model} was trained without units.drop_prob, so it has no "
                         "unit-free side to guide from")
    for flag, bad in (("--rank-by condition", args.rank_by == "condition"), ("--prompt", bool(args.prompt))):
        if bad:
            raise UsageError(f"{flag}: not available for a two-stage model (--plan)")
    if args.resynth:  # the vocoder alone, given the units (and digit and speaker) of real files
        for flag, given in (("--plan", args.plan), ("--digit", args.digit), ("--speaker", args.speaker)):
            if given:
                raise UsageError(f"{flag}: not with --resynth (the files' names and units are the conditions)")
        return None
    return _load_planner(args, run, "vocoder").model


def _load_planner(args: argparse.Namespace, run, kind: str):
    """The planner run of --plan, checked against the run that voices its units (a vocoder or a decoder)."""
    if not args.plan:
        raise UsageError(f"--model {args.model}: a unit {kind}; name the planner of its units with --plan RUN "
                         "(or --resynth FILES)")
    if not args.plan_temperature > 0:
        raise UsageError(f"--plan-temperature {args.plan_temperature}: must be > 0")
    plan = load_run(args.plan, "--plan")
    if plan.job.units.stage != "planner":
        raise UsageError(f"--plan {args.plan}: not a planner run (units.stage {plan.job.units.stage})")
    if not plan.coder.same_as(run.coder):
        raise UsageError(f"--plan {args.plan}: learnt the units of another coder than the {kind} at {args.model}")
    if plan.model.speakers != run.model.speakers or plan.model.n_digits != getattr(run.model, "n_digits",
                                                                                 plan.model.n_digits):
        raise UsageError(f"--plan {args.plan}: knows other digits or speakers than the {kind} at {args.model}")
    return plan


def _clip_name(seen: dict, digit, speaker) -> str:
    """{digit}_{speaker}_{NN} ("any" for a condition not given), NN counting on per condition in `seen`: the names
    `seqssm audio score` reads the asked digit from; a condition asked again (--resynth) counts on."""
    name = f"{'any' if digit is None else digit}_{speaker or 'any'}"
    seen[name] = seen.get(name, -1) + 1
    return f"{name}_{seen[name]:02d}"


def _generate_decoded(args: argparse.Namespace, run) -> int:
    """`generate` with a spectral unit decoder (units.stage decoder): the planner's sampled units (--plan) or real
    files' units (--resynth), decoded to spectrograms and voiced by Griffin-Lim. Deterministic given the units, so
    the sampling options belong to the planner (--plan-temperature, --seed), and --check-parallel checks the
    planner's recurrent sampling."""
    for flag, given in (("--temperature", args.temperature is not None), ("--top-p", args.top_p != 1.0),
                        ("--guidance", args.guidance != 1.0), ("--prompt", bool(args.prompt))):
        if given:
            raise UsageError(f"{flag}: not for a spectral decoder (--model {args.model}), which renders its units "
                             "deterministically; the planner samples them (--plan-temperature, --seed)")
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    evidence, check = None, None
    if args.resynth:
        for flag, given in (("--plan", args.plan), ("--digit", args.digit), ("--speaker", args.speaker),
                            ("--rank/--keep", args.rank or args.keep > 0),
                            ("--check-parallel", args.check_parallel)):
            if given:
                raise UsageError(f"{flag}: not with --resynth (the files' names and units are the conditions)")
        real_plans, real_conditions = resynthesis_plans(run, _files_of(args.resynth, "--resynth"))
        plans = [p for p in real_plans for _ in range(args.batch)]
        conditions = [c for c in real_conditions for _ in range(args.batch)]
    else:
        plan = _load_planner(args, run, "decoder")
        conditions = [c for c in _conditions(args, plan) for _ in range(args.batch)]
        if any(s is None for _, s in conditions):
            raise UsageError(f"--speaker: the decoder at {args.model} renders a voice; name one, a list or all "
                             f"({', '.join(run.model.speakers)})")
        prefix = torch.stack([plan.model.prefix(d, s) for d, s in conditions])
        drawn = sample_plans(plan.model, run.coder, prefix, run.coder.frames(round(
            args.seconds * run.job.data.sample_rate)), args.plan_temperature, args.seed, args.check_parallel)
        plans, check = drawn if args.check_parallel else (drawn, None)
        if args.rank or args.keep:  # SaShiMi's ranking, on the plans: the planner's own evidence picks among them
            own, ratio = plan_evidence(plan.model, plans, prefix, run.coder.k)
            evidence = ratio if args.rank_by == "condition" else own
            order = [i for c in range(0, len(plans), args.batch)
                     for i in sorted(range(c, c + args.batch), key=lambda i: -float(evidence[i]))[:args.keep or None]]
            plans, conditions = [plans[i] for i in order], [conditions[i] for i in order]
            evidence = {"by": args.rank_by, "scores": [round(float(evidence[i]), 4) for i in order]}
    rate, n_iter = run.job.data.sample_rate, run.job.units.griffin_lim_iters
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, seen = [], {}
    for (digit, speaker), units in zip(conditions, plans):
        name = _clip_name(seen, digit, speaker)
        wave = run.model.render(units, speaker, n_iter).numpy()
        save_wav(out / f"{name}.wav", wave, rate)
        if not args.no_png:
            plot_clip(wave, rate, out / f"{name}.png", f"{name}: {len(wave) / rate:g} s at {rate} Hz, "
                      f"{len(units)} units, decoded")
        rows.append({"file": f"{name}.wav", "digit": digit, "speaker": speaker, "units": units.tolist()})
        if evidence is not None:  # nats: per unit (likelihood) or the plan's log p(plan | condition) - log p(plan | any)
            rows[-1][f"plan_{evidence['by']}_score"] = evidence["scores"][len(rows) - 1]
    seconds = time.perf_counter() - t0
    report = {"decoder": {"griffin_lim_iters": n_iter}, "batch": len(rows), "seconds": round(seconds, 3),
              "seed": args.seed, "plan": None if args.resynth else {"run": str(args.plan),
                                                                   "temperature": args.plan_temperature},
              "keep": args.keep, "rank_by": args.rank_by if (args.rank or args.keep) else None,
              "resynth": args.resynth, "threads": torch.get_num_threads(), "clips": rows}
    if args.check_parallel:  # the decoder has no recurrent mode; the planner, which samples, has
        report["planner_recurrent_vs_parallel_loglik_max_rel_diff"] = check
    atomic_write_json(out / "generate.json", report)
    print(f"seqssm audio generate: {len(rows)} clips {'decoded' if args.resynth else 'planned and decoded'} "
          f"in {seconds:.1f} s in {out}")
    if args.check_parallel:
        print(f"  the planner's log-likelihood, recurrent steps vs one parallel pass: max relative difference "
              f"{check:.2e}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    for name, ok, what in (("--seconds", args.seconds > 0, "> 0"), ("--batch", args.batch >= 1, ">= 1"),
                           ("--threads", args.threads >= 0, ">= 0"), ("--keep", args.keep >= 0, ">= 0")):
        if not ok:
            raise UsageError(f"{name}: must be {what}")
    if args.keep > args.batch:
        raise UsageError(f"--keep {args.keep}: must be at most --batch {args.batch}")
    if args.rank_by != "likelihood" and not (args.rank or args.keep):
        raise UsageError(f"--rank-by {args.rank_by}: ranks only with --rank or --keep")
    run = load_run(args.model)
    if run.job.units.stage == "decoder":
        return _generate_decoded(args, run)
    if args.temperature is None:  # the default is picked by the sample-quality metrics, per kind of model
        args.temperature = VOCODER_TEMPERATURE if run.job.units.stage == "vocoder" else SAMPLE_TEMPERATURE
    GenerateConfig(temperature=args.temperature, top_p=args.top_p, seed=args.seed).validate(as_options=True)
    planner = _planner_of(args, run)
    conditions = _conditions(args, run)
    if args.resynth:
        real_plans, conditions = resynthesis_plans(run, _files_of(args.resynth, "--resynth"))
    sampler = run.model  # what the clips are drawn from (and the parallel check scores them with)
    if args.guidance != 1.0:
        if not args.guidance >= 0:
            raise UsageError(f"--guidance {args.guidance}: must be >= 0 (1: no guidance)")
        if not isinstance(run.model, ConditionalSampleLM):
            raise UsageError(f"--guidance: the model at {args.model} is unconditional (its condition.by is [])")
        guided = GuidedUnitLM if isinstance(run.model, UnitConditionalLM) else GuidedSampleLM
        sampler = guided(run.model, args.guidance)  # a vocoder: guidance on its units
    if args.threads:
        torch.set_num_threads(args.threads)
    rate, q = run.job.data.sample_rate, run.quantizer
    prompt = None
    if args.check_parallel and args.prompt:
        raise UsageError("--check-parallel: unconditional generation only (not with --prompt)")
    if args.prompt:
        prompt = q.encode(load_audio(args.prompt, rate)[0])
    n = int(round(args.seconds * rate))
    batch = args.batch * len(conditions)  # every condition gets --batch clips, sampled together
    prefix = None
    if isinstance(run.model, ConditionalSampleLM):
        prefix = torch.stack([run.model.prefix(d, s) for d, s in conditions for _ in range(args.batch)])
    if args.rank_by == "condition":
        if prefix is None:
            raise UsageError(f"--rank-by condition: the model at {args.model} is unconditional "
                             "(its condition.by is [])")
        if (None, None) in conditions:
            raise UsageError("--rank-by condition: every clip needs a --digit or --speaker to be ranked against "
                             "'any'")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    plans, track, lengths = None, None, [n] * batch
    if planner is not None or args.resynth:  # two-stage: the planner says what (units), the vocoder says it
        if args.resynth:
            plans = [p for p in real_plans for _ in range(args.batch)]
        else:
            plan_prefix = torch.stack([planner.prefix(d, s) for d, s in conditions for _ in range(args.batch)])
            plans = sample_plans(planner, run.coder, plan_prefix, run.coder.frames(n), args.plan_temperature,
                                 args.seed)
        track, lengths = plan_track(run.coder, plans, run.model.n_units)
        n = track.shape[1]
        with run.model.following(track):
            ids, loglik, block_times = generate_ids(sampler, n, batch, prompt, args.temperature, args.top_p,
                                                    args.seed, q.zero_id, prefix=prefix, lengths=lengths)
    else:
        ids, loglik, block_times = generate_ids(sampler, n, batch, prompt, args.temperature, args.top_p,
                                                args.seed, q.zero_id, prefix=prefix)
    seconds = time.perf_counter() - t0
    check = None
    if args.check_parallel:  # the same clips scored by one parallel pass: recurrent and parallel modes must agree
        full = torch.cat([torch.full((batch, 1), q.zero_id), ids], dim=1)
        mask = torch.ones_like(full, dtype=torch.float32)
        for row, length in zip(mask, lengths):
            row[1 + length:] = 0  # a two-stage row counts its plan's samples only, as the steps did
        with torch.no_grad():
            nll, _ = nll_sum(sampler, full, mask, prefix,
                             None if track is None else torch.cat([track[:, :1], track], 1))
        check = float(((loglik + nll.double()).abs() / nll.double()).max())
    # SaShiMi's likelihood ranking: the clips of a condition, most likely under the model first; or by how much
    # more likely the (unguided) model finds each clip given its condition than given none: log p(x | c) - log
    # p(x | any), the model's own evidence that the clip is of its condition (Bayes' rule with equal priors)
    rank_score = loglik / torch.tensor(lengths, dtype=torch.float64)  # per sample: two-stage rows differ in length
    if args.rank_by == "condition":
        rank_score = condition_log_ratio(run.model, ids, prefix, q.zero_id)
    rows, seen = [], {}
    for c, (digit, speaker) in enumerate(conditions):
        rows_c = list(range(c * args.batch, (c + 1) * args.batch))
        by_rank = bool(args.rank or args.keep)
        ranked = sorted(rows_c, key=lambda i: -float(rank_score[i])) if by_rank else rows_c
        for rank, i in enumerate(ranked[:args.keep or None]):
            wave = q.decode(ids[i][:lengths[i]]).float().numpy()
            if prefix is None:
                name = f"sample_{rank:02d}" if by_rank else f"sample_{i:02d}"
            else:
                name = _clip_name(seen, digit, speaker)
            bits = float(-loglik[i] / lengths[i] / LN2)
            save_wav(out / f"{name}.wav", wave, rate)
            if not args.no_png:
                plot_clip(wave, rate, out / f"{name}.png", f"{name}: {lengths[i] / rate:g} s at {rate} Hz, "
                          f"{bits:.3f} bits per sample under the model")
            row = {"file": f"{name}.wav", "bits_per_sample": bits, "digit": digit, "speaker": speaker}
            if args.rank_by == "condition":
                row["condition_log_ratio"] = round(float(rank_score[i]), 3)
            if plans is not None:
                row["units"] = plans[i].tolist()
            rows.append(row)
    per_block = np.array(block_times) / max(1, n // 10)
    report = {"samples": n, "batch": batch, "seconds": round(seconds, 3), "temperature": args.temperature,
              "guidance": args.guidance, "top_p": args.top_p, "seed": args.seed, "keep": args.keep,
              "plan": None if planner is None else {"run": str(args.plan), "temperature": args.plan_temperature},
              "resynth": args.resynth,
              "rank_by": args.rank_by if (args.rank or args.keep) else None,
              "threads": torch.get_num_threads(),
              "samples_per_second": round(n * batch / seconds, 1), "real_time_factor": round(seconds / args.seconds, 3),
              "ms_per_step_first_tenth": round(1e3 * float(per_block[0]), 4),
              "ms_per_step_last_tenth": round(1e3 * float(per_block[-1]), 4), "clips": rows}
    if check is not None:
        report["recurrent_vs_parallel_loglik_max_rel_diff"] = check
    atomic_write_json(out / "generate.json", report)
    print(f"seqssm audio generate: {batch} x {args.seconds:g} s in {seconds:.1f} s "
          f"({report['samples_per_second']:.0f} samples/s, real-time factor {report['real_time_factor']:.2f}); "
          f"ms per step {report['ms_per_step_first_tenth']:.3f} (first tenth) vs "
          f"{report['ms_per_step_last_tenth']:.3f} (last tenth); {len(rows)} clips in {out}")
    if check is not None:
        print(f"  log-likelihood, recurrent steps vs one parallel pass: max relative difference {check:.2e}")
    return 0


def register(subparsers) -> None:
    au = subparsers.add_parser("audio", help="raw audio generation: train, eval (bits per sample), generate")
    sub = au.add_subparsers(dest="audio_command", metavar="ACTION")
    sub.required = True

    add_train_parser(sub, "train a next-sample model on a folder of audio; writes a run folder", DEFAULT_CONFIG,
                     "train.max_steps=50",
                     [("--data", "folder of audio files (FSDD layout for data.split=fsdd); sets data.folder")],
                     _cmd_train)

    cl = sub.add_parser("classifier", help="train the FSDD digit classifier that `score` uses; writes a run folder")
    cl.add_argument("--config", help="job YAML, or a shipped config name (default: audio_classifier)")
    cl.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override, e.g. train.max_minutes=2")
    cl.add_argument("--data", help="FSDD folder ({digit}_{speaker}_{take}.wav); sets data.folder")
    cl.add_argument("--out", help="run folder; sets out_dir")
    cl.add_argument("--overwrite", action="store_true", help="replace this job's files in a non-empty run folder")
    cl.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    cl.set_defaults(func=_cmd_classifier)

    sc = sub.add_parser("score", help="FID, IS, mIS, AM of folders of clips against the FSDD test takes")
    sc.add_argument("clips", nargs="+", help="folders of clips (8 kHz); names {digit}_{speaker}_{i}.wav count as asked")
    sc.add_argument("--classifier", required=True, help="run folder of 'seqssm audio classifier'")
    sc.add_argument("--out", required=True, help="folder for score.json, score.md and examples/")
    sc.add_argument("--reference", help="FSDD folder (default: the classifier's data.folder); its test takes")
    sc.add_argument("--ceiling", action="store_true", help="also score the test takes, half against half")
    sc.add_argument("--label", action="append", default=[], help="a name per clips folder, in order")
    sc.add_argument("--rounds", type=int, default=200, help="bootstrap rounds")
    sc.add_argument("--window", type=float, default=0.0,
                    help="seconds: score each window position of the clips as its own set (drift of long clips)")
    sc.add_argument("--seed", type=int, default=0)
    sc.add_argument("--overwrite", action="store_true", help="replace this command's files in a non-empty --out")
    sc.set_defaults(func=_cmd_score)

    ng = sub.add_parser("ngram", help="clips sampled from an n-gram of the FSDD training takes (the metrics' floor)")
    ng.add_argument("--data", required=True, help="FSDD folder")
    ng.add_argument("--out", required=True, help="folder for sample_NNN.wav and ngram.json")
    ng.add_argument("--clips", type=int, default=100)
    ng.add_argument("--seconds", type=float, default=1.0)
    ng.add_argument("--order", type=int, default=3, help="1-3")
    ng.add_argument("--seed", type=int, default=0)
    ng.add_argument("--overwrite", action="store_true")
    ng.set_defaults(func=_cmd_ngram)

    ev = sub.add_parser("eval", help="bits per sample of a trained run on an audio file or folder")
    ev.add_argument("--model", required=True, help="run folder of 'seqssm audio train'")
    ev.add_argument("--data", required=True, help="an audio file or a folder of them")
    ev.add_argument("--batch-size", type=int, default=0, help="clips per batch (default: data.eval_batch_size)")
    ev.add_argument("--per-file", action="store_true", help="print one line per file")
    ev.add_argument("--condition", choices=("true", "digit", "speaker", "any"), default="true",
                    help="conditional models: score each file given its own digit and speaker (true), only one of "
                         "them, or neither (any); the difference is what the condition is worth in bits")
    ev.add_argument("--classify-digit", action="store_true",
                    help="conditional models: name each FSDD file's digit by the model itself (the d with the "
                         "highest log p(x | d)) and report the accuracy and confusion; --out writes it as JSON")
    ev.add_argument("--no-units", action="store_true",
                    help="unit vocoders trained with units.drop_prob: score without the files' units (what they are "
                         "worth: the difference from the default)")
    ev.add_argument("--out", help="write the per-file table to this TSV (with --classify-digit: the result JSON)")
    ev.set_defaults(func=_cmd_eval)

    ge = sub.add_parser("generate", help="sample audio with the recurrent state; WAV + waveform/spectrogram PNG")
    ge.add_argument("--model", required=True, help="run folder of 'seqssm audio train'")
    ge.add_argument("--out", required=True, help="folder for sample_NN.wav, sample_NN.png and generate.json")
    ge.add_argument("--seconds", type=float, default=1.0)
    ge.add_argument("--batch", type=int, default=1, help="clips per condition, all sampled together")
    ge.add_argument("--prompt", help="an audio file to continue (default: unconditional)")
    # the log-likelihoods reported stay those at temperature 1
    ge.add_argument("--temperature", type=float, default=None,
                    help=f"sampling temperature (default {SAMPLE_TEMPERATURE}, {VOCODER_TEMPERATURE} for a unit "
                         "vocoder, chosen by the sample-quality metrics; 1: the model's own distribution; a spectral "
                         "decoder samples nothing: its planner has --plan-temperature)")
    ge.add_argument("--top-p", type=float, default=1.0, help="nucleus filter (default 1: none)")
    ge.add_argument("--guidance", type=float, default=1.0,
                    help="conditional models: classifier-free guidance weight w (Ho & Salimans 2022): each step's "
                         "log-probabilities are unconditioned + w * (conditioned - unconditioned); 1: none "
                         "(default), 0: unconditional, > 1: stronger conditioning; the reported likelihoods are the "
                         "guided model's")
    ge.add_argument("--seed", type=int, default=0)
    ge.add_argument("--rank", action="store_true", help="name the clips by their own likelihood, best first")
    ge.add_argument("--keep", type=int, default=0,
                    help="keep only the K most likely clips of each condition's --batch (SaShiMi's ranking; 0: all; "
                         "with a spectral decoder: the K most likely plans, by the planner)")
    ge.add_argument("--rank-by", choices=("likelihood", "condition"), default="likelihood",
                    help="with --rank/--keep: the clip's own likelihood (default), or conditional models: log p(clip | "
                         "condition) - log p(clip | any), how much the condition explains the clip")
    ge.add_argument("--digit", help="conditional models: a digit, a comma list, 'all' or 'any' (default any)")
    ge.add_argument("--speaker", help="conditional models: a speaker, a comma list, 'all' or 'any' (default any)")
    ge.add_argument("--no-png", action="store_true", help="write the WAVs and generate.json only")
    ge.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ge.add_argument("--plan", help="two-stage models (--model a units.stage vocoder or decoder run): the planner run "
                    "whose sampled units it says; a clip ends at the planner's end token or at --seconds")
    ge.add_argument("--plan-temperature", type=float, default=1.0, help="the planner's sampling temperature")
    ge.add_argument("--resynth", help="two-stage models: an FSDD-named file or folder; the vocoder or decoder says "
                    "each file's own units with its digit and speaker (--batch times), the planner left out; "
                    "--seconds unused")
    ge.add_argument("--check-parallel", action="store_true",
                    help="also score the clips in one parallel pass and report how far it is from the recurrent one "
                         "(with a spectral decoder: the planner's sampled plans)")
    ge.set_defaults(func=_cmd_generate)

"""`seqssm pretrain` over several genomes (data.genomes: per-genome sampling weights, both strands) and
`seqssm classify benchmark --init-from` fine-tuning every task from it, on tiny configs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from classify_helpers import TINY_CLS, make_rows, write_csv
from seqssm.domains.dna.multigenome import MultiGenomeCorpus
from seqssm.pipelines.cli import main
from seqssm.pipelines.pretrain.config import load_job

ROOT = Path(__file__).resolve().parents[2]
TINY = ["model.d_model=16", "model.n_layer=2", "model.ssm.d_state=4", "schedule.tokens_per_batch=256",
        "train.progress_bar=false", "train.warmup_steps=1", "train.threads=1", "data.eval_segment=700",
        "data.eval_context=32", "data.eval_max_tokens=300", "train.tensorboard=false",
        "schedule.stages=[{seq_len: 64, steps: 4}]"]


def _fasta(path: Path, records: dict[str, str], gz: bool = False) -> str:
    text = "".join(f">{k}\n" + "\n".join(v[i:i + 60] for i in range(0, len(v), 60)) + "\n" for k, v in records.items())
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return str(path)


@pytest.fixture(scope="module")
def genomes(tmp_path_factory):
    d = tmp_path_factory.mktemp("genomes")
    rng = np.random.default_rng(0)

    def seq(n, alphabet="ACGT"):
        return "".join(rng.choice(list(alphabet), n))

    # a: two records of A/C only; b: one record of G/T only (so a window's genome shows in its letters)
    a = _fasta(d / "a.fa", {"r1": seq(3000, "AC"), "r2": seq(1000, "AC")})
    b = _fasta(d / "b.fa.gz", {"chr": seq(6000, "GT")}, gz=True)
    return a, b


def test_windows_follow_the_genome_weights_not_their_sizes(genomes):
    a, b = genomes
    c = MultiGenomeCorpus([("a", a, 3.0), ("b", b, 1.0)], holdout=0.1)
    assert {name for name, _, _ in c.records} == {"a/r1", "a/r2", "b/chr"}
    rows = np.concatenate([c.train_windows(s, 0, 64, 16, 0.1, rc_augment=0.0).numpy() for s in range(40)])
    from seqssm.domains.dna.tokenizer import VOCAB

    from_a = np.isin(rows, [VOCAB["A"], VOCAB["C"]]).all(1).mean()
    assert 0.68 < from_a < 0.82  # weight 3:1 -> 0.75, although b has 1.5x the bases of a


def test_reverse_strand_is_read(genomes):
    a, _ = genomes
    c = MultiGenomeCorpus([("a", a, 1.0)], holdout=0.1)
    from seqssm.domains.dna.tokenizer import VOCAB

    rows = c.train_windows(0, 0, 64, 16, 0.1, rc_augment=1.0).numpy()  # all on the minus strand: G/T
    assert np.isin(rows, [VOCAB["G"], VOCAB["T"]]).all()


@pytest.mark.parametrize("kv,key", [
    ("data.genomes=[{name: a, path: x.fa, weight: 0}]", "data.genomes[0].weight"),
    ("data.genomes=[{name: a, path: x.fa}, {name: a, path: y.fa}]", "data.genomes"),
    ("data.genomes=[{name: 'a/b', path: x.fa}]", "data.genomes[0].name"),
], ids=["zero_weight", "duplicate_name", "slash_in_name"])
def test_bad_genome_lists_are_one_line(kv, key, tmp_path, capsys):
    assert main(["pretrain", "--out", str(tmp_path / "r"), "--set", kv]) == 2
    err = capsys.readouterr().err.strip()
    assert key in err and len(err.splitlines()) == 1


def test_missing_genome_file_is_one_line(tmp_path, capsys):
    args = ["pretrain", "--out", str(tmp_path / "r"),
            "--set", f"data.genomes=[{{name: a, path: {tmp_path / 'none.fa'}}}]"] + [x for kv in TINY for x in ("--set", kv)]
    assert main(args) == 2
    assert "data.genomes[0].path" in capsys.readouterr().err


def test_shipped_recipe_names_every_genome_we_have():
    job = load_job("pretrain_multigenome")
    names = {g.name: g.path for g in job.data.genomes}
    assert set(names) == {"ecoli", "celegans", "dmelanogaster", "athaliana"}
    assert job.objective.kind == "causal" and job.data.rc_augment > 0 and job.train.max_minutes == 60
    for p in names.values():  # the shipped paths point at ../shared/data from the project root
        assert (ROOT / p).is_file(), p


def test_pretrain_on_two_genomes_then_benchmark_fine_tunes_from_it(genomes, tmp_path):
    a, b = genomes
    run = tmp_path / "backbone"
    sets = TINY + [f"data.genomes=[{{name: a, path: {a}, weight: 1}}, {{name: b, path: {b}, weight: 2}}]"]
    assert main(["pretrain", "--out", str(run), *[x for kv in sets for x in ("--set", kv)]]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert "a=" in m["data"] and "b=" in m["data"] and m["steps"] == 4

    suite = tmp_path / "suite"
    for t in ("t1", "t2"):
        (suite / t).mkdir(parents=True)
        for split, n, s in (("train", 48, 1), ("dev", 16, 2), ("test", 16, 3)):
            write_csv(suite / t / f"{split}.csv", make_rows(n, seed=s))
    out = tmp_path / "bench"
    cls = [kv for kv in TINY_CLS if not kv.startswith(("model.d_model", "model.n_layer", "model.ssm.d_state",
                                                       "train.max_steps"))]
    cls += ["model.d_model=16", "model.n_layer=2", "model.ssm.d_state=4", "train.max_steps=4"]
    args = ["classify", "benchmark", "--suite", str(suite), "--out", str(out), "--init-from", str(run),
            "--minutes", "5", *[x for kv in cls for x in ("--set", kv)]]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["init_from"] == str(run.resolve())
    for r in res["tasks"]:
        assert r["status"] == "ok" and r["model"]["init_from"] == str(run.resolve())
    assert "fine-tuned from" in (out / "results.md").read_text()

"""Task suites for `seqssm classify benchmark`: finding the task folders, their split files and columns, and
checking each task's splits (one line per problem, so that a bad task is named in the table and the others run).

A suite is a folder of task folders. A task folder holds `train`, `dev` (or `val`, `valid`, `validation`) and
optionally `test`, each `.csv` or `.tsv` with a header: GUE's `sequence,label`, Genomic Benchmarks' `seq<TAB>label`,
or any header naming one of SEQUENCE_COLUMNS and one of LABEL_COLUMNS. An optional `references.yaml` beside the
task folders holds published numbers: `{task: {model name: test MCC}}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seqssm.domains.dna import dedup_against, read_labelled
from seqssm.domains.dna.tables import delimiter_of
from seqssm.pipelines.jobconfig import UsageError

SPLITS = {"train": ("train",), "dev": ("dev", "val", "valid", "validation"), "test": ("test",)}
EXTENSIONS = (".csv", ".tsv")
SEQUENCE_COLUMNS = ("sequence", "seq", "sequences", "dna")
LABEL_COLUMNS = ("label", "labels", "class", "target", "y")
REFERENCES = "references.yaml"


class TaskError(ValueError):
    """A problem with one task of a suite: one line, shown in the table; the other tasks still run."""


@dataclass
class TaskFiles:
    name: str
    folder: Path
    train: Path
    dev: Path
    test: Path | None
    sequence_column: str
    label_column: str


def find_tasks(suite: str | Path) -> list[Path]:
    """The task folders of a suite, sorted by name (hidden folders skipped)."""
    root = Path(suite)
    if not root.is_dir():
        raise UsageError(f"--suite {root}: no such folder")
    tasks = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not tasks:
        raise UsageError(f"--suite {root}: no task folders in it (each task: a folder with train/dev/test files)")
    return tasks


def _split_file(folder: Path, split: str) -> Path | None:
    found = [folder / f"{stem}{ext}" for stem in SPLITS[split] for ext in EXTENSIONS
             if (folder / f"{stem}{ext}").is_file()]
    if len(found) > 1:
        raise TaskError(f"{folder}: more than one {split} split ({', '.join(p.name for p in found)})")
    return found[0] if found else None


def _columns(path: Path) -> tuple[str, str]:
    with open(path, "rb") as fh:
        head = fh.readline().decode("utf-8-sig", errors="replace")
    if not head.strip():
        raise TaskError(f"{path}: empty file (a header naming the sequence and label columns is required)")
    names = [h.strip().strip('"').lower() for h in head.rstrip("\r\n").split(delimiter_of(path, head))]
    seq = next((c for c in SEQUENCE_COLUMNS if c in names), None)
    lab = next((c for c in LABEL_COLUMNS if c in names), None)
    if seq is None or lab is None:
        raise TaskError(f"{path}:1: the header must name a sequence column ({'/'.join(SEQUENCE_COLUMNS)}) and a "
                        f"label column ({'/'.join(LABEL_COLUMNS)}), got {names}")
    return seq, lab


def task_files(folder: Path) -> TaskFiles:
    """The split files and column names of one task folder; TaskError (one line) when something is missing."""
    train, dev, test = (_split_file(folder, s) for s in SPLITS)
    want = " or ".join(f"{s}{e}" for s in SPLITS["train"] for e in EXTENSIONS)
    if train is None:
        raise TaskError(f"{folder}: no train split ({want})")
    if dev is None:
        names = "/".join(SPLITS["dev"])
        raise TaskError(f"{folder}: no dev split ({names} .csv or .tsv): the best checkpoint is chosen on it")
    seq, lab = _columns(train)
    for p in (dev, test):
        if p is not None and _columns(p) != (seq, lab):
            raise TaskError(f"{p}:1: its columns differ from {train.name}'s ({seq!r}, {lab!r})")
    return TaskFiles(folder.name, folder, train, dev, test, seq, lab)


def read_splits(tf: TaskFiles, max_length: int, truncation: str) -> dict:
    """The labelled splits of a task, checked: each split non-empty, the same label set in every split.
    Returns {"train", "dev", "test" (or None), "duplicates": {pair: count}}."""
    def read(path, split, classes=None):
        try:
            return read_labelled(path, f"{split} split", max_length, truncation, classes, tf.sequence_column,
                                 tf.label_column)
        except ValueError as err:  # DNAInputError: the file and line are in the message
            msg = str(err)
            if "unknown label" in msg:
                msg = f"label sets differ between splits: {msg}"
            raise TaskError(msg) from None

    train = read(tf.train, "train")
    dev = read(tf.dev, "dev", train.classes)
    test = read(tf.test, "test", train.classes) if tf.test else None
    for name, ds in (("dev", dev), ("test", test)):
        if ds is None:
            continue
        missing = [train.classes[i] for i in range(train.num_classes) if i not in set(ds.labels)]
        if missing:
            raise TaskError(f"{ds.source}: label sets differ between splits: {', '.join(map(repr, missing))} "
                            f"of train never occur{'s' if len(missing) == 1 else ''} in {name}")
    dups = {"train_dev": dedup_against(train, dev).n_duplicates}
    if test is not None:
        dups["train_test"] = dedup_against(train, test).n_duplicates
        dups["dev_test"] = dedup_against(dev, test).n_duplicates
    return {"train": train, "dev": dev, "test": test, "duplicates": dups}


def read_references(suite: Path) -> dict:
    """references.yaml beside the task folders: {task: {model: MCC}}; {} when there is none."""
    p = Path(suite) / REFERENCES
    if not p.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise UsageError(f"{p}: not valid YAML ({str(err).splitlines()[0]})") from None
    ok = isinstance(data, dict) and all(
        isinstance(v, dict) and all(isinstance(x, (int, float)) for x in v.values()) for v in data.values())
    if not ok:
        raise UsageError(f"{p}: expected {{task: {{model name: MCC}}}}")
    return {str(k): {str(m): float(x) for m, x in v.items()} for k, v in data.items()}


__all__ = ["TaskError", "TaskFiles", "find_tasks", "read_references", "read_splits", "task_files"]

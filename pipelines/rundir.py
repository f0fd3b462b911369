"""Run folders and atomic writes shared by the jobs.

A job writes everything into a staging folder inside the run folder and, once it has finished, moves each
artifact into place with os.replace; a job that fails or is interrupted leaves no partial file behind and removes
only its own staging folder. A run folder that already holds files is refused unless `overwrite` is set; even
then only the job's own artifact names are replaced and every other file is left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from seqssm.atomic import atomic_open, atomic_write_text
from seqssm.pipelines.jobconfig import UsageError

STAGING_PREFIX = ".staging-"


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_figure(fig, path: str | os.PathLike) -> None:
    """Write a matplotlib figure as PNG through a temporary file (no half-written plot), then close it."""
    import matplotlib.pyplot as plt

    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)


def check_out_dir(out: str | os.PathLike, overwrite: bool, option: str = "--out") -> Path:
    """Refuse a run folder that is a file, or that holds files already (unless overwrite)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{option} {out}: exists and is not a folder")
    if out.is_dir() and not overwrite:
        leftover = [p.name for p in out.iterdir() if not p.name.startswith(STAGING_PREFIX)]
        if leftover:
            raise UsageError(
                f"{option} {out}: folder is not empty ({len(leftover)} entries); "
                "pass --overwrite to replace this job's files in it (other files are kept)"
            )
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(out: Path) -> None:
    """Remove staging folders that a killed job (its process is gone) left in `out`; nothing else."""
    for p in out.glob(f"{STAGING_PREFIX}*"):
        pid = p.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if p.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


@contextmanager
def staging_dir(out: Path) -> Iterator[Path]:
    """A fresh folder inside `out` for the job's outputs; removed (with `out` if we created it) on failure."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    stage = Path(tempfile.mkdtemp(dir=out, prefix=f"{STAGING_PREFIX}{os.getpid()}-"))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created:
            try:
                out.rmdir()  # only if empty: never removes anything but what this job made
            except OSError:
                pass
        raise
    shutil.rmtree(stage, ignore_errors=True)


def publish(stage: Path, out: Path, names: Sequence[str]) -> None:
    """Move each staged artifact into `out`, replacing an older one of the same name (files and folders)."""
    for name in names:
        src, dst = stage / name, out / name
        if not src.exists():
            raise RuntimeError(f"{src}: staged artifact missing (a bug in the job)")
        if src.is_dir() and dst.exists():
            old = out / f"{STAGING_PREFIX}old-{name}-{time.time_ns()}"
            os.replace(dst, old)
            os.replace(src, dst)
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink()
        else:
            if dst.is_dir():
                raise UsageError(f"{dst}: is a folder where this job writes a file")
            os.replace(src, dst)

"""The genome cache: what random access into a FASTA needs beyond the file itself, kept out of the user's folders.

pyfaidx needs a `.fai` index (and a `.gzi` for bgzip) and a file with plain lines (a plain gzip must be
decompressed; a file with ragged lines or blank lines inside records must be rewritten). Writing those beside the
user's FASTA fails in read-only reference folders and leaves files behind, so they all go here:

    <root>/genomes/<key>.fai (.gzi)   the index of a FASTA that pyfaidx can read as it is (plain or bgzip)
    <root>/genomes/<key>.fa (.fa.fai)  a checked plain copy (LF line ends, 80 bases a line) and its index: for a
                                       plain gzip, or a file whose ragged or blank lines pyfaidx cannot index

<root> is `--cache-dir`, else $SEQSSM_CACHE, else $XDG_CACHE_HOME/seqssm, else ~/.cache/seqssm. The key is a
hash of the file's size, modification time and first MiB, so the same content under two paths shares one entry
and an edited file gets a new one. An entry is written only after the whole file has passed the FASTA checks
(fasta._Scan), through a temporary name and a rename, so its presence means "checked and complete". Entries are
used least-recently-first evicted when the folder holds more than $SEQSSM_CACHE_MAX_GB (default 20) GiB; the
entry in use is never evicted.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

from seqssm.domains.dna.alphabet import DNAInputError
from seqssm.domains.dna.fasta import check_fasta, is_bgzf, is_gzip, write_plain_copy

ENV_DIR = "SEQSSM_CACHE"
ENV_MAX_GB = "SEQSSM_CACHE_MAX_GB"
DEFAULT_MAX_GB = 20.0
HEAD_BYTES = 1 << 20
_KEY = re.compile(r"^\.?([0-9a-f]{16})\.")
STALE_TMP_SECONDS = 24 * 3600  # temporary files of a process killed mid-write


class Prepared(NamedTuple):
    fasta: Path  # what pyfaidx opens: the user's file, or a plain copy in the cache
    fai: Path
    gzi: Path | None  # bgzip only


def cache_root(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "seqssm"


@contextmanager
def using(root: str | os.PathLike | None) -> Iterator[None]:
    """While the block runs, the cache lives under `root` (a command's `--cache-dir`); None changes nothing. The
    cache is a process-wide setting like $SEQSSM_CACHE, so a job's readers need no extra argument."""
    if not root:
        yield
        return
    old = os.environ.get(ENV_DIR)
    os.environ[ENV_DIR] = str(Path(root).expanduser())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV_DIR, None)
        else:
            os.environ[ENV_DIR] = old


def genome_dir(explicit: str | os.PathLike | None = None) -> Path:
    return cache_root(explicit) / "genomes"


def max_bytes() -> int:
    raw = os.environ.get(ENV_MAX_GB, "")
    try:
        gb = float(raw) if raw else DEFAULT_MAX_GB
    except ValueError:
        raise DNAInputError(f"${ENV_MAX_GB}: expected a number of GiB, got {raw!r}") from None
    if gb <= 0:
        raise DNAInputError(f"${ENV_MAX_GB}: must be > 0, got {raw!r}")
    return int(gb * (1 << 30))


def content_key(path: Path) -> str:
    """16 hex digits from the size, the modification time (ns) and the first MiB of the file."""
    st = path.stat()
    h = hashlib.sha256(f"{st.st_size}|{st.st_mtime_ns}|".encode())
    with open(path, "rb") as fh:
        h.update(fh.read(HEAD_BYTES))
    return h.hexdigest()[:16]


def _make_dir(d: Path) -> None:
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise DNAInputError(f"{d}: the genome cache is not writable ({err.strerror or err}); point ${ENV_DIR} "
                            "or --cache-dir at a writable folder") from None


def _build_index(fasta: Path, fai: Path, gzi: Path | None) -> None:
    """pyfaidx's .fai (and .gzi) of `fasta`, written under temporary names and renamed into place (.fai last)."""
    import pyfaidx

    tag = f".{os.getpid()}.tmp"
    tmp_fai = fai.with_name(fai.name + tag)
    tmp_gzi = gzi.with_name(gzi.name + tag) if gzi is not None else None
    try:
        kw = {"gzi_indexname": str(tmp_gzi)} if tmp_gzi is not None else {}
        pyfaidx.Faidx(str(fasta), indexname=str(tmp_fai), **kw).close()
        if tmp_gzi is not None:
            os.replace(tmp_gzi, gzi)
        os.replace(tmp_fai, fai)
    except (pyfaidx.FastaIndexingError, pyfaidx.UnsupportedCompressionFormat, ValueError) as err:
        raise DNAInputError(f"{fasta}: cannot index ({str(err).strip().splitlines()[0]})") from None
    finally:
        for t in (tmp_fai, tmp_gzi):
            if t is not None and t.exists():
                t.unlink()


def prepare(source: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Prepared:
    """Check `source` (once per content) and return what pyfaidx should open; writes only into the cache."""
    src = Path(source)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: file not found")
    d = genome_dir(cache_dir)
    key = content_key(src)
    gz, bgzf = is_gzip(src), is_bgzf(src)
    direct = Prepared(src, d / f"{key}.fai", d / f"{key}.gzi" if bgzf else None)
    copy = Prepared(d / f"{key}.fa", d / f"{key}.fa.fai", None)
    for ready in (direct, copy):
        if ready.fai.is_file() and ready.fasta.is_file() and (ready.gzi is None or ready.gzi.is_file()):
            _touch(ready, d)
            return ready
    _make_dir(d)
    if gz and not bgzf:
        chosen = copy  # pyfaidx reads no plain gzip
        write_plain_copy(src, copy.fasta)
    else:
        _, plain = check_fasta(src)
        chosen = direct if plain else copy
        if not plain:
            write_plain_copy(src, copy.fasta)
    _build_index(chosen.fasta, chosen.fai, chosen.gzi)
    _touch(chosen, d)
    evict(d, keep=key)
    return chosen


def _touch(entry: Prepared, d: Path) -> None:
    """Mark the entry's cache files as just used (the eviction order); the user's own file is never touched."""
    for p in entry:
        if p is not None and p.parent == d:
            try:
                os.utime(p)
            except OSError:
                pass


def evict(d: Path, keep: str, limit: int | None = None) -> list[str]:
    """Remove the least recently used entries (all files of a key) until `d` holds at most `limit` bytes.

    The entry `keep` is never removed, even when it alone is over the limit. Returns the keys removed."""
    limit = max_bytes() if limit is None else limit
    groups: dict[str, list[Path]] = {}
    now = time.time()
    for p in d.iterdir():
        m = _KEY.match(p.name)
        if not m or not p.is_file():
            continue
        if p.name.endswith(".tmp") and now - p.stat().st_mtime < STALE_TMP_SECONDS:
            continue  # another process may be writing it
        groups.setdefault(m.group(1), []).append(p)
    size = {k: sum(p.stat().st_size for p in ps) for k, ps in groups.items()}
    used = {k: max(p.stat().st_mtime for p in ps) for k, ps in groups.items()}
    total, removed = sum(size.values()), []
    for k in sorted(groups, key=used.get):
        if total <= limit:
            break
        if k == keep:
            continue
        for p in groups[k]:
            p.unlink(missing_ok=True)
        total -= size[k]
        removed.append(k)
    return removed


__all__ = ["ENV_DIR", "ENV_MAX_GB", "Prepared", "cache_root", "content_key", "evict", "genome_dir", "prepare"]

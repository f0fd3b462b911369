"""`seqssm info`: versions, threads, scan backends and accelerators of this installation."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform


def seqssm_version() -> str:
    try:
        return importlib.metadata.version("seqssm")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _version_of(distribution: str) -> str:
    """The installed version of a distribution, read from its metadata (no import: lightning is slow to import)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def collect() -> dict[str, str]:
    """What `seqssm info` prints, as an ordered dict of label -> value."""
    import torch

    from seqssm.kernels import available_backends, runs_instead
    from seqssm.kernels.scan.cpu import threading_summary

    cuda = torch.cuda.is_available()
    info = {
        "seqssm": seqssm_version(),
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": platform.platform(),
        "torch": torch.__version__,
        "triton": _version_of("triton"),
        "lightning": _version_of("lightning"),
        "threads": str(torch.get_num_threads()),
        "scan backends": ", ".join(available_backends()),
        "backend notes": "; ".join(f"{op}: {name} runs {path} (no {name} kernel of its own)"
                                   for (op, name), path in runs_instead().items()) or "none",
        "cpu scan": threading_summary(),
        "cuda available": "yes" if cuda else "no",
    }
    if cuda:
        info["cuda devices"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    info["genome cache"] = _genome_cache()
    return info


def _genome_cache() -> str:
    """Where FASTA indexes and decompressed genomes go, what they take and the bound (domains.dna.genome_cache)."""
    from seqssm.domains.dna import genome_cache as gc

    d = gc.genome_dir()
    used = sum(p.stat().st_size for p in d.iterdir() if p.is_file()) if d.is_dir() else 0
    try:
        bound = f"{gc.max_bytes() / (1 << 30):.3g} GiB"
    except ValueError as err:
        bound = str(err)
    return f"{d} ({used / (1 << 20):.1f} MiB used, bound {bound}; ${gc.ENV_DIR}, ${gc.ENV_MAX_GB})"


def run(args: argparse.Namespace) -> int:
    info = collect()
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("info", help="versions, threads, scan backends, CUDA availability")
    p.set_defaults(func=run)

"""The `seqssm` command line.

Subcommands live in their own modules, listed in `SUBCOMMANDS` (name -> module). A module provides
`register(subparsers)`, which adds its parser and sets `func(args) -> int` as a default. These modules are light
(each job's cli.py); the job modules, which import Lightning at their top, are imported by the command function
that runs them (lazy dispatch), so `seqssm info` never loads Lightning. Adding a subcommand is one line in
`SUBCOMMANDS` (see docs/architecture.md).

Errors: a user mistake (bad path, unknown config key, bad value, bad option) prints one line
`seqssm: error: <message naming the file or argument>` on stderr and exits with status 2, without a traceback.
Anything else is a bug and raises. Set SEQSSM_DEBUG=1 to get the traceback of user errors too.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from typing import Sequence

from seqssm import CheckpointError, ConfigError, domains
from seqssm.domains import DomainInputError
from seqssm.kernels import KernelInputError
from seqssm.pipelines.info import seqssm_version
from seqssm.pipelines.jobconfig import UsageError

PROG = "seqssm"

# name -> module providing register(subparsers); one line per subcommand
SUBCOMMANDS: dict[str, str] = {
    "info": "seqssm.pipelines.info",
    "lm": "seqssm.pipelines.lm.cli",
    "bench": "seqssm.pipelines.benchmarks.bench",
    "classify": "seqssm.pipelines.classify.cli",
    "audio": "seqssm.pipelines.audio.cli",
    "baseline": "seqssm.pipelines.baseline",
    "pretrain": "seqssm.pipelines.pretrain.cli",
    "eval": "seqssm.pipelines.synthetic.cli",
}

EXIT_USAGE = 2


class CLIUsageError(Exception):
    """Raised by the argument parser instead of printing usage and exiting."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become one line `seqssm: error: ...` (status 2), not usage plus message."""

    def error(self, message: str):  # noqa: D401 (argparse API)
        where = self.prog.replace(PROG, "", 1).strip()
        raise CLIUsageError(f"{where}: {message}" if where else message)


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the user's input is wrong", not "the code is wrong": the core's, the CLI's,
    and those every installed domain plugin declares (`user_errors`)."""
    plugins = []
    for name in domains.available():
        try:
            plugins += list(getattr(domains.load(name), "user_errors", ()))
        except ImportError:  # a plugin whose optional dependencies are missing reports that when it is used
            pass
    return (
        CLIUsageError,
        ConfigError,
        CheckpointError,
        UsageError,
        KernelInputError,
        DomainInputError,
        *plugins,
        FileNotFoundError,
        FileExistsError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Mamba selective state space models for genomics and audio.")
    parser.add_argument("--version", action="version", version=f"{PROG} {seqssm_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, module in SUBCOMMANDS.items():
        importlib.import_module(module).register(sub)
        if name not in sub.choices:
            raise RuntimeError(f"{module}.register did not add the subcommand {name!r}")
    return parser


def one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        msg = f"{exc.filename}: {exc.strerror}"
    else:
        msg = str(exc) or type(exc).__name__
    return " ".join(msg.split())  # one line, whatever the message held


def exit_on_sigterm(signum, frame):
    """SIGTERM becomes SystemExit, so cleanup code (staging folders) runs as it does for Ctrl-C."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script passes it to sys.exit)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    errors = user_errors()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        return _run(argv, errors)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str], errors) -> int:
    try:
        args = build_parser().parse_args(argv)
        status = args.func(args)
    except errors as exc:
        if os.environ.get("SEQSSM_DEBUG"):
            raise
        print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())

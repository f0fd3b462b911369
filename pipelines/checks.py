"""The one-line value check shared by the pipeline configs (pipelines/config.py, pipelines/eval_config.py)."""

from __future__ import annotations

from seqssm import ConfigError


def require(ok: bool, key: str, value, what: str) -> None:
    """ConfigError `key: what, got value` unless ok."""
    if not ok:
        raise ConfigError(f"{key}: {what}, got {value!r}")

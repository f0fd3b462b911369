"""Name -> class registries, so configs hold names and new layers or heads plug in without editing the model.

LAYERS holds sequence mixers (the "mamba" Mamba-1 block; later mamba2, s4d, attention, moe). A mixer class is
built as `cls(cfg: ModelConfig, layer_idx: int)` and provides, with x (b, l, d) and x_t (b, d):
    forward(x, state=None, return_state=False) -> (y (b, l, d), new_state or None)
    allocate_state(batch_size, device=None, dtype=None) -> its per-layer state
    step(x_t, state) -> y_t (b, d), updating state in place
HEADS holds whole models built as `cls(cfg)`: "lm", "classify", "token".
"""

from __future__ import annotations

from typing import Callable, TypeVar

from seqssm.config import ConfigError

T = TypeVar("T")


class Registry:
    """A named table of classes; `key` is the config key that selects from it (used in error messages)."""

    def __init__(self, key: str):
        self.key = key
        self._items: dict[str, type] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(cls: T) -> T:
            if name in self._items and self._items[name] is not cls:
                raise ValueError(f"{self.key}: name {name!r} is already registered to {self._items[name].__name__}")
            self._items[name] = cls
            return cls

        return deco

    def get(self, name: str) -> type:
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise ConfigError(f"{self.key}: unknown name {name!r}; known: {known}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


LAYERS = Registry("layer")
HEADS = Registry("head")

__all__ = ["HEADS", "LAYERS", "Registry"]

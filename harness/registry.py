"""A name -> item registry filled lazily by importing the modules that register into it.

Lazy so that listing or looking up one item does not import every heavy module up front, and so that
`harness --help` stays instant. Used for extractors and datasets (methods keep their own copy of this idea in
`methods/__init__.py`, because `methods/` must not import the harness).
"""

from __future__ import annotations

import importlib
from typing import Generic, TypeVar

T = TypeVar("T")


class LazyRegistry(Generic[T]):
    def __init__(self, kind: str, modules: tuple[str, ...]) -> None:
        self.kind = kind
        self.modules = modules
        self.items: dict[str, T] = {}
        self._loaded = False

    def add(self, name: str, item: T) -> T:
        self.items[name] = item
        return item

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self.modules:
                importlib.import_module(module)

    def names(self) -> list[str]:
        """Sorted, so listings do not depend on which module happened to be imported first."""
        self._load()
        return sorted(self.items)

    def get(self, name: str) -> T:
        self._load()
        try:
            return self.items[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; choose from: {', '.join(sorted(self.items))}") from None

"""One name -> item registry, used for methods, extractors, datasets, protocols and readers.

It lives here, in a module that imports nothing but the standard library, because `methods/` must not import
the harness (a method has to work in a notebook by itself) while the harness imports `methods/`. Every registry
behaves the same way:

- filled lazily by importing the modules that register into it (named one by one, or every module of a
  package, found with `pkgutil.iter_modules`, so a new file registers itself with no list to edit), so
  `harness --help` and a single lookup do not import every heavy module up front;
- listings are sorted by name, so they do not depend on which module happened to be imported first;
- a name registered twice for two different items is an error (`replace=True` is the one, explicit way to
  override, e.g. a user's dataset card that shadows a shipped one);
- an unknown name is a `KeyError` that lists the valid ones.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class DuplicateNameError(ValueError):
    """Two different items registered under one name."""


class Registry(Generic[T]):
    """Named items of one kind ("method", "dataset", ...), loaded on first use from `modules` and from every
    module of `packages` (except those whose name starts with "_", which are helpers)."""

    def __init__(self, kind: str, modules: Iterable[str] = (), packages: Iterable[str] = ()) -> None:
        self.kind = kind
        self.modules = tuple(modules)
        self.packages = tuple(packages)
        self.items: dict[str, T] = {}
        self._loaded = False

    def add(self, name: str, item: T, replace: bool = False) -> T:
        """Register `item` as `name`; registering the same (or an equal) item again is harmless."""
        existing = self.items.get(name)
        if existing is not None and not replace and existing is not item and existing != item:
            raise DuplicateNameError(f"{self.kind} name {name!r} is registered twice ({existing!r} and {item!r}); "
                                     f"rename one, or pass replace=True to override on purpose")
        self.items[name] = item
        return item

    def load(self) -> None:
        """Import the registering modules (once): the named ones, then each package's, in name order."""
        if not self._loaded:
            self._loaded = True
            for module in self.modules:
                importlib.import_module(module)
            for package in self.packages:
                for module in package_modules(package):
                    importlib.import_module(module)

    def names(self) -> list[str]:
        self.load()
        return sorted(self.items)

    def get(self, name: str) -> T:
        self.load()
        try:
            return self.items[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; choose from: {', '.join(sorted(self.items))}") from None

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self.items


def package_modules(package: str) -> list[str]:
    """The full names of the modules (and subpackages) directly inside `package`, sorted, "_"-prefixed ones left
    out. Read from the package's `__path__` at call time, so a file dropped into the folder is found."""
    path = importlib.import_module(package).__path__
    return sorted(f"{package}.{info.name}" for info in pkgutil.iter_modules(path) if not info.name.startswith("_"))

"""Fusion methods, registered by name.

Adding a method = adding one module to this package that calls `register(...)`; the module is listed in
`_METHOD_MODULES` so it is imported lazily (torch-heavy methods do not slow `harness --help`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from methods.base import FusionMethod, Param
from methods.data import MultimodalData

__all__ = ["FusionMethod", "MultimodalData", "Param", "MethodSpec", "register", "get_method", "method_names"]

# Modules that register methods when imported. Order defines the order of `harness list`.
_METHOD_MODULES: tuple[str, ...] = (
    "methods.classical",
    "methods.neural.unimodal",
    "methods.neural.ima_hadamard",
    "methods.neural.embracenet",
    "methods.neural.av_cross_attention",
)


@dataclass(frozen=True)
class MethodSpec:
    """A registered, named variant: a class plus the fixed keyword arguments that define the variant."""

    name: str
    cls: type[FusionMethod]
    fixed: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    modalities: tuple[str, ...] = ()
    # Variants that run by default in `harness run --all`; ablations and slow variants can opt out.
    in_default_suite: bool = True
    # The variant's own search space, when it differs from the class's (e.g. per classifier).
    space: dict[str, Param] | None = None

    def build(self, **params: Any) -> FusionMethod:
        return self.cls(**{**self.fixed, **params})

    def required_modalities(self) -> tuple[str, ...]:
        return self.modalities or self.cls.modalities

    def search_space(self) -> dict[str, Param]:
        space = self.cls.search_space() if self.space is None else self.space
        return {k: v for k, v in space.items() if k not in self.fixed}


_REGISTRY: dict[str, MethodSpec] = {}
_loaded = False


def register(spec: MethodSpec) -> MethodSpec:
    if spec.name in _REGISTRY and _REGISTRY[spec.name].cls is not spec.cls:
        raise ValueError(f"method name {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for module in _METHOD_MODULES:
            importlib.import_module(module)
        _loaded = True


def method_names(default_suite_only: bool = False) -> list[str]:
    _load_all()
    return [n for n, s in _REGISTRY.items() if s.in_default_suite or not default_suite_only]


def get_method(name: str) -> MethodSpec:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; choose from: {', '.join(_REGISTRY)}") from None

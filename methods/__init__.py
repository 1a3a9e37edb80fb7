"""Fusion methods, registered by name.

Adding a method = adding one module to this package that calls `register(...)`; the module is listed in
`_METHOD_MODULES` so it is imported lazily (torch-heavy methods do not slow `harness --help`). This package
never imports the harness (a test keeps it so): a method works in a notebook by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from methods.base import FusionMethod, Param
from methods.data import MultimodalData
from methods.registry import Registry

__all__ = ["FusionMethod", "MultimodalData", "Param", "MethodSpec", "register", "get_method", "method_names"]

# Modules that register methods when imported (`harness list` sorts the names).
_METHOD_MODULES: tuple[str, ...] = (
    "methods.classical",
    "methods.babaali",
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

    def defaults(self) -> dict[str, Any]:
        """Every hyperparameter this variant accepts, with the value `build()` uses (its fixed values applied)."""
        return {**self.cls.declared_defaults(self.fixed), **self.fixed}

    def accepts(self, name: str) -> bool:
        """Whether `name` is a hyperparameter of this variant (so the harness passes a context value such as the
        seed only where it is used, and a search space can be checked before any fit)."""
        return name in self.cls.declared_defaults(self.fixed)

    def required_modalities(self) -> tuple[str, ...]:
        return self.modalities or self.cls.modalities

    def search_space(self) -> dict[str, Param]:
        space = self.cls.search_space() if self.space is None else self.space
        return {k: v for k, v in space.items() if k not in self.fixed}

    def preset_names(self) -> list[str]:
        """The presets this variant offers: always "default", plus e.g. "paper" (see `methods.presets`)."""
        from methods.presets import class_presets

        return list(class_presets(self.cls))

    def preset(self, name: str) -> dict[str, Any]:
        """The hyperparameters preset `name` fixes for this variant (a dict with `.sources` per value and a
        `.note`); the variant's own fixed values win and are left out. "default" fixes nothing."""
        from methods.presets import preset_values

        return preset_values(self.cls, self.fixed, name, self.name)

    def with_preset(self, name: str) -> MethodSpec:
        """This variant with preset `name` fixed: `build()` uses its values and `search_space()` drops them, so
        a search covers only what the preset leaves open. Named `<variant>@<preset>` (unchanged for default)."""
        from dataclasses import replace

        values = self.preset(name)
        if not values and name == "default":
            return self
        return replace(self, name=f"{self.name}@{name}", fixed={**values, **self.fixed})


_METHODS: Registry[MethodSpec] = Registry("method", _METHOD_MODULES)


def register(spec: MethodSpec) -> MethodSpec:
    """Register a variant; a name registered twice for two different variants is an error."""
    return _METHODS.add(spec.name, spec)


def method_names(default_suite_only: bool = False) -> list[str]:
    """Sorted variant names; `default_suite_only` keeps those `harness run --all` runs."""
    return [n for n in _METHODS.names() if _METHODS.items[n].in_default_suite or not default_suite_only]


def get_method(name: str) -> MethodSpec:
    if "@" in name and name not in _METHODS:  # `<variant>@<preset>`, e.g. av-xattn@paper
        base, preset = name.rsplit("@", 1)
        return get_method(base).with_preset(preset)
    return _METHODS.get(name)

"""Named hyperparameter presets of a method (the "paper" preset: the setting its paper reports).

A preset is data: a mapping of fixed hyperparameter values plus, for every value, where it comes from (a paper
section or table, or "not in the paper: chosen because ..."). The harness fixes those values and searches only
what the preset leaves open, so `harness run --preset paper` runs each method as its paper ran it, as far as the
paper states it.

A class declares its presets in the class attribute `presets: {name: Preset}`; "default" always exists and fixes
nothing (the registered defaults, tuned over the search space). A registered variant's own fixed values (the
ones that define the variant, such as an ablation switch) win over a preset's, so `av-xattn-ce@paper` is the
paper's setting with cross-entropy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT = "default"


@dataclass(frozen=True)
class Preset:
    """values: hyperparameter -> value; sources: hyperparameter -> where the value comes from; note: what the
    preset leaves open (searched) or cannot reproduce, in one sentence."""

    values: dict[str, Any]
    sources: dict[str, str]
    note: str = ""

    def __post_init__(self) -> None:
        unsourced = sorted(set(self.values) - set(self.sources))
        if unsourced:
            raise ValueError(f"preset values without a source: {unsourced}; every value must say where it "
                             "comes from")


class PresetValues(dict):
    """The fixed values of a preset for one registered variant (a plain dict) plus `sources` and `note`."""

    def __init__(self, values: dict[str, Any], sources: dict[str, str] | None = None, note: str = "",
                 name: str = DEFAULT) -> None:
        super().__init__(values)
        self.sources: dict[str, str] = dict(sources or {})
        self.note = note
        self.name = name


def class_presets(cls: type) -> dict[str, Preset]:
    """The presets a method class declares (always including "default", which fixes nothing)."""
    declared = dict(getattr(cls, "presets", {}) or {})
    return {DEFAULT: Preset({}, {}, "registered defaults; the search space is tuned"), **declared}


def preset_values(cls: type, fixed: dict[str, Any], name: str, method: str = "") -> PresetValues:
    """The values preset `name` fixes for a variant of `cls` whose own fixed values are `fixed` (those win and
    are left out). An unknown preset is a KeyError that lists the method's presets."""
    presets = class_presets(cls)
    if name not in presets:
        label = method or cls.__name__
        raise KeyError(f"method {label!r} has no preset {name!r}; its presets are: {', '.join(presets)}")
    chosen = presets[name]
    values = {k: v for k, v in chosen.values.items() if k not in fixed}
    return PresetValues(values, {k: chosen.sources[k] for k in values}, chosen.note, name)

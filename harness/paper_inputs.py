"""`--preset paper` chooses inputs too: each planned paper method's extractors, as its paper used them.

A paper preset (`methods.presets.Preset.inputs`) names, per modality, the extractor and options of the paper's
encoder, or the stand-in the harness uses where it lacks that encoder. Under `--preset paper` a run extracts
with them, unless the user chose a modality's extractor (`--features`), which wins and is recorded as a
substitution. With only classical methods planned the fourth paper's inputs apply (Shayaninasab & BabaAli:
BERT, wav2vec2, VideoMAE's stand-in), and with `--finetune` its §3.2 per-modality fine-tuning options. Every
result records, per modality, whether its input was the paper's, a stand-in or the user's substitution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.config import Settings
    from methods import MethodSpec
    from methods.presets import Preset


class InputConflict(ValueError):
    """Two planned paper methods want different extractors for one modality (one line: which, and the fix)."""


@dataclass(frozen=True)
class PaperInputs:
    """features / extractor_config: what the run extracts with; words: modality -> how the result names its input
    ("wav2vec1 (the paper's)", "face-expression (stand-in for Fab-Net)", "egemaps (--features; the paper used
    wav2vec1)"); finetune: per-modality fine-tuning options; papers: whose inputs these are."""

    features: dict[str, str] = field(default_factory=dict)
    extractor_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    words: dict[str, str] = field(default_factory=dict)
    finetune: dict[str, dict[str, Any]] = field(default_factory=dict)
    papers: tuple[str, ...] = ()

    def label(self) -> str:
        """"audio: wav2vec1 (the paper's); video: ..." for tags and the report ("" when no paper input)."""
        return "; ".join(f"{m}: {w}" for m, w in sorted(self.words.items()))


def planned_presets(methods: list[MethodSpec]) -> list[tuple[str, Preset]]:
    """(method name, its paper Preset) for the planned variants that run a paper preset (`<name>@paper`); the
    fourth paper's preset when every planned method is classical (its fusion rules have no preset of their own)."""
    from methods.babaali import PAPER_PRESET
    from methods.presets import class_presets

    chosen = [(m.name, class_presets(m.cls)["paper"]) for m in methods
              if m.name.endswith("@paper") and "paper" in class_presets(m.cls)]
    if not chosen and methods and all(m.cls.family in ("classical", "unimodal") for m in methods):
        chosen = [("the classical methods (Shayaninasab & BabaAli)", PAPER_PRESET)]
    return chosen


def paper_inputs(methods: list[MethodSpec], settings: Settings) -> PaperInputs:
    """The inputs `--preset paper` extracts with for these planned methods. A modality two planned methods want
    from different extractors (or with different options) is an InputConflict naming both and the fix."""
    chosen = planned_presets(methods)
    wanted: dict[str, tuple[str, Any]] = {}
    for name, preset in chosen:
        for modality, given in (preset.inputs or {}).items():
            if modality in wanted and modality not in settings.features and (
                    wanted[modality][1].extractor, wanted[modality][1].options) != (given.extractor, given.options):
                other = wanted[modality][0]
                raise InputConflict(
                    f"preset paper: {other} and {name} use different {modality} inputs ({wanted[modality][1].words()} "
                    f"vs {given.words()}); run them in separate `harness run` calls, or choose one with "
                    f"--features {modality}=EXTRACTOR")
            wanted.setdefault(modality, (name, given))
    features, config, words = {}, {}, {}
    for modality, (_, given) in wanted.items():
        user = settings.features.get(modality)
        if user and user != given.extractor:
            words[modality] = f"{user} (--features; the paper's input is {given.words()})"
            continue
        features[modality] = given.extractor
        user_options = settings.extractor_config.get(given.extractor, {})
        config[given.extractor] = {**given.options, **user_options}
        changed = [f"{k} {user_options[k]}" for k in sorted(given.options)
                   if k in user_options and user_options[k] != given.options[k]]
        words[modality] = given.words() + (f", options changed: {', '.join(changed)}" if changed else "")
    finetune: dict[str, dict[str, Any]] = {}
    for _, preset in chosen:
        for key, value in preset.values.items():
            if key.startswith("finetune."):
                _, modality, option = key.split(".", 2)
                finetune.setdefault(modality, {})[option] = value
    return PaperInputs(features, config, words, finetune, tuple(p.paper for _, p in chosen))


def apply_paper_inputs(settings: Settings, methods: list[MethodSpec]) -> tuple[Settings, PaperInputs]:
    """`settings` with the paper inputs as its features and extractor options (the user's choices win), and,
    under `--finetune`, the paper's per-modality fine-tuning where the user set none for that modality."""
    inputs = paper_inputs(methods, settings)
    changes: dict[str, Any] = {
        "features": {**settings.features, **inputs.features},
        "extractor_config": {**settings.extractor_config, **inputs.extractor_config},
    }
    if settings.finetune and inputs.finetune:
        options = asdict(settings.finetune_options)
        options["per_modality"] = {**inputs.finetune, **options.get("per_modality", {})}
        changes["finetune_options"] = options
    return settings.with_(**changes), inputs

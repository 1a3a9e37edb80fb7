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

from dataclasses import dataclass, field
from typing import Any

DEFAULT = "default"


# A value's source starts with one of these: the paper's section ("paper §4.2: ..."), the command line of the
# code a paper builds on ("SSE-FT command: ..."), or that the paper does not give it.
PAPER_SOURCE = "paper §"
COMMAND_SOURCE = "SSE-FT command"
HARNESS_CHOICE = "not in the paper: harness choice"
INHERITED = "not in the paper: inherited harness default"
SOURCE_PREFIXES = (PAPER_SOURCE, COMMAND_SOURCE, HARNESS_CHOICE, INHERITED)

# What each paper's text states, key by key, with the section (../shared/papers/; checked by
# tests/test_neural_presets.py): a preset value may cite "paper §x" only for a key listed here under its paper,
# and only with that section. Keys are the methods' hyperparameters, `inputs.<modality>` (the encoder a paper
# used) and `finetune.<modality>.<option>` (a paper's per-modality fine-tuning).
PAPERS: dict[str, str] = {
    "mocanu2023": "Mocanu, Tapu, Zaharia 2023 (mocanu2023-av-cross-attention.txt)",
    "xie2021": "Xie, Sidulova, Park 2021 (xie2021-xmt-embracenet.txt)",
    "chaudhari2023": "Chaudhari et al. 2023 (chaudhari2023-ima-hadamard.txt)",
    "babaali2024": "Shayaninasab, BabaAli 2024 (babaali-pretrained-transformers.txt)",
    "sse-ft": "Siriwardhana et al.'s SSE-FT training command (not a seed paper; the code IMA builds on)",
}
STATED: dict[str, dict[str, str]] = {
    "mocanu2023": {
        "n_snippets": "§4.2", "m": "§3.1", "m_prime": "§3.3", "heads": "§4.2", "optimizer": "§4.2", "lr": "§4.2",
        "batch_size": "§4.2", "patience": "§4.2", "select_by": "§4.2", "loss": "§3.4", "metric_loss": "§3.4",
        "frame_size": "§4.2", "frames_per_snippet": "§4.2", "spectrogram_size": "§4.2", "front_end": "§4.2",
        "inputs.video": "§4.2", "inputs.audio": "§4.2",
    },
    "xie2021": {
        "optimizer": "§5.2", "lr": "§5.2", "c": "§4.2.3", "heads": "§4.2.1", "face_encoder": "§4.1.3",
        "face_frames": "§4.1.3", "face_pad": "§4.1.3", "inputs.text": "§4.1.1", "inputs.audio": "§4.1.2",
        "inputs.video": "§4.1.3",
    },
    "chaudhari2023": {
        "max_len_audio": "§4.1", "max_len_video": "§4.1", "max_len_text": "§4.1", "inputs.audio": "§4.1",
        "inputs.video": "§4.1", "inputs.text": "§4.1",
    },
    "babaali2024": {
        "classifier": "§3.4", "fusion": "§3.3", "inputs.text": "§3.3", "inputs.audio": "§3.3",
        "inputs.video": "§3.3",
        **{f"finetune.text.{k}": "§3.2" for k in ("lr", "epochs", "batch_size", "weight_decay", "select_by")},
        **{f"finetune.audio.{k}": "§3.2" for k in ("lr", "epochs", "batch_size", "weight_decay", "max_seconds",
                                                    "select_by")},
        **{f"finetune.video.{k}": "§3.2" for k in ("lr", "epochs", "batch_size", "weight_decay")},
    },
    # --arch robertEMO_large fixes ffn_mult and positional (its model code), the flags the rest
    "sse-ft": {k: "command" for k in ("lr", "optimizer", "weight_decay", "max_epochs", "batch_size", "heads",
                                      "dropout", "grad_clip", "max_positions", "max_len", "select_by",
                                      "ffn_mult", "positional")},
}

# The shared training options a paper preset of a neural method must state itself (or mark as inherited), so a
# preset run never takes the benchmark's defaults silently.
TRAINING_KEYS = ("optimizer", "lr", "weight_decay", "batch_size", "max_epochs", "patience", "grad_clip",
                 "select_by", "class_weights", "max_len")


@dataclass(frozen=True)
class Input:
    """The input a paper preset chooses for one modality: an extractor with options, where it comes from, and,
    when the harness lacks the paper's encoder, which encoder it stands in for ("" = the paper's own)."""

    extractor: str
    source: str
    options: dict[str, Any] = field(default_factory=dict)
    stands_in_for: str = ""

    def words(self) -> str:
        """One phrase for results and the report: "wav2vec1 (the paper's)" / "face-expression (stand-in for
        Fab-Net)"."""
        role = f"stand-in for {self.stands_in_for}" if self.stands_in_for else "the paper's"
        return f"{self.extractor} ({role})"


@dataclass(frozen=True)
class Preset:
    """values: hyperparameter -> value; sources: hyperparameter -> where the value comes from, starting with one
    of SOURCE_PREFIXES; note: what the preset leaves open (searched) or cannot reproduce, in one sentence;
    paper: the key of PAPERS whose text the "paper §x" sources cite; inputs: modality -> Input, the encoder the
    paper used or the stand-in the harness uses for it (`harness run --preset paper` extracts with them)."""

    values: dict[str, Any]
    sources: dict[str, str]
    note: str = ""
    paper: str = ""
    inputs: dict[str, Input] | None = None

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

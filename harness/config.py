"""Run settings as validated data: defaults, then a settings file, then environment variables, then flags.

`Settings` is a pydantic dataclass: pydantic checks every value's type (a YAML string becomes a Path, a list a
tuple; a number where a bool is expected, or a string where a number is, is an error), unknown keys are errors,
and `__post_init__` adds the checks that need more than a type. `from_file` and `from_env` turn pydantic's
report into a `SettingsError` that names the file and the setting. Every run records the fully resolved settings
in MLflow, so a result can always be traced to what produced it.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, field, fields, replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Strict, ValidationError
from pydantic.dataclasses import dataclass

from harness.names import BadName, InputError, check_name, load_yaml, short

DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"
SCHEDULERS: tuple[str, ...] = ("auto", "asha", "none")
REFIT_MODES: tuple[str, ...] = ("auto", "always", "never")
MAX_TRIALS = 1000  # configurations per (method, dataset): each is fitted on every fold; more is a typo, not a plan
MAX_SEED = 2**32 - 1  # numpy's SeedSequence and Ray Tune take seeds in [0, 2**32)


class SettingsError(ValueError):
    """A setting with an invalid value; the message names the setting and what is allowed."""


# YAML gives 1 for true and "3" for 3 easily; those are mistakes, not values to coerce.
StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]
StrictFloat = Annotated[float, Strict()]
FINETUNE_MODALITIES: tuple[str, ...] = ("text", "audio", "video")  # video: face-embed only (docs/methods.md)
PER_MODALITY_OPTIONS = ("epochs", "patience", "lr", "batch_size", "max_seconds", "weight_decay", "select_by")


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class FinetuneOptions:
    """Stage 1 of a two-stage run (`finetune: true`): how each fold's encoders are fine-tuned before fusion.

    epochs / patience: training epochs per fold, and epochs without validation gain before stopping.
    select_by:         what "gain" means, as in feature-mode training: uar | accuracy | loss (the shared rule of
                       `methods.neural.early_stopping`; Babaali §3.2 keeps the best epoch by validation accuracy).
    lr / batch_size:   AdamW learning rate and clips per step (the papers' scale: 2e-5, 8).
    context_turns:     previous utterances of the same dialogue given to the text encoder (0: the utterance alone).
    max_seconds:       audio crop per training clip (memory: attention is quadratic in the frames).
    modalities:        which modalities to fine-tune (None: those the planned methods read, where trainable).
    weight_decay:      AdamW weight decay (0.01: torch's default, and Babaali §3.2's for every modality).
    per_modality:      modality -> {option: value} overriding the options above for that modality's encoder
                       (`--finetune-option text.lr=2e-5`), so papers with one setting per encoder (Babaali §3.2:
                       BERT lr 2e-5 / 20 epochs / batch 32, wav2vec2 3e-5 / 15 / 8) can be expressed.
    Part of the fine-tuned features' key, so changing one never reuses features trained another way.
    """

    epochs: StrictInt = 3
    patience: StrictInt = 2
    lr: float = 2e-5
    batch_size: StrictInt = 8
    context_turns: StrictInt = 0
    max_seconds: float = 8.0
    modalities: tuple[str, ...] | None = None
    weight_decay: float = 0.01
    per_modality: dict[str, dict[str, Any]] = field(default_factory=dict)
    select_by: str = "uar"

    def for_modality(self, modality: str) -> FinetuneOptions:
        """These options with `per_modality[modality]` applied (no nested overrides left)."""
        return replace(self, **self.per_modality.get(modality, {}), per_modality={})

    def __post_init__(self) -> None:
        for modality, overrides in self.per_modality.items():
            if modality not in FINETUNE_MODALITIES:
                raise SettingsError(f"finetune_options.per_modality: {modality!r} cannot be fine-tuned; choose "
                                    f"from {list(FINETUNE_MODALITIES)}")
            bad = sorted(set(overrides) - set(PER_MODALITY_OPTIONS))
            if bad:
                raise SettingsError(f"finetune_options.{modality}: unknown options {bad}; per-modality options "
                                    f"are {list(PER_MODALITY_OPTIONS)}")
            try:  # the shared options' checks, on this modality's values
                FinetuneOptions(**{**{k: getattr(self, k) for k in PER_MODALITY_OPTIONS}, **overrides})
            except ValidationError as error:
                problem = str(error.errors()[0].get("msg", error)).removeprefix("Value error, ")
                raise SettingsError(problem.replace("finetune_options.", f"finetune_options.{modality}.")) from None
        for name in ("epochs", "patience", "batch_size"):
            if getattr(self, name) < 1:
                raise SettingsError(f"finetune_options.{name} must be >= 1, got {getattr(self, name)}")
        if self.context_turns < 0:
            raise SettingsError(f"finetune_options.context_turns must be >= 0, got {self.context_turns}")
        if not 0 < self.lr < 1:
            raise SettingsError(f"finetune_options.lr must be in (0, 1), got {self.lr}")
        if not math.isfinite(self.max_seconds) or self.max_seconds <= 0:
            raise SettingsError(f"finetune_options.max_seconds must be > 0, got {self.max_seconds}")
        if not 0 <= self.weight_decay < 1:
            raise SettingsError(f"finetune_options.weight_decay must be in [0, 1), got {self.weight_decay}")
        from methods.neural.early_stopping import SELECT_BY

        if self.select_by not in SELECT_BY:
            raise SettingsError(f"finetune_options.select_by must be one of {list(SELECT_BY)}, got "
                                f"{self.select_by!r}")
        unknown = sorted(set(self.modalities or ()) - set(FINETUNE_MODALITIES))
        if unknown:
            raise SettingsError(f"finetune_options.modalities: {unknown} cannot be fine-tuned; "
                                f"choose from {list(FINETUNE_MODALITIES)}")


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Settings:
    """Where things live and how much work a run does.

    data_root:     corpora are looked for under `<data_root>/<dataset>` unless `data_dirs` names another place.
    workspace:     manifests, folds and the feature store (reusable caches; safe to delete).
    tracking_uri:  MLflow backend store; the default is a SQLite file in the working directory.
    reports_dir:   where `harness report` writes the leaderboard and figures.
    trials:        hyperparameter configurations sampled per (method, dataset) by Ray Tune.
    features:      modality -> extractor name, overriding the dataset cards' defaults.
    extractor_config: extractor name -> its options (e.g. {"wav2vec2": {"layer": 6}}), part of the cache key.
    methods / datasets: what `harness run` runs when the command line names none.
    scheduler:     Tune scheduler for the search: "auto" (ASHA for searches with neural units, none otherwise),
                   "asha" or "none".
    time_budget_s: wall-clock limit of the whole search phase of one run (None: no limit).
    gpus_per_trial: GPU share of one neural unit when the cluster has GPUs (classical units never take one).
    refit:         "auto" (refit the chosen configuration on train+validation for methods without early stopping),
                   "always" (neural methods too, for the selected number of epochs) or "never".
    tune_storage:  where Tune keeps trial state and checkpoints (a path or pyarrow URI every node can reach).
    preset:        "default" (tune each method's search space), "paper" (each method's paper preset, where it
                   has one, with the paper's hyperparameters fixed) or another named preset (e.g. "sse-ft").
    protocols:     dataset -> name of one of its card's alternative protocols (default: the card's main one).
    targets:       dataset -> name of one of its card's alternative label sets or subsets (`targets:` in the card,
                   e.g. RAVDESS `song`, CREMA-D `high-intensity`); results are then reported as `<dataset>@<name>`.
    train_missing_rate: modality dropout in training, for the methods that accept it (neural methods, classical
                   early fusion): that share of training clips loses one modality (0: off).
    max_epochs:    a cap on every neural method's epochs, presets included (None: each method's own). For CPU smoke
                   runs of paper presets; recorded in the evaluation setting, so a capped run never poses as the
                   paper's.
    finetune:      two-stage run: fine-tune each fold's unimodal encoders on its training part first (stage 1),
                   then search the fusion on those per-fold features (stage 2); see harness.finetune.
    finetune_options: how stage 1 trains (`FinetuneOptions`); recorded in the features' key.
    """

    data_root: Path = Path("datasets")
    workspace: Path = Path(".harness")
    tracking_uri: str = DEFAULT_TRACKING_URI
    reports_dir: Path = Path("reports")
    feature_store: str | None = None
    experiment: str = "mer-benchmark"
    seed: StrictInt = 0
    trials: StrictInt = 4
    num_cpus: StrictInt | None = None
    ray_address: str | None = None
    speaker_norm: StrictBool = False
    data_dirs: dict[str, Path] = field(default_factory=dict)
    features: dict[str, str] = field(default_factory=dict)
    extractor_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    methods: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    scheduler: str = "auto"
    time_budget_s: StrictFloat | None = None
    gpus_per_trial: StrictFloat = 0.25
    refit: str = "auto"
    tune_storage: str | None = None
    preset: str = "default"
    protocols: dict[str, str] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)
    train_missing_rate: StrictFloat = 0.0
    max_epochs: StrictInt | None = None
    finetune: StrictBool = False
    finetune_options: FinetuneOptions = field(default_factory=FinetuneOptions)

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise SettingsError(f"trials must be >= 1, got {self.trials}")
        if self.trials > MAX_TRIALS:
            raise SettingsError(f"trials must be <= {MAX_TRIALS} (each is fitted on every fold), got {self.trials}")
        if not 0 <= self.seed <= MAX_SEED:
            raise SettingsError(f"seed must be in [0, {MAX_SEED}], got {self.seed}")
        try:  # the experiment name is an MLflow name, a lease file name and report text: the one name rule
            check_name("experiment", self.experiment)
            for kind, chosen in (("protocols", self.protocols), ("targets", self.targets)):
                for dataset, name in chosen.items():
                    check_name(f"{kind}.{dataset}:", name)
        except BadName as error:
            raise SettingsError(str(error)) from None
        if self.max_epochs is not None and self.max_epochs < 1:
            raise SettingsError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.num_cpus is not None and self.num_cpus < 1:
            raise SettingsError(f"num_cpus must be >= 1, got {self.num_cpus}")
        if self.scheduler not in SCHEDULERS:
            raise SettingsError(f"scheduler must be one of {SCHEDULERS}, got {short(self.scheduler)}")
        if self.refit not in REFIT_MODES:
            raise SettingsError(f"refit must be one of {REFIT_MODES}, got {short(self.refit)}")
        if not 0 < self.gpus_per_trial <= 8:
            raise SettingsError(f"gpus_per_trial must be in (0, 8], got {self.gpus_per_trial}")
        if not 0.0 <= self.train_missing_rate < 1.0:
            raise SettingsError(f"train_missing_rate must be in [0, 1), got {self.train_missing_rate}")
        if self.time_budget_s is not None and not (math.isfinite(self.time_budget_s) and self.time_budget_s > 0):
            raise SettingsError(f"time_budget_s must be a finite number of seconds > 0, got {self.time_budget_s}")
        for modality in self.features:
            if modality not in ("audio", "video", "text"):
                raise SettingsError(f"features: unknown modality {short(modality)}; use audio, video or text")
        for name, options in self.extractor_config.items():
            if not isinstance(options, dict):
                raise SettingsError(f"extractor_config.{name} must be a mapping of option: value, got {short(options)}")

    @classmethod
    def coerce(cls, values: dict[str, Any], source: str) -> dict[str, Any]:
        """Settings fields from plain data (a YAML file), validated: errors name `source` and the setting."""
        checked = cls.validated(values, source)
        return {name: getattr(checked, name) for name in values}

    @classmethod
    def validated(cls, values: dict[str, Any], source: str | None = None) -> Settings:
        """`Settings(**values)`, with pydantic's report turned into one SettingsError line naming `source`."""
        try:
            return cls(**values)
        except ValidationError as report:
            raise SettingsError(_explain(report, values, source)) from None

    @classmethod
    def from_file(cls, path: Path) -> dict[str, Any]:
        """The settings a YAML file sets (validated, not yet merged): see `settings.example.yaml`."""
        try:
            values = load_yaml(path, "settings file") or {}
        except FileNotFoundError:
            raise SettingsError(f"settings file {path} does not exist") from None
        except IsADirectoryError:
            raise SettingsError(f"settings file {path} is a directory; give a YAML file") from None
        except InputError as error:  # too large, not UTF-8, YAML aliases or not YAML
            raise SettingsError(str(error)) from None
        if not isinstance(values, dict):
            raise SettingsError(f"settings file {path} must hold a mapping of setting: value")
        return cls.coerce(values, str(path))

    @classmethod
    def from_env(cls, file: Path | None = None, **overrides: Any) -> Settings:
        """Defaults, overridden by a settings file, then HARNESS_* / MLFLOW_TRACKING_URI variables, then
        `overrides` (command-line flags; None means "not given"). Dict settings merge key by key."""
        from_file = cls.from_file(file) if file is not None else {}
        env: dict[str, Any] = {}
        if "HARNESS_DATA_ROOT" in os.environ:
            env["data_root"] = Path(os.environ["HARNESS_DATA_ROOT"])
        if "HARNESS_WORKSPACE" in os.environ:
            env["workspace"] = Path(os.environ["HARNESS_WORKSPACE"])
        if "HARNESS_FEATURE_STORE" in os.environ:
            env["feature_store"] = os.environ["HARNESS_FEATURE_STORE"]
        if "MLFLOW_TRACKING_URI" in os.environ:
            env["tracking_uri"] = os.environ["MLFLOW_TRACKING_URI"]
        if "RAY_ADDRESS" in os.environ:
            env["ray_address"] = os.environ["RAY_ADDRESS"]
        data_dirs = {
            key[len("HARNESS_DATA_"):].lower().replace("_", "-"): Path(value)
            for key, value in os.environ.items()
            if key.startswith("HARNESS_DATA_") and key != "HARNESS_DATA_ROOT"
        }
        if data_dirs:
            env["data_dirs"] = data_dirs
        layers = [from_file, env, {k: v for k, v in overrides.items() if v is not None}]
        # finetune options merge option by option, like a dict setting (a flag adds to the file's options)
        layers = [{k: asdict(v) if isinstance(v, FinetuneOptions) else v for k, v in layer.items()}
                  for layer in layers]
        merged: dict[str, Any] = {}
        for layer in layers:
            for key, value in layer.items():
                merged[key] = {**merged[key], **value} if isinstance(value, dict) and key in merged else value
        if "extractor_config" in merged:  # options merge per extractor too: a flag adds to the file's options
            merged["extractor_config"] = _merge_options([layer.get("extractor_config", {}) for layer in layers])
        return cls.validated(merged)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def data_dir(self, dataset: str) -> Path:
        return self.data_dirs.get(dataset, self.data_root / dataset)

    def manifest_dir(self, dataset: str) -> Path:
        return self.workspace / "manifests" / dataset

    def tune_storage_uri(self) -> str:
        return self.tune_storage or str((self.workspace / "tune").resolve())

    def feature_store_uri(self) -> str:
        return self.feature_store or str(self.workspace / "features")

    def as_record(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def parse_option(item: str, flag: str) -> tuple[str, str, Any]:
    """`[PREFIX.]KEY=VALUE` -> (prefix, key, value); the value is JSON when it parses (6, 0.5, true), else a string."""
    import json

    target, sep, raw = item.partition("=")
    prefix, _, key = target.rpartition(".")
    if not sep or not key:
        raise SettingsError(f"{flag} expects [NAME.]KEY=VALUE, got {short(item)}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return prefix, key, value


def _merge_options(layers: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for name, options in layer.items():
            merged[name] = {**merged.get(name, {}), **options}
    return merged


def _explain(report: ValidationError, values: dict[str, Any], source: str | None) -> str:
    """The first problem pydantic found, as `source: setting should be TYPE, got VALUE` (or the check's own words)."""
    prefix = f"{source}: " if source else ""
    nested = [e for e in report.errors() if len(e["loc"]) > 1 and e["loc"][0] == "finetune_options"]
    if nested:  # a problem inside finetune_options: name the option, not only the setting
        error, valid = nested[0], sorted(f.name for f in fields(FinetuneOptions))
        option = ".".join(str(part) for part in error["loc"][1:])
        if error["type"] == "unexpected_keyword_argument":
            return f"{prefix}finetune_options: unknown option {short(option)}; valid: {valid}"
        return f"{prefix}finetune_options.{option}: {error['msg']}, got {short(error.get('input'))}"
    unknown = sorted(str(e["loc"][0]) for e in report.errors() if e["type"] == "unexpected_keyword_argument")
    if unknown:
        return f"{prefix}unknown setting(s) {unknown}; valid: {sorted(f.name for f in fields(Settings))}"
    error = report.errors()[0]
    if error["type"] == "value_error":  # a check in __post_init__: its message already names the setting
        return prefix + str(error["msg"]).removeprefix("Value error, ")
    name = str(error["loc"][0]) if error["loc"] else "?"
    kinds = {f.name: str(f.type) for f in fields(Settings)}
    kind = re.sub(r"(?:Strict(Int|Bool|Float))", lambda m: m.group(1).lower(), kinds.get(name, "?"))
    return f"{prefix}{name} should be {kind}, got {short(values.get(name, error.get('input')))}"

"""Run settings as validated data: defaults, then a settings file, then environment variables, then flags.

Every run records the fully resolved settings in MLflow, so a result can always be traced to what produced it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"
SCHEDULERS: tuple[str, ...] = ("auto", "asha", "none")
REFIT_MODES: tuple[str, ...] = ("auto", "always", "never")


class SettingsError(ValueError):
    """A setting with an invalid value; the message names the setting and what is allowed."""


@dataclass(frozen=True)
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
    preset:        "default" (tune each method's search space) or "paper" (each method's paper preset, where it
                   has one, with the paper's hyperparameters fixed).
    protocols:     dataset -> name of one of its card's alternative protocols (default: the card's main one).
    """

    data_root: Path = Path("datasets")
    workspace: Path = Path(".harness")
    tracking_uri: str = DEFAULT_TRACKING_URI
    reports_dir: Path = Path("reports")
    feature_store: str | None = None
    experiment: str = "mer-benchmark"
    seed: int = 0
    trials: int = 4
    num_cpus: int | None = None
    ray_address: str | None = None
    speaker_norm: bool = False
    data_dirs: dict[str, Path] = field(default_factory=dict)
    features: dict[str, str] = field(default_factory=dict)
    extractor_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    methods: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    scheduler: str = "auto"
    time_budget_s: float | None = None
    gpus_per_trial: float = 0.25
    refit: str = "auto"
    tune_storage: str | None = None
    preset: str = "default"
    protocols: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise SettingsError(f"trials must be >= 1, got {self.trials}")
        if self.num_cpus is not None and self.num_cpus < 1:
            raise SettingsError(f"num_cpus must be >= 1, got {self.num_cpus}")
        if self.scheduler not in SCHEDULERS:
            raise SettingsError(f"scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        if self.refit not in REFIT_MODES:
            raise SettingsError(f"refit must be one of {REFIT_MODES}, got {self.refit!r}")
        if not 0 < self.gpus_per_trial <= 8:
            raise SettingsError(f"gpus_per_trial must be in (0, 8], got {self.gpus_per_trial}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise SettingsError(f"time_budget_s must be > 0, got {self.time_budget_s}")
        for modality in self.features:
            if modality not in ("audio", "video", "text"):
                raise SettingsError(f"features: unknown modality {modality!r}; use audio, video or text")
        for name, options in self.extractor_config.items():
            if not isinstance(options, dict):
                raise SettingsError(f"extractor_config.{name} must be a mapping of option: value, got {options!r}")

    @classmethod
    def coerce(cls, values: dict[str, Any], source: str) -> dict[str, Any]:
        """Settings fields from plain data (a YAML file): unknown keys and wrong types are errors naming `source`."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise SettingsError(f"{source}: unknown setting(s) {unknown}; valid: {sorted(known)}")
        out: dict[str, Any] = {}
        for name, value in values.items():
            kind = str(known[name].type)
            try:
                out[name] = _coerce(kind, value)
            except (TypeError, ValueError):
                raise SettingsError(f"{source}: {name} should be {kind}, got {value!r}") from None
        return out

    @classmethod
    def from_file(cls, path: Path) -> dict[str, Any]:
        """The settings a YAML file sets (validated, not yet merged): see `settings.example.yaml`."""
        import yaml

        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise SettingsError(f"settings file {path} does not exist") from None
        except yaml.YAMLError as error:
            raise SettingsError(f"settings file {path} is not valid YAML: {error}") from None
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
        merged: dict[str, Any] = {}
        for layer in layers:
            for key, value in layer.items():
                merged[key] = {**merged[key], **value} if isinstance(value, dict) and key in merged else value
        if "extractor_config" in merged:  # options merge per extractor too: a flag adds to the file's options
            merged["extractor_config"] = _merge_options([layer.get("extractor_config", {}) for layer in layers])
        return cls(**merged)

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
        raise SettingsError(f"{flag} expects [NAME.]KEY=VALUE, got {item!r}")
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


def _coerce(kind: str, value: Any) -> Any:
    """One settings value from YAML data, by the field's annotation (a string: annotations are postponed)."""
    if kind.startswith("Path"):
        if not isinstance(value, str):
            raise TypeError
        return Path(value)
    if kind.startswith("dict[str, Path]"):
        return {str(k): _coerce("Path", v) for k, v in _mapping(value).items()}
    if kind.startswith("dict[str, str]"):
        return {str(k): _string(v) for k, v in _mapping(value).items()}
    if kind.startswith("dict[str, dict"):
        return {str(k): dict(_mapping(v)) for k, v in _mapping(value).items()}
    if kind.startswith("tuple[str"):
        if isinstance(value, str) or not isinstance(value, list):
            raise TypeError
        return tuple(_string(v) for v in value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise TypeError
        return value
    if kind.startswith("float"):
        if value is None and "None" in kind:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError
        return float(value)
    if kind.startswith("int"):
        if value is None and "None" in kind:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError
        return value
    if value is None and "None" in kind:
        return None
    return _string(value)


def _mapping(value: Any) -> dict:
    if not isinstance(value, dict):
        raise TypeError
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value

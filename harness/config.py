"""Run settings as validated data: defaults, then environment variables, then command-line flags.

Every run records the fully resolved settings in MLflow, so a result can always be traced to what produced it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"


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
    seeds:         training seeds per fold for the chosen configuration (results report mean and spread).
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

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise SettingsError(f"trials must be >= 1, got {self.trials}")
        if self.num_cpus is not None and self.num_cpus < 1:
            raise SettingsError(f"num_cpus must be >= 1, got {self.num_cpus}")
        for modality in self.features:
            if modality not in ("audio", "video", "text"):
                raise SettingsError(f"features: unknown modality {modality!r}; use audio, video or text")

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Defaults, overridden by HARNESS_* / MLFLOW_TRACKING_URI variables, overridden by `overrides`."""
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
        merged = {**env, **{k: v for k, v in overrides.items() if v is not None}}
        if "data_dirs" in env and overrides.get("data_dirs"):
            merged["data_dirs"] = {**env["data_dirs"], **overrides["data_dirs"]}
        return cls(**merged)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def data_dir(self, dataset: str) -> Path:
        return self.data_dirs.get(dataset, self.data_root / dataset)

    def manifest_dir(self, dataset: str) -> Path:
        return self.workspace / "manifests" / dataset

    def feature_store_uri(self) -> str:
        return self.feature_store or str(self.workspace / "features")

    def as_record(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}

"""The estimator API that every fusion method implements (modelled on scikit-learn's).

A method is a class whose hyperparameters are keyword arguments of `__init__`, with
`fit(train, val) -> self` and `predict_proba(data) -> [N, C]`. Class attributes declare what it consumes, so
the harness can load only the features it needs and build a fair search around it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from methods.data import MultimodalData

InputKind = Literal["pooled", "sequence"]


@dataclass(frozen=True)
class Param:
    """One dimension of a search space, independent of any tuning library.

    kind: "choice" (values), "uniform" / "loguniform" (low, high), "int" (low, high inclusive).
    """

    kind: Literal["choice", "uniform", "loguniform", "int"]
    values: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0

    @staticmethod
    def choice(*values: Any) -> Param:
        return Param("choice", values=tuple(values))

    @staticmethod
    def loguniform(low: float, high: float) -> Param:
        return Param("loguniform", low=low, high=high)

    @staticmethod
    def uniform(low: float, high: float) -> Param:
        return Param("uniform", low=low, high=high)

    @staticmethod
    def integer(low: int, high: int) -> Param:
        return Param("int", low=low, high=high)

    def sample(self, rng: np.random.Generator) -> Any:
        """Draw one value (used when no tuning library is involved, e.g. in notebooks)."""
        if self.kind == "choice":
            return self.values[int(rng.integers(len(self.values)))]
        if self.kind == "uniform":
            return float(rng.uniform(self.low, self.high))
        if self.kind == "loguniform":
            return float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        return int(rng.integers(int(self.low), int(self.high) + 1))


class UnknownParameterError(TypeError):
    """A hyperparameter the method does not declare (a misspelling would otherwise pass silently)."""


class FusionMethod:
    """Base class: subclasses set the class attributes and implement `fit` and `predict_proba`.

    modalities: the modalities the method reads; () means "whatever the data offers" (resolved per dataset).
    input_kind: "pooled" vectors [D] per clip, or "sequence" arrays [T, D] per clip.
    family:     a short label for the report ("classical", "neural", "unimodal", ...).
    defaults:   every hyperparameter the method accepts, with its default. The base class rejects any other
                keyword (as scikit-learn's `set_params` does) and fills in the rest, so `get_params()` is the
                full configuration a run logs, defaults included. A class whose accepted keys depend on a choice
                (the classical methods' classifier) overrides `declared_defaults`.
    trains_by_epoch: True when `fit` trains epoch by epoch, calls `epoch_callback(epoch, {"val_uar", ...})` after
                each and stops early on its validation part: the harness then lets its scheduler stop a bad
                configuration between epochs, and `refit=auto` does not refit it (its fit uses the validation part).
    context_params: what the harness passes besides the hyperparameters: "seed" (the run's seed) and
                "polarity" (the dataset card's class -> positive/negative/neutral map). Only the names a method
                lists here reach it, so its logged parameters are the ones it uses; each must be in its defaults.
    """

    modalities: ClassVar[tuple[str, ...]] = ()
    input_kind: ClassVar[InputKind] = "pooled"
    trains_by_epoch: ClassVar[bool] = False
    family: ClassVar[str] = "other"
    defaults: ClassVar[dict[str, Any]] = {"seed": 0}
    context_params: ClassVar[frozenset[str]] = frozenset({"seed"})

    def __init__(self, **params: Any) -> None:
        allowed = self.declared_defaults(params)
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise UnknownParameterError(f"{type(self).__name__}: unknown hyperparameters {unknown}; "
                                        f"valid: {sorted(allowed)}")
        self.params = {**allowed, **params}

    @classmethod
    def declared_defaults(cls, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every accepted hyperparameter with its default. `params` (what a caller passes) lets a class whose
        accepted keys depend on one of them (e.g. `classifier`) answer for that choice."""
        return dict(cls.defaults)

    @classmethod
    def search_space(cls) -> dict[str, Param]:
        """Hyperparameters worth tuning and their ranges; empty means 'defaults only'."""
        return {}

    def get_params(self) -> dict[str, Any]:
        """The full configuration (defaults filled in): `type(m)(**m.get_params())` builds the same method."""
        return dict(self.params)

    def fit(self, train: MultimodalData, val: MultimodalData | None = None) -> FusionMethod:
        raise NotImplementedError

    def predict_proba(self, data: MultimodalData) -> np.ndarray:
        raise NotImplementedError

    def predict(self, data: MultimodalData) -> np.ndarray:
        return np.argmax(self.predict_proba(data), axis=1)

    def fit_notes(self) -> dict[str, float]:
        """Counts worth logging from the last fit (clips dropped or imputed for a missing modality, epochs...)."""
        return dict(getattr(self, "notes_", {}))

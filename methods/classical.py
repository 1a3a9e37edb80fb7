"""The classical family (the fourth seed paper): early and late fusion of pooled vectors, and unimodal baselines.

early fusion  per-modality vectors are standardised and combined by concatenation, or projected per fold
              (PCA fitted on the training part) to a common size and summed or multiplied element-wise; then one
              classifier.
late fusion   one classifier per modality; class probabilities averaged, or stacked (a logistic regression on
              out-of-fold training probabilities).
unimodal      one modality alone: the baselines that show what fusion adds.

Missing modalities are handled explicitly and counted in `notes_`: early fusion imputes the training mean of the
absent modality (the neutral element, 1, for the product); late fusion averages only the modalities a clip has;
a unimodal model predicts the training class prior for a clip without its modality.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from methods import MethodSpec, register
from methods.base import FusionMethod, Param
from methods.classifiers import CLASS_WEIGHT_SPACE, CLASSIFIERS, DEFAULTS, SEARCH_SPACES, ScaledClassifier
from methods.data import MultimodalData

EARLY_MODES: tuple[str, ...] = ("concat", "sum", "product")
LATE_MODES: tuple[str, ...] = ("average", "stack")
MODALITIES: tuple[str, ...] = ("audio", "video", "text")


def _fusion_modalities(method: FusionMethod, data: MultimodalData) -> list[str]:
    wanted = method.params["modalities"] or data.modalities
    missing = [m for m in wanted if m not in data.pooled]
    if missing:
        raise ValueError(f"{type(method).__name__}: data lacks pooled features for {missing}")
    return list(wanted)


class ClassicalBase(FusionMethod):
    """The base of every method whose model is one of `methods.classifiers` (here, and the Babaali rules in
    `methods.babaali`): the accepted hyperparameters are the class's own `defaults` plus those of the chosen
    classifier (`methods.classifiers.DEFAULTS`), so `C` is valid for an SVM and an error for XGBoost."""

    input_kind: ClassVar[str] = "pooled"
    family: ClassVar[str] = "classical"
    defaults: ClassVar[dict[str, Any]] = {"classifier": "svm", "seed": 0}

    @classmethod
    def declared_defaults(cls, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        classifier = (params or {}).get("classifier", cls.defaults["classifier"])
        if classifier not in CLASSIFIERS:
            raise ValueError(f"{cls.__name__}: unknown classifier {classifier!r}; choose from {CLASSIFIERS}")
        return {**cls.defaults, **DEFAULTS[classifier]}

    def _classifier(self, n_classes: int) -> ScaledClassifier:
        kind = self.params["classifier"]
        hyper = {k: self.params[k] for k in DEFAULTS[kind]}
        return ScaledClassifier(kind, n_classes, seed=int(self.params["seed"]), **hyper)

    @staticmethod
    def _solver_notes(models: list[ScaledClassifier]) -> dict[str, float]:
        """`svm_holdout`: 1 when an SVM of this fit used the scalable solver (above
        `classifiers.SVM_EXACT_MAX_SAMPLES` training clips: one fit + held-out Platt calibration), 0 when every
        SVM was the exact 5-fold-calibrated one. Notes reach MLflow per fold (the trial's folds.json), so the solver
        behind each score is on record. Nothing for XGBoost or the MLP."""
        solvers = [m.solver_ for m in models if getattr(m, "solver_", None)]
        return {"svm_holdout": float(any(s != "svc" for s in solvers))} if solvers else {}


class EarlyFusion(ClassicalBase):
    """Combine standardised modality vectors into one, then classify.

    mode: concat | sum | product; projection: the common PCA size for sum and product (unused by concat);
    modalities: restrict to these (None: every modality the data offers);
    train_missing_rate: modality dropout for training: that share of the training clips (seeded) has one of its
    modalities imputed exactly as a missing one is at test time, so the classifier learns the imputed pattern.
    """

    defaults: ClassVar[dict[str, Any]] = {**ClassicalBase.defaults, "mode": "concat", "projection": 32,
                                          "modalities": None, "train_missing_rate": 0.0}

    def fit(self, train: MultimodalData, val: MultimodalData | None = None) -> EarlyFusion:
        self.modalities_ = _fusion_modalities(self, train)
        mode = self.params["mode"]
        if mode not in EARLY_MODES:
            raise ValueError(f"early fusion mode {mode!r}; choose from {EARLY_MODES}")
        from sklearn.decomposition import PCA
        from sklearn.preprocessing import StandardScaler

        self.scalers_, self.projections_ = {}, {}
        usable = np.ones(len(train), dtype=bool)
        for m in self.modalities_:
            usable &= train.available[m]
        if usable.sum() < 2:
            raise ValueError("early fusion needs at least 2 training clips with every modality")
        dims = [train.pooled[m].shape[1] for m in self.modalities_]
        size = min([int(self.params["projection"]), *dims, int(usable.sum()) - 1])
        for m in self.modalities_:
            rows = train.pooled[m][train.available[m]]
            self.scalers_[m] = StandardScaler().fit(rows)
            if mode != "concat":
                self.projections_[m] = PCA(n_components=size, random_state=0).fit(self.scalers_[m].transform(rows))
        self.notes_ = {"train_clips_imputed": float((~usable).sum())}
        self.model_ = self._classifier(train.n_classes).fit(self._combine(self._dropped(train)), train.labels)
        self.notes_.update(self._solver_notes([self.model_]))
        return self

    def _dropped(self, train: MultimodalData) -> MultimodalData:
        """`train` with one modality marked unavailable in a `train_missing_rate` share of its clips (seeded; a
        clip keeps at least one modality), so `_combine` imputes it as it would a missing one at test time."""
        rate = float(self.params["train_missing_rate"])
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"train_missing_rate must be in [0, 1], got {rate}")
        if rate == 0.0 or len(self.modalities_) < 2:
            return train
        rng = np.random.default_rng([int(self.params["seed"]), 7919])
        hit = rng.random(len(train)) < rate
        which = rng.integers(len(self.modalities_), size=len(train))
        available = dict(train.available)
        for k, m in enumerate(self.modalities_):
            others = np.stack([train.available[o] for o in self.modalities_ if o != m], axis=1).any(axis=1)
            available[m] = train.available[m] & ~(hit & (which == k) & others)
        self.notes_["train_clips_dropped"] = float(sum((~available[m]).sum() - (~train.available[m]).sum()
                                                       for m in self.modalities_))
        return MultimodalData(ids=list(train.ids), classes=list(train.classes), pooled=train.pooled,
                              sequences=train.sequences, available=available, labels=train.labels,
                              groups=dict(train.groups))

    def _combine(self, data: MultimodalData) -> np.ndarray:
        mode = self.params["mode"]
        parts = []
        for m in self.modalities_:
            x = self.scalers_[m].transform(data.pooled[m])
            if mode != "concat":
                x = self.projections_[m].transform(x)
            fill = 1.0 if mode == "product" else 0.0  # the neutral element; 0 = training mean after scaling
            x[~data.available[m]] = fill
            parts.append(x)
        if mode == "concat":
            return np.concatenate(parts, axis=1)
        return np.sum(parts, axis=0) if mode == "sum" else np.prod(parts, axis=0)

    def predict_proba(self, data: MultimodalData) -> np.ndarray:
        return self.model_.predict_proba(self._combine(data))


class LateFusion(ClassicalBase):
    """One classifier per modality; probabilities averaged or stacked.

    mode: average | stack; modalities: restrict to these (None: every modality the data offers).
    """

    defaults: ClassVar[dict[str, Any]] = {**ClassicalBase.defaults, "mode": "average", "modalities": None}

    def fit(self, train: MultimodalData, val: MultimodalData | None = None) -> LateFusion:
        self.modalities_ = _fusion_modalities(self, train)
        mode = self.params["mode"]
        if mode not in LATE_MODES:
            raise ValueError(f"late fusion mode {mode!r}; choose from {LATE_MODES}")
        self.models_ = {}
        for m in self.modalities_:
            rows = train.available[m]
            self.models_[m] = self._classifier(train.n_classes).fit(train.pooled[m][rows], train.labels[rows])
        self.notes_ = {f"train_clips_without_{m}": float((~train.available[m]).sum()) for m in self.modalities_}
        self.notes_.update(self._solver_notes(list(self.models_.values())))
        if mode == "stack":
            self._fit_stacker(train)
        return self

    def _fit_stacker(self, train: MultimodalData) -> None:
        """Meta-classifier on out-of-fold probabilities, so it never sees probabilities of memorised clips."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold

        n_splits = int(min(3, np.bincount(train.labels).min()))
        if n_splits < 2:
            raise ValueError("stacking needs at least 2 training clips per class")
        out_of_fold = np.zeros((len(train), train.n_classes * len(self.modalities_)))
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=0)
        for fit_index, held_index in splitter.split(np.zeros(len(train)), train.labels):
            fit_part, held_part = train.subset(fit_index), train.subset(held_index)
            stage = LateFusion(**{**self.params, "mode": "average"}).fit(fit_part)
            out_of_fold[held_index] = stage._stacked_inputs(held_part)
        self.stacker_ = LogisticRegression(max_iter=1000).fit(out_of_fold, train.labels)

    def _per_modality(self, data: MultimodalData) -> dict[str, np.ndarray]:
        uniform = np.full((len(data), data.n_classes), 1.0 / data.n_classes)
        probabilities = {}
        for m in self.modalities_:
            p = self.models_[m].predict_proba(data.pooled[m])
            p[~data.available[m]] = uniform[~data.available[m]]
            probabilities[m] = p
        return probabilities

    def _stacked_inputs(self, data: MultimodalData) -> np.ndarray:
        return np.concatenate(list(self._per_modality(data).values()), axis=1)

    def predict_proba(self, data: MultimodalData) -> np.ndarray:
        if self.params["mode"] == "stack":
            probabilities = np.zeros((len(data), data.n_classes))
            probabilities[:, self.stacker_.classes_] = self.stacker_.predict_proba(self._stacked_inputs(data))
            return probabilities
        per_modality = self._per_modality(data)
        available = np.stack([data.available[m] for m in self.modalities_], axis=1).astype(float)
        stacked = np.stack([per_modality[m] for m in self.modalities_], axis=1)
        counts = np.maximum(available.sum(axis=1, keepdims=True), 1.0)
        averaged = (stacked * available[:, :, None]).sum(axis=1) / counts
        no_modality = available.sum(axis=1) == 0
        averaged[no_modality] = 1.0 / data.n_classes
        return averaged


class Unimodal(ClassicalBase):
    """One modality, one classifier: the baseline each fusion method has to beat."""

    family: ClassVar[str] = "unimodal"
    defaults: ClassVar[dict[str, Any]] = {**ClassicalBase.defaults, "modality": None}

    def fit(self, train: MultimodalData, val: MultimodalData | None = None) -> Unimodal:
        m = self.params["modality"]
        if m not in MODALITIES:
            raise ValueError(f"Unimodal: modality must be one of {MODALITIES}, got {m!r}")
        rows = train.available[m]
        self.model_ = self._classifier(train.n_classes).fit(train.pooled[m][rows], train.labels[rows])
        self.prior_ = np.bincount(train.labels, minlength=train.n_classes) / len(train)
        self.notes_ = {"train_clips_without_modality": float((~rows).sum())}
        self.notes_.update(self._solver_notes([self.model_]))
        return self

    def predict_proba(self, data: MultimodalData) -> np.ndarray:
        m = self.params["modality"]
        probabilities = self.model_.predict_proba(data.pooled[m])
        probabilities[~data.available[m]] = self.prior_
        return probabilities


def _register_all() -> None:
    """Every method searches its classifier's hyperparameters and the class weighting (balanced or none), chosen
    on validation by the dataset's headline metric (UAR favours balanced, weighted-F1 on MELD does not)."""
    projection = {"projection": Param.choice(16, 32, 64)}
    spaces = {classifier: {**SEARCH_SPACES[classifier], **CLASS_WEIGHT_SPACE} for classifier in CLASSIFIERS}
    for classifier in CLASSIFIERS:
        for mode in EARLY_MODES:
            extra = projection if mode != "concat" else {}
            register(MethodSpec(
                name=f"early-{mode}-{classifier}", cls=EarlyFusion, space={**spaces[classifier], **extra},
                fixed={"mode": mode, "classifier": classifier},
                description=f"early fusion ({mode}) of pooled modality vectors + {classifier}"))
        for mode in LATE_MODES:
            register(MethodSpec(
                name=f"late-{mode}-{classifier}", cls=LateFusion, space=spaces[classifier],
                fixed={"mode": mode, "classifier": classifier},
                description=f"late fusion ({mode} of per-modality probabilities), {classifier} per modality"))
    for modality in MODALITIES:
        for classifier in CLASSIFIERS:
            register(MethodSpec(
                name=f"{modality}-{classifier}", cls=Unimodal, space=spaces[classifier],
                fixed={"modality": modality, "classifier": classifier}, modalities=(modality,),
                description=f"unimodal baseline: {modality} alone, {classifier}"))


_register_all()

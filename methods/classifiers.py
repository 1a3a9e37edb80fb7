"""The three classifiers of the classical family (SVM, XGBoost, 2-layer MLP), each behind a scaler.

Scaling is part of the pipeline, so it is fitted on the training part of each fold and nowhere else.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from methods.base import Param

CLASSIFIERS: tuple[str, ...] = ("svm", "xgboost", "mlp")

SEARCH_SPACES: dict[str, dict[str, Param]] = {
    "svm": {"C": Param.loguniform(0.1, 100.0), "kernel": Param.choice("rbf", "linear")},
    "xgboost": {"max_depth": Param.choice(2, 4), "learning_rate": Param.loguniform(0.05, 0.3),
                "n_estimators": Param.choice(50, 150)},
    "mlp": {"hidden": Param.choice(64, 128, 256), "alpha": Param.loguniform(1e-5, 1e-2)},
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "svm": {"C": 1.0, "kernel": "rbf"},
    "xgboost": {"max_depth": 4, "learning_rate": 0.1, "n_estimators": 100},
    "mlp": {"hidden": 128, "alpha": 1e-4},
}


def balanced_sample_weight(labels: np.ndarray) -> np.ndarray:
    """Weights inversely proportional to class frequency (mean 1), so rare emotions are not ignored."""
    classes, counts = np.unique(labels, return_counts=True)
    weight_of = dict(zip(classes, len(labels) / (len(classes) * counts), strict=True))
    return np.array([weight_of[y] for y in labels], dtype=float)


class ScaledClassifier:
    """StandardScaler + one classifier, with probabilities over all `n_classes` (even unseen ones)."""

    def __init__(self, kind: str, n_classes: int, seed: int = 0, balanced: bool = True, **params: Any) -> None:
        """`params` may hold other methods' options too; only this classifier's hyperparameters are kept."""
        if kind not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {kind!r}; choose from {CLASSIFIERS}")
        self.kind, self.n_classes, self.seed, self.balanced = kind, n_classes, seed, balanced
        self.params = {**DEFAULTS[kind], **{k: v for k, v in params.items() if k in DEFAULTS[kind]}}

    def _estimator(self, y: np.ndarray):
        p = self.params
        if self.kind == "svm":
            from sklearn.calibration import CalibratedClassifierCV
            from sklearn.svm import SVC

            # Platt-calibrated probabilities (late fusion averages them), as scikit-learn now recommends.
            folds = int(max(2, min(5, np.bincount(y).min())))
            return CalibratedClassifierCV(SVC(C=p["C"], kernel=p["kernel"], random_state=self.seed),
                                          cv=folds, ensemble=False)
        if self.kind == "xgboost":
            from xgboost import XGBClassifier

            return XGBClassifier(max_depth=int(p["max_depth"]), learning_rate=p["learning_rate"],
                                 n_estimators=int(p["n_estimators"]), n_jobs=1, tree_method="hist",
                                 random_state=self.seed, verbosity=0)
        from sklearn.neural_network import MLPClassifier

        hidden = int(p["hidden"])
        return MLPClassifier(hidden_layer_sizes=(hidden, hidden), alpha=p["alpha"], max_iter=400,
                             random_state=self.seed)

    def fit(self, x: np.ndarray, y: np.ndarray) -> ScaledClassifier:
        from sklearn.preprocessing import StandardScaler

        self.scaler_ = StandardScaler().fit(x)
        self.seen_ = np.unique(y)
        # Classifiers see labels re-indexed to 0..k-1 (XGBoost requires it); probabilities are mapped back.
        remap = {c: i for i, c in enumerate(self.seen_)}
        y_local = np.array([remap[c] for c in y])
        self.model_ = self._estimator(y_local)
        xs = self.scaler_.transform(x)
        if len(self.seen_) == 1:
            self.model_ = None
        elif self.balanced and self.kind in ("svm", "xgboost"):
            self.model_.fit(xs, y_local, sample_weight=balanced_sample_weight(y_local))
        else:
            self.model_.fit(xs, y_local)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        probabilities = np.zeros((len(x), self.n_classes))
        if self.model_ is None:
            probabilities[:, self.seen_[0]] = 1.0
            return probabilities
        probabilities[:, self.seen_] = self.model_.predict_proba(self.scaler_.transform(x))
        return probabilities

"""The three classifiers of the classical family (SVM, XGBoost, 2-layer MLP), each behind a scaler.

Scaling is part of the pipeline, so it is fitted on the training part of each fold and nowhere else.

The SVM has two ways to its probabilities, chosen by the size of the training set (`svm_solver`):
- up to `SVM_EXACT_MAX_SAMPLES` clips ("svc"), Platt-calibrated probabilities from 5-fold
  `CalibratedClassifierCV` around the kernel SVM (libsvm `SVC`): six kernel fits, each O(n^2) or worse. At 10k
  clips (MELD's training split) one trial took longer than 18 minutes of CPU.
- above it ("svc-holdout" for the RBF kernel, "linearsvc-holdout" for the linear one), one fit on a stratified
  80 % of the clips and the same sigmoid calibration fitted on the held-out 20 %: one kernel fit on 0.8 n
  instead of five on 0.8 n plus one on n, so about 6-9x less time, and the same model class (an RBF kernel
  approximation, Nystroem + linear SVM, was tried and lost 7 points of accuracy at 10k; benchmarks/
  svm_scaling.md). The linear kernel uses liblinear's `LinearSVC` (primal, linear in n), not libsvm.
Below the threshold nothing changes, so results on small corpora are those of the calibrated exact SVM.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from methods.base import Param

CLASSIFIERS: tuple[str, ...] = ("svm", "xgboost", "mlp")
SVM_EXACT_MAX_SAMPLES = 4000  # training clips; above this the SVM is fitted in the primal (see the module doc)
SVM_HOLDOUT = 0.2  # share of the clips that calibrate the probabilities above the threshold

SEARCH_SPACES: dict[str, dict[str, Param]] = {
    "svm": {"C": Param.loguniform(0.1, 100.0), "kernel": Param.choice("rbf", "linear")},
    "xgboost": {"max_depth": Param.choice(2, 4), "learning_rate": Param.loguniform(0.05, 0.3),
                "n_estimators": Param.choice(50, 150)},
    "mlp": {"hidden": Param.choice(64, 128, 256), "alpha": Param.loguniform(1e-5, 1e-2)},
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "svm": {"C": 1.0, "kernel": "rbf", "class_weight": "balanced"},
    "xgboost": {"max_depth": 4, "learning_rate": 0.1, "n_estimators": 100, "class_weight": "balanced"},
    "mlp": {"hidden": 128, "alpha": 1e-4, "class_weight": "none"},
}
CLASS_WEIGHTS: tuple[str, ...] = ("balanced", "none")
# Class weighting is a hyperparameter, searched with the others and chosen on validation by the dataset's headline
# metric: "balanced" (inverse class frequency) serves UAR, "none" serves accuracy and weighted-F1 on skewed corpora
# (MELD: half the clips are neutral; balanced weighting cost the SVM 0.09 weighted-F1, benchmarks/meld_text.md).
# The classical methods search it (methods.classical); the defaults above are what an unsearched fit gets.
CLASS_WEIGHT_SPACE: dict[str, Param] = {"class_weight": Param.choice(*CLASS_WEIGHTS)}


# libsvm's default is no iteration limit: on nearly duplicate rows with a large C (the built-in corpus's text
# vectors, a linear kernel, C = 14) it was seen to cycle for over 20 minutes on 96 clips. A bounded solve ends
# with scikit-learn's ConvergenceWarning and the best solution so far, and one unit can no longer stall a search.
SVC_MAX_ITER = 1_000_000


def svm_solver(n_samples: int, kernel: str) -> str:
    """Which SVM solver a training set of `n_samples` gets: "svc", "svc-holdout" or "linearsvc-holdout"."""
    if n_samples <= SVM_EXACT_MAX_SAMPLES:
        return "svc"
    return "linearsvc-holdout" if kernel == "linear" else "svc-holdout"


class HoldoutCalibrated:
    """One fit of `estimator` on a stratified (1 - holdout) share of the clips; sigmoid (Platt) calibration
    of its decision values on the held-out rest. Cheaper than k-fold calibration by the k refits."""

    def __init__(self, estimator: Any, holdout: float = SVM_HOLDOUT, seed: int = 0) -> None:
        self.estimator, self.holdout, self.seed = estimator, holdout, seed

    def fit(self, x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> HoldoutCalibrated:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.frozen import FrozenEstimator
        from sklearn.model_selection import train_test_split

        stratify = y if np.bincount(y).min() >= 2 else None
        fit_rows, calibration_rows = train_test_split(np.arange(len(y)), test_size=self.holdout, stratify=stratify,
                                                      random_state=self.seed)
        weights = {} if sample_weight is None else {"sample_weight": sample_weight[fit_rows]}
        self.estimator.fit(x[fit_rows], y[fit_rows], **weights)
        weights = {} if sample_weight is None else {"sample_weight": sample_weight[calibration_rows]}
        with warnings.catch_warnings():  # weights are meant for the calibration only: the estimator is fitted
            warnings.filterwarnings("ignore", message="Since FrozenEstimator does not appear to accept")
            self.calibrated_ = CalibratedClassifierCV(FrozenEstimator(self.estimator), method="sigmoid").fit(
                x[calibration_rows], y[calibration_rows], **weights)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.calibrated_.predict_proba(x)


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
        self.kind, self.n_classes, self.seed = kind, n_classes, seed
        self.params = {**DEFAULTS[kind], **{k: v for k, v in params.items() if k in DEFAULTS[kind]}}
        if self.params["class_weight"] not in CLASS_WEIGHTS:
            raise ValueError(f"class_weight {self.params['class_weight']!r}; choose from {CLASS_WEIGHTS}")
        self.balanced = balanced and self.params["class_weight"] == "balanced"

    def _estimator(self, y: np.ndarray):
        p = self.params
        if self.kind == "svm":
            return self._svm(y)
        if self.kind == "xgboost":
            from xgboost import XGBClassifier

            return XGBClassifier(max_depth=int(p["max_depth"]), learning_rate=p["learning_rate"],
                                 n_estimators=int(p["n_estimators"]), n_jobs=1, tree_method="hist",
                                 random_state=self.seed, verbosity=0)
        from sklearn.neural_network import MLPClassifier

        hidden = int(p["hidden"])
        return MLPClassifier(hidden_layer_sizes=(hidden, hidden), alpha=p["alpha"], max_iter=400,
                             random_state=self.seed)

    def _svm(self, y: np.ndarray):
        """Platt-calibrated probabilities (late fusion averages them), from the solver the size calls for."""
        from sklearn.calibration import CalibratedClassifierCV

        p = self.params
        self.solver_ = svm_solver(len(y), p["kernel"])
        smallest = int(np.bincount(y).min())
        if self.solver_ == "svc":
            from sklearn.svm import SVC

            return CalibratedClassifierCV(SVC(C=p["C"], kernel=p["kernel"], random_state=self.seed,
                                              max_iter=SVC_MAX_ITER),
                                          cv=int(max(2, min(5, smallest))), ensemble=False)
        if self.solver_ == "linearsvc-holdout":
            from sklearn.svm import LinearSVC

            return HoldoutCalibrated(LinearSVC(C=p["C"], dual=False, tol=1e-3, random_state=self.seed), seed=self.seed)
        from sklearn.svm import SVC

        return HoldoutCalibrated(SVC(C=p["C"], kernel=p["kernel"], random_state=self.seed, max_iter=SVC_MAX_ITER),
                                 seed=self.seed)

    def fit(self, x: np.ndarray, y: np.ndarray) -> ScaledClassifier:
        from sklearn.preprocessing import StandardScaler

        self.scaler_ = StandardScaler().fit(x)
        self.seen_ = np.unique(y)
        # Classifiers see labels re-indexed to 0..k-1 (XGBoost requires it); probabilities are mapped back.
        remap = {c: i for i, c in enumerate(self.seen_)}
        y_local = np.array([remap[c] for c in y])
        xs = self.scaler_.transform(x)
        self.model_ = self._estimator(y_local)
        if len(self.seen_) == 1:
            self.model_ = None
        elif self.balanced:
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

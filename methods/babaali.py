"""The fourth seed paper's fusion rules as it describes them (registered beside `methods.classical`).

late fusion (`babaali-late-{sum,product,concat}-{svm,xgboost,mlp}`): each modality has its own unimodal model
    whose *outputs* (class probabilities) are combined (summed, multiplied element-wise or concatenated), then a
    second classifier (SVM / XGBoost / NN) predicts from the combination. The unimodal models' outputs on the
    training part are out-of-fold (3-fold, within the training part), so the second classifier never learns from
    outputs on clips the unimodal models memorised; for prediction the unimodal models are refitted on the whole
    training part. In the paper the unimodal models are fine-tuned encoders with a classification head; here
    they are `unimodal` classifiers on the frozen pooled features (default: the SVM with Platt-calibrated
    probabilities; `unimodal="mlp"` is closer to a classification head but far slower on a CPU).
early fusion (`babaali-early-{sum,product}-{svm,xgboost,mlp}`): the raw pooled vectors of equal width are
    summed or multiplied element-wise, then one classifier. No projection: a width mismatch is an error naming
    the fix (choose extractors of equal width, or use `early-{sum,product}-*`, which projects by PCA first).

Missing modalities: late fusion gives an absent modality the neutral element of the rule (0 for the sum, 1 for
the product, a uniform distribution in the concatenation); early fusion the same (0 / 1) on the raw vectors.
Counts go to `notes_`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from methods import MethodSpec, register
from methods.base import FusionMethod
from methods.classical import ClassicalBase
from methods.classifiers import CLASSIFIERS, SEARCH_SPACES, ScaledClassifier
from methods.data import MultimodalData
from methods.presets import Input, Preset

LATE_RULES: tuple[str, ...] = ("sum", "product", "concat")
EARLY_RULES: tuple[str, ...] = ("sum", "product")


def _modalities(method: FusionMethod, data: MultimodalData) -> list[str]:
    wanted = list(method.params.get("modalities") or data.modalities)
    missing = [m for m in wanted if m not in data.pooled]
    if missing:
        raise ValueError(f"{type(method).__name__}: the data lacks pooled features for {missing}")
    if len(wanted) < 2:
        raise ValueError(f"{type(method).__name__}: fusion needs at least two modalities, the data offers {wanted}")
    return wanted


class _Base(ClassicalBase):
    """Accepted hyperparameters: the class's `defaults` plus those of the chosen `classifier` (see
    `methods.classical.ClassicalBase`), so a misspelt or foreign key is an error."""

    defaults: ClassVar[dict[str, Any]] = {"classifier": "svm", "rule": "sum", "modalities": None, "seed": 0}


class OutputLateFusion(_Base):
    """Unimodal outputs combined by `rule` (sum / product / concat), then the `classifier` predicts."""

    defaults: ClassVar[dict[str, Any]] = {**_Base.defaults, "unimodal": "svm"}

    def fit(self, train: MultimodalData, val: MultimodalData | None = None) -> OutputLateFusion:
        from sklearn.model_selection import StratifiedKFold

        rule = self.params.get("rule", "sum")
        if rule not in LATE_RULES:
            raise ValueError(f"late fusion rule {rule!r}; choose from {LATE_RULES}")
        self.modalities_ = _modalities(self, train)
        n_splits = int(min(3, np.bincount(train.labels).min()))
        if n_splits < 2:
            raise ValueError("output late fusion needs at least 2 training clips per class (out-of-fold outputs)")
        combined = np.zeros((len(train), self._width(train.n_classes)))
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=0)
        for fit_index, held_index in splitter.split(np.zeros(len(train)), train.labels):
            models = self._fit_unimodal(train.subset(fit_index))
            combined[held_index] = self._combine(models, train.subset(held_index))
        self.unimodal_ = self._fit_unimodal(train)
        self.model_ = self._classifier(train.n_classes).fit(combined, train.labels)
        self.notes_ = {f"train_clips_without_{m}": float((~train.available[m]).sum()) for m in self.modalities_}
        return self

    def _width(self, n_classes: int) -> int:
        return n_classes * len(self.modalities_) if self.params.get("rule") == "concat" else n_classes

    def _fit_unimodal(self, data: MultimodalData) -> dict[str, ScaledClassifier]:
        kind = self.params["unimodal"]
        models = {}
        for m in self.modalities_:
            rows = data.available[m]
            if rows.sum() == 0:
                raise ValueError(f"no training clip has the {m!r} modality")
            # The unimodal models keep their defaults: the tuned hyperparameters belong to the second classifier.
            models[m] = ScaledClassifier(kind, data.n_classes, seed=int(self.params.get("seed", 0))).fit(
                data.pooled[m][rows], data.labels[rows])
        return models

    def _combine(self, models: dict[str, ScaledClassifier], data: MultimodalData) -> np.ndarray:
        rule = self.params.get("rule", "sum")
        parts = []
        for m in self.modalities_:
            p = models[m].predict_proba(data.pooled[m])
            absent = ~data.available[m]
            p[absent] = {"sum": 0.0, "product": 1.0, "concat": 1.0 / data.n_classes}[rule]  # neutral element
            parts.append(p)
        if rule == "concat":
            return np.concatenate(parts, axis=1)
        return np.sum(parts, axis=0) if rule == "sum" else np.prod(parts, axis=0)

    def predict_proba(self, data: MultimodalData) -> np.ndarray:
        return self.model_.predict_proba(self._combine(self.unimodal_, data))


class RawEarlyFusion(_Base):
    """Raw pooled vectors of equal width summed or multiplied element-wise, then one classifier (no PCA)."""

    def fit(self, train: MultimodalData, val: MultimodalData | None = None) -> RawEarlyFusion:
        rule = self.params.get("rule", "sum")
        if rule not in EARLY_RULES:
            raise ValueError(f"raw early fusion rule {rule!r}; choose from {EARLY_RULES}")
        self.modalities_ = _modalities(self, train)
        widths = {m: int(train.pooled[m].shape[1]) for m in self.modalities_}
        if len(set(widths.values())) > 1:
            raise ValueError(f"{rule} fusion of raw vectors needs equal widths, got {widths}; choose extractors of "
                             f"equal width (e.g. 768-d encoders for every modality, `--features`), or use "
                             f"early-{rule}-{self.params['classifier']}, which projects each modality by PCA first")
        self.notes_ = {f"train_clips_without_{m}": float((~train.available[m]).sum()) for m in self.modalities_}
        self.model_ = self._classifier(train.n_classes).fit(self._combine(train),
                                                                                      train.labels)
        return self

    def _combine(self, data: MultimodalData) -> np.ndarray:
        rule = self.params.get("rule", "sum")
        parts = []
        for m in self.modalities_:
            x = np.array(data.pooled[m], dtype=np.float64)
            x[~data.available[m]] = 1.0 if rule == "product" else 0.0  # the neutral element of the rule
            parts.append(x)
        return np.sum(parts, axis=0) if rule == "sum" else np.prod(parts, axis=0)

    def predict_proba(self, data: MultimodalData) -> np.ndarray:
        return self.model_.predict_proba(self._combine(data))


def _register_all() -> None:
    for classifier in CLASSIFIERS:
        for rule in LATE_RULES:
            fixed: dict[str, Any] = {"rule": rule, "classifier": classifier}
            register(MethodSpec(
                name=f"babaali-late-{rule}-{classifier}", cls=OutputLateFusion, space=SEARCH_SPACES[classifier],
                fixed=fixed, in_default_suite=False,
                description=f"late fusion as the fourth seed paper: unimodal outputs {rule}, then {classifier}"))
        for rule in EARLY_RULES:
            register(MethodSpec(
                name=f"babaali-early-{rule}-{classifier}", cls=RawEarlyFusion, space=SEARCH_SPACES[classifier],
                fixed={"rule": rule, "classifier": classifier}, in_default_suite=False,
                description=f"early fusion as the fourth seed paper: raw equal-width vectors {rule}, then "
                            f"{classifier} (no PCA)"))


_register_all()


# The fourth paper's inputs and per-modality fine-tuning (§3.2, §3.3), as a preset that no classical method
# declares (its fusion rules are registered variants): `harness run --preset paper` with only classical methods
# planned extracts with these inputs, and with `--finetune` trains each encoder with these options.
PAPER_PRESET = Preset(
    paper="babaali2024",
    values={"finetune.text.lr": 2e-5, "finetune.text.epochs": 20, "finetune.text.batch_size": 32,
            "finetune.text.weight_decay": 0.01, "finetune.audio.lr": 3e-5, "finetune.audio.epochs": 15,
            "finetune.audio.batch_size": 8, "finetune.audio.weight_decay": 0.01, "finetune.audio.max_seconds": 10.0,
            "finetune.video.lr": 5e-5, "finetune.video.epochs": 10, "finetune.video.batch_size": 8,
            "finetune.video.weight_decay": 0.01, "finetune.text.select_by": "accuracy",
            "finetune.audio.select_by": "accuracy"},
    sources={
        **{f"finetune.text.{k}": f"paper §3.2: the text models are fine-tuned with {v}" for k, v in (
            ("lr", "a learning rate of 2e-5"), ("epochs", "20 epochs"), ("batch_size", "batch size 32"),
            ("weight_decay", "weight decay 0.01"))},
        **{f"finetune.audio.{k}": f"paper §3.2: wav2vec2.0 and HuBERT are fine-tuned with {v}" for k, v in (
            ("lr", "a learning rate of 3e-5"), ("epochs", "15 epochs"), ("batch_size", "training batch size eight"),
            ("weight_decay", "weight decay 0.01"), ("max_seconds", "a maximum audio input length of 10 seconds"))},
        "finetune.text.select_by": "paper §3.2: the best model based on the validation accuracy is chosen and saved",
        "finetune.audio.select_by": "paper §3.2: the speech models' data division follows the text models', whose "
                                    "best model is chosen by validation accuracy",
        **{f"finetune.video.{k}": f"paper §3.2: videoMAE is fine-tuned with {v}" for k, v in (
            ("lr", "a learning rate of 5e-5"), ("epochs", "10 training epochs"), ("batch_size", "batch size eight"),
            ("weight_decay", "the same weight decay of 0.01"))},
    },
    inputs={
        "text": Input("bert", "paper §3.3: BERT, selected for fusion, its 768-d CLS representation",
                      {"checkpoint": "bert-base-uncased", "pooling": "cls"}),
        "audio": Input("wav2vec2", "paper §3.3: wav2vec2.0, selected for fusion (768-d)",
                       {"checkpoint": "facebook/wav2vec2-base"}),
        "video": Input("video-snippets", "paper §3.3: VideoMAE fine-tuned per fold; frozen r3d_18 (Kinetics-400) "
                       "snippets stand in unless --extractor-config video-snippets.backbone=videomae "
                       "video-snippets.checkpoint=PATH names a local VideoMAE", {"backbone": "r3d_18"},
                       stands_in_for="VideoMAE"),
    },
    note="Fusion (concatenation, §3.3) and classifier (SVM, §3.4) are the method's name (early-concat-svm); the "
         "SVM's own hyperparameters are not stated and stay searched. Stage 1 selects by validation UAR, the "
         "paper by accuracy (§3.2).")

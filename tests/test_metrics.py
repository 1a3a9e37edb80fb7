"""The metrics module against hand-worked examples (and scikit-learn as a second opinion)."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from harness.metrics import confusion_matrix, score, scores_from_confusion, summarise_folds

CLASSES = ["neutral", "happy", "angry"]


def test_confusion_matrix_counts_true_by_predicted():
    y_true = np.array([0, 0, 1, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 2])
    assert confusion_matrix(y_true, y_pred, 3).tolist() == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]


def test_hand_worked_example():
    # true:  n n h h h a ; pred: n h h h a a
    # recall: n 1/2, h 2/3, a 1/1 -> UAR = (0.5 + 0.6667 + 1) / 3 = 0.7222
    # precision: n 1/1, h 2/3, a 1/2 ; F1: n 2/3, h 2/3, a 2/3 -> macro 2/3, weighted 2/3 ; accuracy 4/6
    s = score(np.array([0, 0, 1, 1, 1, 2]), np.array([0, 1, 1, 1, 2, 2]), CLASSES)
    assert s.accuracy == pytest.approx(4 / 6)
    assert s.uar == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert s.per_class.loc["neutral", "precision"] == pytest.approx(1.0)
    assert s.per_class.loc["angry", "precision"] == pytest.approx(0.5)
    assert s.per_class["f1"].tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3])
    assert s.macro_f1 == pytest.approx(2 / 3)
    assert s.weighted_f1 == pytest.approx(2 / 3)


def test_weighted_and_macro_f1_differ_on_imbalance():
    # 8 of class 0 all right; 2 of class 1 predicted as 0. F1_0 = 2*0.8*1/(1.8) = 0.8889, F1_1 = 0
    y_true = np.array([0] * 8 + [1] * 2)
    y_pred = np.zeros(10, dtype=int)
    s = score(y_true, y_pred, ["a", "b"])
    assert s.accuracy == pytest.approx(0.8)
    assert s.uar == pytest.approx(0.5)
    assert s.macro_f1 == pytest.approx((16 / 18) / 2)
    assert s.weighted_f1 == pytest.approx(0.8 * 16 / 18)
    assert s.per_class.loc["b", "precision"] == 0.0


def test_agrees_with_sklearn_on_random_predictions():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 5, 300))
    s = score(y_true, y_pred, list("abcde"))
    assert s.uar == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert s.macro_f1 == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert s.weighted_f1 == pytest.approx(f1_score(y_true, y_pred, average="weighted"))


def test_class_absent_from_truth_is_left_out_of_uar():
    # class 2 never occurs in y_true but is predicted once: recall undefined (excluded), precision 0
    s = score(np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1]), CLASSES)
    assert s.uar == pytest.approx((0.5 + 1.0) / 2)
    assert s.per_class.loc["angry", "precision"] == 0.0


def test_invalid_inputs_are_errors():
    with pytest.raises(ValueError):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(ValueError):
        scores_from_confusion(np.zeros((2, 2)), ["a", "b"])


def test_fold_summary_mean_and_sample_std():
    folds = [score(np.array([0, 1]), np.array([0, 1]), ["a", "b"]),
             score(np.array([0, 1]), np.array([0, 0]), ["a", "b"])]
    summary = summarise_folds(folds)
    assert summary["accuracy_mean"] == pytest.approx(0.75)
    assert summary["accuracy_std"] == pytest.approx(np.std([1.0, 0.5], ddof=1))


@pytest.mark.parametrize("seed", range(12))
def test_every_figure_equals_scikit_learn_on_random_inputs(seed):
    """The module keeps its own arithmetic (it scores confusion matrices, also thousands at once for the
    report's resampling); scikit-learn is the reference for every figure, including awkward cases: tiny sets,
    classes never predicted, classes absent from the truth."""
    import warnings

    from sklearn import metrics as sk

    from harness.metrics import headline_from_confusions

    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 7))
    n = int(rng.choice([3, 10, 200]))
    y_true = rng.integers(0, max(1, n_classes - seed % 2), n)  # odd seeds: the last class never true
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, n_classes, n))
    if seed % 3 == 0:
        y_pred[y_pred == 0] = 1  # class 0 never predicted
    labels = list(range(n_classes))
    s = score(y_true, y_pred, [f"c{i}" for i in labels])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about classes missing from y_true or y_pred
        assert s.confusion.tolist() == sk.confusion_matrix(y_true, y_pred, labels=labels).tolist()
        assert s.accuracy == pytest.approx(sk.accuracy_score(y_true, y_pred))
        assert s.uar == pytest.approx(sk.balanced_accuracy_score(y_true, y_pred))
        assert s.macro_f1 == pytest.approx(sk.f1_score(y_true, y_pred, average="macro", zero_division=0))
        assert s.weighted_f1 == pytest.approx(sk.f1_score(y_true, y_pred, average="weighted", zero_division=0))
        precision, recall, f1, support = sk.precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                                            zero_division=0)
    assert s.per_class["precision"].tolist() == pytest.approx(precision.tolist())
    assert s.per_class["recall"].tolist() == pytest.approx(recall.tolist())
    assert s.per_class["f1"].tolist() == pytest.approx(f1.tolist())
    assert s.per_class["support"].tolist() == support.tolist()
    batch = headline_from_confusions(s.confusion[None])
    assert {k: float(v[0]) for k, v in batch.items()} == pytest.approx(s.headline())


@pytest.mark.parametrize("seed", range(5))
def test_the_training_uar_is_the_leaderboard_uar(seed):
    """One UAR: `metrics.uar` (fine-tuning and e2e stop early on it) equals sklearn's balanced accuracy, and the
    copy `methods/` keeps (a method never imports the harness) equals it too."""
    from harness.metrics import uar
    from methods.neural.training import unweighted_average_recall

    rng = np.random.default_rng(seed)
    y_true, y_pred = rng.integers(0, 5, 60), rng.integers(0, 6, 60)  # predicts a class absent from the truth
    assert uar(y_true, y_pred) == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert unweighted_average_recall(y_true, y_pred) == pytest.approx(uar(y_true, y_pred))
    assert uar(np.array([], int), np.array([], int)) == 0.0

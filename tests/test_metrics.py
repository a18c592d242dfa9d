from __future__ import annotations

import numpy as np
from sklearn.metrics import balanced_accuracy_score, f1_score, recall_score

from pipeline.metrics import balanced_accuracy, classification_report, macro_f1, per_class_recall


def test_majority_predictor_on_95_5_test_set():
    y_true = np.array([0] * 95 + [1] * 5)
    y_pred = np.zeros(100, dtype=np.int64)
    report = classification_report(y_true, y_pred, ("common", "rare"))
    assert report["accuracy"] == 0.95
    assert report["balanced_accuracy"] == 0.5
    assert report["recall"]["rare"] == 0.0
    assert report["recall"]["common"] == 1.0


def test_agrees_with_scikit_learn_on_random_labels():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    assert np.isclose(balanced_accuracy(y_true, y_pred, 4), balanced_accuracy_score(y_true, y_pred))
    assert np.isclose(macro_f1(y_true, y_pred, 4), f1_score(y_true, y_pred, average="macro"))
    assert np.allclose(
        per_class_recall(y_true, y_pred, 4), recall_score(y_true, y_pred, average=None)
    )


def test_class_absent_from_test_set_is_left_out_of_balanced_accuracy():
    y_true, y_pred = np.array([0, 0, 1, 1]), np.array([0, 0, 1, 2])
    assert np.isnan(per_class_recall(y_true, y_pred, 3)[2])
    assert balanced_accuracy(y_true, y_pred, 3) == 0.75

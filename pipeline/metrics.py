"""Classification metrics for imbalanced test sets.

Balanced accuracy (mean per-class recall) and minority recall lead; plain accuracy is reported
only beside them, because a majority predictor scores 0.95 accuracy on a 95/5 test set.
Shape letters: N samples, K classes.
"""

from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Confusion counts (K, K): rows are true classes, columns predicted classes."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"expected matching shapes, got {y_true.shape} and {y_pred.shape}")
    flat = y_true.astype(np.int64) * num_classes + y_pred.astype(np.int64)
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_recall(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Recall (sensitivity) of each class (K,); NaN for a class absent from ``y_true``."""
    cm = confusion(y_true, y_pred, num_classes)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / support, np.nan)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Mean recall over the classes present in ``y_true``."""
    return float(np.nanmean(per_class_recall(y_true, y_pred, num_classes)))


def per_class_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """F1 of each class (K,); 0 where a class is never predicted nor present."""
    cm = confusion(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(axis=0) + cm.sum(axis=1)  # predicted + true counts per class
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / denom, 0.0)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Unweighted mean of the per-class F1 scores."""
    return float(per_class_f1(y_true, y_pred, num_classes).mean())


def classification_report(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: tuple[str, ...] | list[str]
) -> dict:
    """JSON-ready scores: balanced accuracy, macro-F1, per-class recall, then plain accuracy."""
    num_classes = len(class_names)
    recall = per_class_recall(y_true, y_pred, num_classes)
    return {
        "balanced_accuracy": balanced_accuracy(y_true, y_pred, num_classes),
        "macro_f1": macro_f1(y_true, y_pred, num_classes),
        "recall": {name: _nan_to_none(r) for name, r in zip(class_names, recall, strict=True)},
        "accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))),
        "n": int(len(y_true)),
        "support": dict(
            zip(class_names, np.bincount(y_true, minlength=num_classes).tolist(), strict=True)
        ),
    }


def _nan_to_none(value: float) -> float | None:
    return None if np.isnan(value) else float(value)

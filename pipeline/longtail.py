"""Long-tail benchmark metrics as the literature reports them, with the audit's intervals.

Shape letters: N test images, K classes, S seeds.

ACSA (average class-specific accuracy) is the mean per-class recall, i.e. balanced accuracy.
GM comes in two forms:

- ``gm_recall``: the geometric mean of the K per-class recalls (imbalanced-learn's
  ``geometric_mean_score(average="multiclass")``, the multi-class G-mean of its docs); it is 0
  as soon as one class is never recognised.
- ``gm_ovr``: for each class k one-vs-rest, sqrt(sensitivity_k * specificity_k), averaged over
  the classes (``geometric_mean_score(average="macro")``).

Published DeepSMOTE / BAGAN / GAMO tables appear to use ``gm_ovr``: their GM exceeds their
ACSA, and the geometric mean of recalls can never exceed their arithmetic mean (ACSA).
Intervals come from ``pipeline.audit_stats.bootstrap_by_group`` (resampling test groups, here
single images, and averaging over seeds); gains pair two arms on the same resamples.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np

from pipeline.audit_stats import Interval, bootstrap_by_group, classification_metrics

METRICS = ("acsa", "gm_ovr", "gm_recall", "macro_f1")
LABELS = {
    "acsa": "ACSA",
    "gm_ovr": "GM (one-vs-rest)",
    "gm_recall": "GM (of recalls)",
    "macro_f1": "macro-F1",
}


def longtail_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict[str, float]:
    """ACSA, both GMs and macro-F1 (fractions) of (N,) int labels and predictions.

    Classes absent from y_true are left out of ACSA and both GMs (their recall is undefined);
    macro-F1 averages over classes in y_true or y_pred, as sklearn does.
    """
    scores = classification_metrics(y_true, y_pred, None, num_classes)
    recall = np.array([scores[f"recall/{k}"] for k in range(num_classes)])  # (K,)
    spec = np.array([scores[f"specificity/{k}"] for k in range(num_classes)])  # (K,)
    present = np.isfinite(recall)
    if not present.any():
        return dict.fromkeys(METRICS, math.nan)

    # The geometric mean of recalls is 0 when any recall is 0 (log would be -inf).
    r = recall[present]
    gm_recall = 0.0 if (r == 0).any() else float(np.exp(np.mean(np.log(r))))
    return {
        "acsa": scores["balanced_accuracy"],
        "gm_ovr": float(np.nanmean(np.sqrt(recall * spec)[present])),
        "gm_recall": gm_recall,
        "macro_f1": scores["macro_f1"],
    }


def _metric_fn(num_classes: int):
    return lambda y, p, _probs: longtail_metrics(y, p, num_classes)


def longtail_intervals(
    y_true: np.ndarray,
    preds: np.ndarray,
    groups: np.ndarray,
    num_classes: int,
    n_boot: int,
    seed: int,
    alpha: float = 0.05,
) -> dict[str, Interval]:
    """Seed-mean value and bootstrap interval of each metric for predictions (S, N)."""
    fn = _metric_fn(num_classes)
    return bootstrap_by_group(y_true, preds, None, groups, fn, n_boot, seed, alpha)


def _pair_gain(y: np.ndarray, pair: np.ndarray, _probs, num_classes: int) -> dict[str, float]:
    # pair = pred_a * K + pred_b carries both arms' predictions through one resample.
    a = longtail_metrics(y, pair // num_classes, num_classes)
    b = longtail_metrics(y, pair % num_classes, num_classes)
    return {m: b[m] - a[m] for m in METRICS}


def longtail_gains(
    y_true: np.ndarray,
    preds_a: np.ndarray,
    preds_b: np.ndarray,
    groups: np.ndarray,
    num_classes: int,
    n_boot: int,
    seed: int,
    alpha: float = 0.05,
) -> dict[str, Interval]:
    """Paired gain metric(B) - metric(A) of predictions (S, N), seed s of A paired with seed s
    of B, both scored on the same resamples of test groups."""
    preds_a, preds_b = np.atleast_2d(preds_a), np.atleast_2d(preds_b)
    if preds_a.shape != preds_b.shape:
        raise ValueError(
            f"expected predictions of both arms with the same (S, N), got {preds_a.shape} and "
            f"{preds_b.shape}; train both arms on the same seeds"
        )
    pair = preds_a.astype(np.int64) * num_classes + preds_b  # (S, N)
    fn = partial(_pair_gain, num_classes=num_classes)
    return bootstrap_by_group(y_true, pair, None, groups, fn, n_boot, seed, alpha)


# --------------------------------------------------------------------------------------------
# Markdown


def _pct(iv: dict[str, float] | None, signed: bool = False) -> str:
    """An interval dict of fractions as '84.9 [83.1, 86.5]' percent (signed for gains)."""
    if iv is None:
        return "—"
    fmt = "{:+.1f}" if signed else "{:.1f}"
    point, lo, hi = (fmt.format(100 * iv[k]) for k in ("point", "lo", "hi"))
    return f"{point} [{lo}, {hi}]"


def longtail_table(test_set: dict[str, Any], published: list[dict[str, Any]]) -> str:
    """Markdown rows: published methods (plain %), then our arms with intervals and gains.

    Args:
        test_set: {"arms": {arm: {"metrics": {metric: Interval dict}, "vs_real": {...}}}}.
        published: [{"method", "acsa", "gm", "f1", "source"}] in percent; an empty list
            leaves them out (no published numbers for the balanced test set).
    """
    head = ["method", *(f"{LABELS[m]} %" for m in METRICS), "ACSA gain over real, points"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in published:
        cells = [f"{row['method']} (published)", f"{row['acsa']:.2f}", f"{row['gm']:.2f}"]
        lines.append("| " + " | ".join([*cells, "—", f"{row['f1']:.2f}", "—"]) + " |")
    for arm, res in test_set["arms"].items():
        cells = [f"ours: {arm}", *(_pct(res["metrics"][m]) for m in METRICS)]
        cells.append(_pct(res.get("vs_real", {}).get("acsa"), signed=True))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


GAN_SCORES = ("fid", "kid", "one_nn_accuracy", "precision", "recall")


def gan_table(scores: dict[str, dict[str, float]], class_names: list[str]) -> str:
    """Markdown rows of one generator's scores per class (and 'all'): FID, KID, 1-NN accuracy,
    precision and recall, each with its interval."""
    head = ["class", "N real", "FID", "KID", "1-NN accuracy", "precision", "recall"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in [*class_names, "all"]:
        s = scores.get(name)
        if s is None:
            lines.append(
                f"| {name} | — | not scored (needs k + 1 real, generated and training images) |"
                + " |" * 4
            )
            continue
        cells = [name, str(s["n_real"])]
        for key in GAN_SCORES:
            digits = 2 if key == "fid" else 3
            point, lo, hi = (s[k] for k in (key, f"{key}_lo", f"{key}_hi"))
            cells.append(f"{point:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

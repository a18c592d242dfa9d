"""Long-tail metrics against direct computations (sklearn, hand values) and their intervals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score

from pipeline.longtail import (
    METRICS,
    gan_table,
    longtail_gains,
    longtail_intervals,
    longtail_metrics,
    longtail_table,
)


def _case(seed: int = 0, n: int = 300, k: int = 4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n))
    return y, pred


def _direct_gms(y, pred, k):
    """Both G-means written out from sklearn's confusion matrix."""
    cm = confusion_matrix(y, pred, labels=range(k)).astype(float)
    tp, fn, fp = np.diag(cm), cm.sum(1) - np.diag(cm), cm.sum(0) - np.diag(cm)
    tn = cm.sum() - tp - fn - fp
    sens, spec = tp / (tp + fn), tn / (tn + fp)
    return np.prod(sens) ** (1 / k), np.mean(np.sqrt(sens * spec))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn_and_a_direct_computation(seed):
    y, pred = _case(seed)
    got = longtail_metrics(y, pred, 4)
    gm_recall, gm_ovr = _direct_gms(y, pred, 4)

    assert got["acsa"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert got["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert got["gm_recall"] == pytest.approx(gm_recall)
    assert got["gm_ovr"] == pytest.approx(gm_ovr)
    # AM-GM: the geometric mean of recalls never exceeds their mean
    assert got["gm_recall"] <= got["acsa"]


def test_hand_values_of_a_two_class_case():
    # class 0: 3 of 4 right; class 1: 1 of 2 right
    y, pred = np.array([0, 0, 0, 0, 1, 1]), np.array([0, 0, 0, 1, 1, 0])
    got = longtail_metrics(y, pred, 2)
    assert got["acsa"] == pytest.approx((0.75 + 0.5) / 2)
    assert got["gm_recall"] == pytest.approx(np.sqrt(0.75 * 0.5))
    # one-vs-rest: class 0 has sensitivity 0.75, specificity 0.5, class 1 the reverse
    assert got["gm_ovr"] == pytest.approx(np.sqrt(0.75 * 0.5))


def test_a_class_never_recognised_zeroes_gm_of_recalls_only():
    y, pred = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 0, 1, 1, 1, 1])
    got = longtail_metrics(y, pred, 3)
    assert got["gm_recall"] == 0.0
    # one-vs-rest: class 0 is perfect, class 1 has specificity 2/4, class 2 sensitivity 0
    assert got["gm_ovr"] == pytest.approx((1 + np.sqrt(0.5) + 0) / 3)


def test_intervals_contain_the_point_and_a_perfect_arm_gains():
    y, pred = _case(0)
    groups = np.arange(len(y))
    preds = np.stack([pred, np.roll(pred, 1)])  # (S=2, N)
    ivs = longtail_intervals(y, preds, groups, 4, n_boot=200, seed=0)
    assert list(ivs) == list(METRICS)
    for iv in ivs.values():
        assert iv.lo <= iv.point <= iv.hi and iv.n_used == 200

    perfect = np.stack([y, y])
    gains = longtail_gains(y, preds, perfect, groups, 4, n_boot=200, seed=0)
    point = longtail_metrics(y, pred, 4)["acsa"] + longtail_metrics(y, np.roll(pred, 1), 4)["acsa"]
    assert gains["acsa"].point == pytest.approx(1 - point / 2)
    assert gains["acsa"].lo > 0
    same = longtail_gains(y, preds, preds, groups, 4, n_boot=100, seed=0)
    assert same["gm_ovr"].point == 0 and same["gm_ovr"].lo == same["gm_ovr"].hi == 0


def test_gains_refuse_mismatched_seeds():
    y, pred = _case(0)
    with pytest.raises(ValueError, match=r"same \(S, N\)"):
        longtail_gains(y, np.stack([pred, pred]), pred, np.arange(len(y)), 4, 100, 0)


def test_tables_show_published_rows_and_our_intervals():
    iv = {"point": 0.8, "lo": 0.75, "hi": 0.85}
    test_set = {"arms": {"real": {"metrics": dict.fromkeys(METRICS, iv)}}}
    published = [{"method": "SMOTE", "acsa": 67.94, "gm": 74.84, "f1": 67.12, "source": "x"}]
    text = longtail_table(test_set, published)
    assert "| SMOTE (published) | 67.94 | 74.84 | — | 67.12 | — |" in text
    assert "| ours: real | 80.0 [75.0, 85.0] |" in text

    scores = {"a": {"n_real": 5, **{k: 0.5 for k in ("fid", "kid", "one_nn_accuracy")}}}
    for key in ("fid", "kid", "one_nn_accuracy", "precision", "recall"):
        scores["a"] |= {key: 0.5, f"{key}_lo": 0.4, f"{key}_hi": 0.6}
    rows = gan_table(scores, ["a", "b"]).splitlines()
    assert rows[2].startswith("| a | 5 | 0.50 [0.40, 0.60] | 0.500 [0.400, 0.600] | 0.500")
    assert "not scored" in rows[3] and rows[3].count("|") == rows[0].count("|")

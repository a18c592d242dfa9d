"""Audit statistics against sklearn, SciPy and closed-form references on constructed cases."""

from __future__ import annotations

import hashlib
from functools import partial
from math import comb

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    recall_score,
    roc_auc_score,
)

from pipeline.audit_stats import (
    LeakageError,
    assert_no_leakage,
    audit_arms,
    bootstrap_by_group,
    classification_metrics,
    group_resamples,
    mcnemar_exact,
    metric_names,
    metric_table,
    paired_difference,
    verdict_sentence,
)


def _random_case(n: int, k: int, seed: int, decimals: int | None = None):
    """Labels, noisy predictions and probabilities; `decimals` rounds probs to create ties."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    probs = rng.dirichlet(np.ones(k), n) + 0.6 * np.eye(k)[y] * rng.random((n, 1))
    probs /= probs.sum(1, keepdims=True)
    if decimals is not None:
        probs = np.round(probs, decimals)
    return y, probs.argmax(1), probs


@pytest.mark.parametrize("decimals", [None, 1])
def test_metrics_equal_sklearn_three_classes(decimals):
    y, pred, probs = _random_case(150, 3, seed=0, decimals=decimals)
    m = classification_metrics(y, pred, probs, 3)

    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    # sklearn's multi-class OvR wants rows summing to 1; rounding breaks that, so renormalise
    normed = probs / probs.sum(1, keepdims=True)
    assert classification_metrics(y, pred, normed, 3)["auroc"] == pytest.approx(
        roc_auc_score(y, normed, multi_class="ovr")
    )
    for k in range(3):
        assert m[f"recall/{k}"] == pytest.approx(recall_score(y == k, pred == k))
        # specificity is the recall of "not k"
        assert m[f"specificity/{k}"] == pytest.approx(recall_score(y != k, pred != k))
        assert m[f"auroc/{k}"] == pytest.approx(roc_auc_score(y == k, probs[:, k]))
    assert list(m) == metric_names(3)


def test_binary_auroc_equals_sklearn():
    y, pred, probs = _random_case(80, 2, seed=1)
    m = classification_metrics(y, pred, probs, 2)

    assert m["auroc"] == pytest.approx(roc_auc_score(y, probs[:, 1]))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))


def test_majority_predictor_on_95_5_split():
    y = np.array([0] * 95 + [1] * 5)
    pred = np.zeros(100, dtype=int)
    probs = np.tile([0.9, 0.1], (100, 1))
    m = classification_metrics(y, pred, probs, 2)

    assert m["accuracy"] == pytest.approx(0.95)
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["recall/1"] == 0.0
    assert m["recall/0"] == 1.0
    assert m["specificity/1"] == 1.0
    assert m["auroc"] == pytest.approx(0.5)  # constant scores rank nothing
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))


def test_missing_class_gives_nan_not_error():
    y = np.array([0, 0, 1, 1])
    m = classification_metrics(y, y, np.eye(3)[y], 3)

    assert np.isnan(m["recall/2"]) and np.isnan(m["auroc"])
    assert m["balanced_accuracy"] == 1.0  # averaged over the classes present, as sklearn does


def test_group_resamples_keep_whole_patients():
    groups = np.repeat(np.array(["p0", "p1", "p2", "p3"]), [1, 2, 3, 4])
    for idx in group_resamples(groups, n_boot=20, seed=0):
        drawn, counts = np.unique(groups[idx], return_counts=True)
        sizes = {"p0": 1, "p1": 2, "p2": 3, "p3": 4}
        # every drawn patient brings all its images, a whole number of times
        assert all(c % sizes[g] == 0 for g, c in zip(drawn, counts, strict=True))
        assert sum(c // sizes[g] for g, c in zip(drawn, counts, strict=True)) == 4


def _proportion_width(p: float, n: int) -> float:
    """Width of the normal 95 % interval of a proportion over n independent units."""
    return 2 * 1.96 * np.sqrt(p * (1 - p) / n)


def test_bootstrap_width_matches_binomial_formula():
    # 400 patients of one image each: the plain binomial interval applies
    correct = np.array([1] * 120 + [0] * 280)
    groups = np.arange(400).astype(str)
    out = bootstrap_by_group(
        correct, np.ones(400, int), None, groups, lambda y, p, _: np.mean(y == p), 2000, seed=0
    )["value"]

    assert out.point == pytest.approx(0.3)
    assert out.hi - out.lo == pytest.approx(_proportion_width(0.3, 400), rel=0.1)
    assert out.n_used == 2000


def test_bootstrap_resamples_patients_not_images():
    # 40 patients x 10 identical images: the information is 40 units, not 400
    per_patient = np.array([1] * 12 + [0] * 28)
    correct = np.repeat(per_patient, 10)
    groups = np.repeat(np.arange(40), 10).astype(str)
    out = bootstrap_by_group(
        correct, np.ones(400, int), None, groups, lambda y, p, _: np.mean(y == p), 2000, seed=0
    )["value"]

    assert out.hi - out.lo == pytest.approx(_proportion_width(0.3, 40), rel=0.15)


def test_bootstrap_skips_resamples_without_minority_patient():
    # the only minority images belong to patient "m"; resamples without it have no AUROC
    y = np.array([0] * 30 + [1] * 3)
    groups = np.array([f"p{i // 3}" for i in range(30)] + ["m"] * 3)
    _, pred, probs = _random_case(33, 2, seed=2)
    n_boot = 300
    out = bootstrap_by_group(
        y, pred, probs, groups, partial(classification_metrics, num_classes=2), n_boot, seed=3
    )

    with_m = sum("m" in set(groups[idx]) for idx in group_resamples(groups, n_boot, seed=3))
    assert 0 < out["auroc"].n_used == with_m < n_boot
    assert out["specificity/1"].n_used == n_boot  # defined whenever class 0 is present
    assert out["auroc"].lo <= out["auroc"].point <= out["auroc"].hi


def _two_arm_case(acc_a: float, acc_b: float, n_patients: int, seeds: int):
    """Every patient has 5 images of each of 2 classes; each arm is right on a fixed share."""
    y = np.tile(np.repeat([0, 1], 5), n_patients)
    groups = np.repeat(np.arange(n_patients), 10).astype(str)
    rank = np.tile(np.arange(5), 2 * n_patients)  # position within a patient's class block

    # arm right on the first round(acc * 5) images of each class block, per seed
    def preds_for(acc: float) -> np.ndarray:
        right = rank < round(acc * 5)
        return np.stack([np.where(right, y, 1 - y) for _ in range(seeds)])

    return y, groups, preds_for(acc_a), preds_for(acc_b)


def test_paired_difference_recovers_a_constant_gain_exactly():
    # every patient gains exactly 0.2 in both recalls, so every resample shows 0.2
    y, groups, pa, pb = _two_arm_case(0.6, 0.8, n_patients=30, seeds=2)
    res = paired_difference(y, pa, None, pb, None, groups, "balanced_accuracy", 2, 300, seed=0)

    expected = np.mean(
        [balanced_accuracy_score(y, pb[s]) - balanced_accuracy_score(y, pa[s]) for s in range(2)]
    )
    assert expected == pytest.approx(0.2)
    assert res.diff == pytest.approx(expected)
    assert res.lo == pytest.approx(0.2) and res.hi == pytest.approx(0.2)
    assert res.p_bootstrap == pytest.approx(2 / 301)
    assert (res.n_b_better, res.n_a_better) == (2 * 30 * 2, 0)


def test_paired_difference_interval_covers_a_known_random_gain():
    # B fixes each error of A with probability 0.5: expected gain 0.5 * (1 - 0.6) = 0.2
    rng = np.random.default_rng(5)
    y, groups, pa, _ = _two_arm_case(0.6, 0.6, n_patients=60, seeds=3)
    pb = np.where((pa != y) & (rng.random(pa.shape) < 0.5), y, pa)
    res = paired_difference(y, pa, None, pb, None, groups, "recall/1", 2, 500, seed=0)

    direct = np.mean([recall_score(y, pb[s]) - recall_score(y, pa[s]) for s in range(3)])
    assert res.diff == pytest.approx(direct)
    assert res.lo < 0.2 < res.hi
    assert 0 < res.lo and res.hi - res.lo < 0.12


def test_paired_difference_of_identical_arms_is_zero_with_p_one():
    y, groups, pa, _ = _two_arm_case(0.6, 0.6, n_patients=20, seeds=2)
    res = paired_difference(y, pa, None, pa.copy(), None, groups, "macro_f1", 2, 100, seed=0)

    assert (res.diff, res.lo, res.hi) == (0.0, 0.0, 0.0)
    assert res.p_bootstrap == 1.0 and res.p_mcnemar == 1.0


def test_paired_difference_refuses_plain_accuracy():
    y, groups, pa, pb = _two_arm_case(0.6, 0.8, n_patients=5, seeds=1)
    with pytest.raises(ValueError, match="never reported in plain accuracy"):
        paired_difference(y, pa, None, pb, None, groups, "accuracy", 2, 10, seed=0)


def test_mcnemar_matches_exact_binomial_on_hand_case():
    # 9 cases only B gets right, 2 only A gets right, 5 both right, 4 both wrong
    correct_a = np.array([0] * 9 + [1] * 2 + [1] * 5 + [0] * 4, bool)
    correct_b = np.array([1] * 9 + [0] * 2 + [1] * 5 + [0] * 4, bool)
    p, n_b, n_a = mcnemar_exact(correct_a[None], correct_b[None])

    hand = 2 * sum(comb(11, k) for k in range(3)) / 2**11  # = 134 / 2048
    assert (n_b, n_a) == (9, 2)
    assert p == pytest.approx(hand) == pytest.approx(binomtest(9, 11, 0.5).pvalue)


def test_verdict_sentences():
    tie = ("oversampling", 0.01, -0.02, 0.04)
    assert (
        verdict_sentence("real + ACGAN", "minority recall", 0.081, 0.030, 0.132, tie)
        == "real + ACGAN: +8.1 points minority recall [+3.0, +13.2] over real only; "
        "not distinguishable from oversampling."
    )
    assert (
        verdict_sentence(
            "D2GAN", "balanced accuracy", 0.01, -0.02, 0.05, ("flips", -0.05, -0.08, -0.01)
        )
        == "D2GAN: +1.0 points balanced accuracy [-2.0, +5.0] over real only (not "
        "distinguishable from real only); worse than flips by 5.0 points [-8.0, -1.0]."
    )
    assert verdict_sentence("classic", "macro-F1", 0.02, 0.01, 0.03, None).endswith("real only.")
    assert "could not be estimated" in verdict_sentence("x", "auroc", float("nan"), 0, 0)


def _sha(img: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(img, np.float32).tobytes()).hexdigest()


def test_leakage_refusal_when_test_image_planted_in_gan_set():
    rng = np.random.default_rng(0)
    test = [_sha(rng.random((1, 16, 16))) for _ in range(5)]
    gan = [_sha(rng.random((1, 16, 16))) for _ in range(20)]
    assert_no_leakage(np.array(test), np.array(gan))  # disjoint: passes

    with pytest.raises(LeakageError, match="got 1 of 5 test images") as err:
        assert_no_leakage(np.array(test), np.array([*gan, test[3]]))
    assert isinstance(err.value, ValueError)


def _three_arms(seed: int = 0):
    """60 test images of 12 patients; arms right on 60 %, 70 % and 80 % of them, 2 seeds."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1, 2], [30, 20, 10])
    groups = np.array([f"p{i % 12}" for i in range(60)])

    def arm(skill: float):
        preds = np.where(rng.random((2, 60)) < skill, y, (y + 1) % 3)  # (S, N)
        return preds, np.full((2, 60, 3), 0.1) + 0.7 * np.eye(3)[preds]

    return y, groups, {"real": arm(0.6), "oversample": arm(0.7), "gan:acgan": arm(0.8)}


def test_metric_table_agrees_with_bootstrap_and_paired_difference():
    y, groups, arms = _three_arms()
    table = metric_table(y, arms, groups, 3, n_boot=150, seed=4)

    # the table's interval is the plain cluster bootstrap with the same resamples
    fn = partial(classification_metrics, num_classes=3)
    direct = bootstrap_by_group(y, *arms["gan:acgan"], groups, fn, 150, seed=4)
    assert table.interval("gan:acgan", "auroc/2") == direct["auroc/2"]

    # and its differences are the two-arm paired difference
    pd_ = paired_difference(y, *arms["real"], *arms["gan:acgan"], groups, "recall/2", 3, 150, 4)
    diff, lo, hi, p_boot, _ = table.difference("real", "gan:acgan", "recall/2")
    assert (diff, lo, hi, p_boot) == pytest.approx((pd_.diff, pd_.lo, pd_.hi, pd_.p_bootstrap))


def test_audit_arms_structure_best_classic_and_verdicts():
    y, groups, arms = _three_arms()
    out = audit_arms(y, groups, arms, 3, "recall/2", "minority recall", 100, seed=0)

    assert out["best_classic"] == "oversample"  # the only classical arm present
    assert "vs_baseline" not in out["arms"]["real"]
    assert "vs_best_classic" not in out["arms"]["oversample"]
    gan = out["arms"]["gan:acgan"]
    assert "accuracy" not in gan["vs_baseline"] and "recall/2" in gan["vs_best_classic"]
    g = gan["vs_baseline"]["balanced_accuracy"]
    expected = np.mean(
        [balanced_accuracy_score(y, arms["gan:acgan"][0][s]) for s in range(2)]
    ) - np.mean([balanced_accuracy_score(y, arms["real"][0][s]) for s in range(2)])
    assert g["diff"] == pytest.approx(expected)
    assert gan["verdict"].startswith("gan:acgan: ") and "over real only" in gan["verdict"]
    assert "from oversample" in gan["verdict"] or "than oversample" in gan["verdict"]
    assert (out["n_seeds"], out["n_test_images"], out["n_test_groups"]) == (2, 60, 12)


def test_audit_arms_refuses_accuracy_and_a_missing_baseline():
    y, groups, arms = _three_arms()
    with pytest.raises(ValueError, match="never reported in plain accuracy"):
        audit_arms(y, groups, arms, 3, "accuracy", "accuracy", 10, seed=0)
    with pytest.raises(ValueError, match="expected the baseline arm 'real'"):
        audit_arms(y, groups, {"oversample": arms["oversample"]}, 3, "macro_f1", "x", 10, 0)
    with pytest.raises(ValueError, match="expected the same seeds for every arm"):
        one_seed = (arms["real"][0][:1], arms["real"][1][:1])
        audit_arms(y, groups, {**arms, "real": one_seed}, 3, "macro_f1", "x", 10, 0)

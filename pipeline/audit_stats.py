"""Statistics of the downstream audit: metrics, patient bootstrap, paired gains, verdicts.

Shapes: N test images, K classes, S seeds (one trained classifier per seed), G test patients,
R bootstrap resamples.

Metrics are computed with NumPy (a confusion matrix and the rank form of the AUROC) because the
bootstrap calls them thousands of times; tests check every number against scikit-learn.
Intervals resample test *patients* (cluster bootstrap), never single images: images of one
patient are correlated, so an image bootstrap would give intervals that are too narrow.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
from scipy.stats import binomtest, rankdata
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

MetricFn = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], "float | Mapping[str, float]"]


class LeakageError(ValueError):
    """A test image also sits in a GAN's training set; the audit must not report."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap interval."""

    point: float
    lo: float
    hi: float
    n_used: int  # resamples where the metric was defined
    n_boot: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PairedDifference:
    """Gain of arm B over arm A on one metric (a fraction, not points), same cases and seeds."""

    metric: str
    diff: float  # mean over seeds of metric(B) - metric(A)
    lo: float
    hi: float
    p_bootstrap: float  # two-sided paired bootstrap p-value for diff == 0
    p_mcnemar: float  # exact McNemar on correctness, discordant pairs pooled over seeds
    n_b_better: int  # discordant cases: B right, A wrong (summed over seeds)
    n_a_better: int  # discordant cases: A right, B wrong (summed over seeds)
    n_used: int
    n_boot: int

    def as_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- point metrics


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 confusion matrix, rows = true class, columns = predicted class."""
    flat = y_true.astype(np.int64) * num_classes + y_pred.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, -1)


def one_vs_rest_auroc(y_true: np.ndarray, scores: np.ndarray, cls: int) -> float:
    """AUROC of `scores` (N,) for class `cls` against the rest; NaN when one side is empty.

    Mann-Whitney form with average ranks for ties, equal to the trapezoidal ROC area that
    sklearn.metrics.roc_auc_score computes.
    """
    pos = y_true == cls
    n_pos = int(pos.sum())
    n_neg = pos.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan

    ranks = rankdata(scores)  # (N,) float64, ties get their average rank
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, NaN where den == 0."""
    out = np.full(num.shape, math.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray | None, num_classes: int
) -> dict[str, float]:
    """Flat dict of imbalance-aware metrics for one classifier on one test set.

    Args:
        y_true, y_pred: (N,) int class indices in 0..K-1.
        probs: (N, K) class probabilities; None skips the AUROC keys (faster in the bootstrap).
    Returns:
        balanced_accuracy, macro_f1, auroc (macro one-vs-rest), then per class k
        recall/k (sensitivity), specificity/k, auroc/k, and accuracy (secondary: it rewards
        predicting the majority class). Undefined values are NaN (class absent from y_true).
        balanced_accuracy averages recall over classes present in y_true, macro_f1 over classes
        present in y_true or y_pred, as sklearn's defaults do.
    """
    cm = confusion_counts(y_true, y_pred, num_classes)  # (K, K)
    tp = np.diag(cm).astype(np.float64)
    n_true, n_pred, total = cm.sum(1), cm.sum(0), cm.sum()

    # per-class rates from the confusion matrix
    recall = _safe_ratio(tp, n_true)
    specificity = _safe_ratio(total - n_true - n_pred + tp, total - n_true)
    f1 = _safe_ratio(2 * tp, n_true + n_pred)
    out = {
        "balanced_accuracy": float(np.nanmean(recall)) if (n_true > 0).any() else math.nan,
        "macro_f1": float(np.nanmean(f1)) if total > 0 else math.nan,
    }

    # one-vs-rest AUROC; the macro mean is undefined when any class is
    if probs is not None:
        aurocs = [one_vs_rest_auroc(y_true, probs[:, k], k) for k in range(num_classes)]
        out["auroc"] = float(np.mean(aurocs))
        out.update({f"auroc/{k}": a for k, a in enumerate(aurocs)})

    out.update({f"recall/{k}": float(r) for k, r in enumerate(recall)})
    out.update({f"specificity/{k}": float(s) for k, s in enumerate(specificity)})
    out["accuracy"] = float(tp.sum() / total) if total > 0 else math.nan
    return out


def metric_names(num_classes: int) -> list[str]:
    """Keys of classification_metrics with probabilities, in its order."""
    per_class = [f"{m}/{k}" for m in ("auroc", "recall", "specificity") for k in range(num_classes)]
    return ["balanced_accuracy", "macro_f1", "auroc", *per_class, "accuracy"]


# ---------------------------------------------------------------- bootstrap


def _check_inputs(
    y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray | None, groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate shapes; return predictions as (S, N) and probabilities as (S, N, K) or None."""
    n = len(y_true)
    preds = np.atleast_2d(y_pred)
    if preds.shape[1] != n or len(groups) != n:
        raise ValueError(
            f"expected y_pred (N,) or (S, N) and groups (N,) with N={n} like y_true, got "
            f"y_pred {np.shape(y_pred)} and groups {np.shape(groups)}; pass one row per seed"
        )
    if probs is None:
        return preds, None

    probs = np.asarray(probs)
    probs = probs[None] if probs.ndim == 2 else probs
    if probs.shape[:2] != preds.shape:
        raise ValueError(
            f"expected probs (N, K) or (S, N, K) matching y_pred {preds.shape}, got "
            f"{np.shape(probs)}; pass the softmax of the same runs as y_pred"
        )
    return preds, probs


def group_resamples(groups: np.ndarray, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Yield R index arrays, each drawing G patients with replacement with all their images.

    The same (groups, n_boot, seed) yields the same resamples, so arms scored separately are
    still paired.
    """
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
    rng = np.random.default_rng(seed)

    for _ in range(n_boot):
        drawn = rng.integers(0, len(members), size=len(members))  # (G,)
        yield np.concatenate([members[g] for g in drawn])


def _as_metric_dict(value: float | Mapping[str, float]) -> dict[str, float]:
    """A metric function may return one float (named 'value') or a mapping of floats."""
    if isinstance(value, Mapping):
        return {k: float(v) for k, v in value.items()}
    return {"value": float(value)}


def _seed_mean(
    metric_fn: MetricFn, y_true: np.ndarray, preds: np.ndarray, probs: np.ndarray | None
) -> dict[str, float]:
    """Metric dict averaged over the S seeds (NaN if any seed is NaN)."""
    per_seed = [
        _as_metric_dict(metric_fn(y_true, preds[s], None if probs is None else probs[s]))
        for s in range(len(preds))
    ]
    return {k: float(np.mean([d[k] for d in per_seed])) for k in per_seed[0]}


def _percentile_interval(values: np.ndarray, alpha: float) -> tuple[float, float, int]:
    """(lo, hi, n_used) over the finite values; NaN bounds when none is finite."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan, 0
    lo, hi = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi), int(finite.size)


def bootstrap_by_group(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    probs: np.ndarray | None,
    groups: np.ndarray,
    metric_fn: MetricFn,
    n_boot: int,
    seed: int,
    alpha: float = 0.05,
) -> dict[str, Interval]:
    """Cluster bootstrap over test patients: point estimate and percentile interval per metric.

    Args:
        y_pred: (N,) or (S, N); with S seeds each resample averages the metric over seeds.
        probs: (N, K) or (S, N, K), or None when metric_fn needs no probabilities.
        groups: (N,) patient ids; patients are resampled with replacement, with all their images.
        metric_fn: (y_true, y_pred, probs) -> float or {name: float}, e.g.
            functools.partial(classification_metrics, num_classes=K). A float is named 'value'.
    Returns:
        {name: Interval}. A resample where a metric is undefined (NaN, e.g. AUROC or recall of a
        class with no patient drawn) is skipped for that metric; Interval.n_used counts the rest.
    """
    preds, probs = _check_inputs(y_true, y_pred, probs, groups)
    point = _seed_mean(metric_fn, y_true, preds, probs)

    # the metric on every resample of patients, averaged over seeds
    rows = []
    for idx in group_resamples(groups, n_boot, seed):
        sub_probs = None if probs is None else probs[:, idx]
        rows.append(_seed_mean(metric_fn, y_true[idx], preds[:, idx], sub_probs))

    # one percentile interval per metric over the resamples where it was defined
    out = {}
    for name, value in point.items():
        lo, hi, n_used = _percentile_interval(np.array([r[name] for r in rows]), alpha)
        out[name] = Interval(value, lo, hi, n_used, n_boot)
        if n_used < n_boot:
            log.info("%s: %d of %d resamples defined", name, n_used, n_boot)
    return out


# ---------------------------------------------------------------- paired comparison


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[float, int, int]:
    """Exact McNemar test on paired correctness (S, N) bool, discordant pairs pooled over seeds.

    Returns (two-sided p-value, n_b_better, n_a_better). Limitations: pooling seeds counts the
    same test image once per seed, so the p-value is too small when seeds agree closely; the
    paired bootstrap p-value, which resamples patients, is the one to trust.
    """
    n_b_better = int(np.sum(correct_b & ~correct_a))
    n_a_better = int(np.sum(correct_a & ~correct_b))
    n_disc = n_b_better + n_a_better
    if n_disc == 0:
        return 1.0, 0, 0
    return float(binomtest(n_b_better, n_disc, 0.5).pvalue), n_b_better, n_a_better


def _bootstrap_p_value(diffs: np.ndarray) -> float:
    """Two-sided paired bootstrap p-value for a zero difference, with the +1 correction."""
    n = diffs.size
    if n == 0:
        return math.nan
    tail = min(int(np.sum(diffs <= 0)), int(np.sum(diffs >= 0)))
    return float(min(1.0, 2 * (tail + 1) / (n + 1)))


@dataclass(frozen=True)
class MetricTable:
    """Seed-averaged metrics of several arms on the full test set and on shared resamples.

    Every arm is scored on the *same* resamples of patients, so row r of two arms is a paired
    draw: their difference is the paired bootstrap of the gain.
    """

    arms: tuple[str, ...]
    metrics: tuple[str, ...]
    num_classes: int
    point: np.ndarray  # (A, M) float64, metric on all test images, mean over seeds
    boot: np.ndarray  # (A, R, M) float64, NaN where a metric is undefined on a resample

    def interval(self, arm: str, metric: str, alpha: float = 0.05) -> Interval:
        """Point estimate and percentile interval of one arm's metric."""
        a, m = self.arms.index(arm), self.metrics.index(metric)
        lo, hi, n_used = _percentile_interval(self.boot[a, :, m], alpha)
        return Interval(float(self.point[a, m]), lo, hi, n_used, self.boot.shape[1])

    def difference(self, arm_a: str, arm_b: str, metric: str, alpha: float = 0.05) -> tuple:
        """(diff, lo, hi, p_bootstrap, n_used) of metric(B) - metric(A) over paired resamples."""
        a, b = self.arms.index(arm_a), self.arms.index(arm_b)
        m = self.metrics.index(metric)
        diffs = self.boot[b, :, m] - self.boot[a, :, m]  # (R,)
        lo, hi, n_used = _percentile_interval(diffs, alpha)
        diff = float(self.point[b, m] - self.point[a, m])
        return diff, lo, hi, _bootstrap_p_value(diffs[np.isfinite(diffs)]), n_used


def metric_table(
    y_true: np.ndarray,
    arms: Mapping[str, tuple[np.ndarray, np.ndarray | None]],
    groups: np.ndarray,
    num_classes: int,
    n_boot: int,
    seed: int,
) -> MetricTable:
    """Score every arm on the full test set and on n_boot shared resamples of patients.

    Args:
        arms: {name: (preds (S, N) or (N,), probs (S, N, K), (N, K) or None)}; all arms must
            hold the same seeds in the same order. Without probs for every arm the AUROC keys
            are left out.
    """
    checked = {name: _check_inputs(y_true, p, q, groups) for name, (p, q) in arms.items()}
    shapes = {name: p.shape for name, (p, _) in checked.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(
            f"expected the same seeds for every arm, got prediction shapes {shapes}; train "
            "every arm on every seed"
        )
    with_probs = all(q is not None for _, q in checked.values())
    names = [m for m in metric_names(num_classes) if with_probs or not m.startswith("auroc")]
    runs = [(p, q if with_probs else None) for p, q in checked.values()]
    fn = partial(classification_metrics, num_classes=num_classes)

    def score(idx: np.ndarray) -> np.ndarray:
        """(A, M) seed-mean metrics of every arm on the test images idx."""
        rows = []
        for preds, probs in runs:
            sub_probs = None if probs is None else probs[:, idx]
            values = _seed_mean(fn, y_true[idx], preds[:, idx], sub_probs)
            rows.append([values[m] for m in names])
        return np.array(rows)

    # the full test set, then every resample of patients scored for all arms at once
    point = score(np.arange(len(y_true)))
    resamples = group_resamples(groups, n_boot, seed)
    bar = tqdm(resamples, total=n_boot, desc="bootstrap", unit="resample", leave=False)
    boot = np.stack([score(idx) for idx in bar], axis=1)  # (A, R, M)
    return MetricTable(tuple(arms), tuple(names), num_classes, point, boot)


def _check_gain_metric(metric: str, num_classes: int) -> None:
    """Refuse plain accuracy and unknown names for a gain."""
    valid = [m for m in metric_names(num_classes) if m != "accuracy"]
    if metric not in valid:
        raise ValueError(
            f"expected metric in {valid}, got {metric!r}; gains are never reported in plain "
            "accuracy, which rewards predicting the majority class"
        )


def table_to_paired(
    table: MetricTable,
    y_true: np.ndarray,
    preds: Mapping[str, np.ndarray],
    arm_a: str,
    arm_b: str,
    metric: str,
    alpha: float = 0.05,
) -> PairedDifference:
    """PairedDifference of arm B over arm A from a MetricTable and the arms' predictions (S, N)."""
    _check_gain_metric(metric, table.num_classes)
    diff, lo, hi, p_boot, n_used = table.difference(arm_a, arm_b, metric, alpha)
    pa, pb = np.atleast_2d(preds[arm_a]), np.atleast_2d(preds[arm_b])
    p_mc, n_b, n_a = mcnemar_exact(pa == y_true, pb == y_true)
    return PairedDifference(
        metric, diff, lo, hi, p_boot, p_mc, n_b, n_a, n_used, table.boot.shape[1]
    )


def paired_difference(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    probs_a: np.ndarray | None,
    pred_b: np.ndarray,
    probs_b: np.ndarray | None,
    groups: np.ndarray,
    metric: str,
    num_classes: int,
    n_boot: int,
    seed: int,
    alpha: float = 0.05,
) -> PairedDifference:
    """Gain of arm B over arm A on `metric`, paired over the same test images and seeds.

    Args:
        pred_a, pred_b: (S, N) or (N,) predictions; row s of A and of B share seed s.
        probs_a, probs_b: (S, N, K) or (N, K) class probabilities (needed for auroc keys only).
        metric: a key of classification_metrics except 'accuracy', e.g. 'balanced_accuracy',
            'macro_f1', 'auroc', 'recall/1'.
    Returns:
        diff (fraction) = mean over seeds of metric(B) - metric(A); its interval from one
        resample of patients applied to both arms and every seed; paired p-values.
    """
    _check_gain_metric(metric, num_classes)
    if metric.startswith("auroc") and (probs_a is None or probs_b is None):
        raise ValueError(f"expected probs_a and probs_b for {metric!r}, got None; pass softmaxes")

    # drop the probabilities when the metric does not need them: the bootstrap runs faster
    keep = metric.startswith("auroc")
    arms = {"a": (pred_a, probs_a if keep else None), "b": (pred_b, probs_b if keep else None)}
    table = metric_table(y_true, arms, groups, num_classes, n_boot, seed)
    return table_to_paired(table, y_true, {"a": pred_a, "b": pred_b}, "a", "b", metric, alpha)


# ---------------------------------------------------------------- the whole audit


CLASSICAL_ARMS = ("classic", "oversample", "class_weight")


def _best_classic(table: MetricTable, classical: tuple[str, ...], metric: str) -> str | None:
    """The classical arm with the highest point value of `metric`, or None when none ran.

    Limitations: the choice is made on the test set, which flatters the classical baseline
    slightly; that makes a GAN arm's gain over it conservative, not optimistic.
    """
    present = [a for a in classical if a in table.arms]
    if not present:
        return None
    m = table.metrics.index(metric)
    return max(present, key=lambda a: table.point[table.arms.index(a), m])


def audit_arms(
    y_true: np.ndarray,
    groups: np.ndarray,
    arms: Mapping[str, tuple[np.ndarray, np.ndarray | None]],
    num_classes: int,
    verdict_metric: str,
    verdict_label: str,
    n_boot: int,
    seed: int,
    alpha: float = 0.05,
    baseline: str = "real",
    classical: tuple[str, ...] = CLASSICAL_ARMS,
) -> dict:
    """Metrics with intervals, paired gains and one verdict per arm, as a JSON-ready dict.

    Args:
        y_true, groups: (N,) test labels and patient ids.
        arms: {arm name: (preds (S, N), probs (S, N, K))}, every arm on the same S seeds.
        verdict_metric: the metric the sentences speak of, e.g. 'recall/2' or
            'balanced_accuracy'; never 'accuracy'.
        verdict_label: how the sentence names it, e.g. 'minority recall'.
        classical: arm names that count as classical; the best of them (by verdict_metric)
            is the second reference every other arm is compared with.
    Returns:
        {"baseline", "best_classic" (name or None), "verdict_metric", "verdict_label",
        "metrics" (names), "n_boot", "alpha", "n_seeds", "n_test_images", "n_test_groups",
        "arms": {arm: {"metrics": {metric: Interval.as_dict()},
                       "vs_baseline": {metric: PairedDifference.as_dict()},
                       "vs_best_classic": {...} (non-classical arms only),
                       "verdict": str}}}.
        Values are fractions (0.081 = 8.1 points); 'vs_*' leave out plain accuracy.
    """
    _check_gain_metric(verdict_metric, num_classes)
    if baseline not in arms:
        raise ValueError(f"expected the baseline arm {baseline!r} among {sorted(arms)}; run it")

    # one table of paired resamples serves every interval and every gain
    table = metric_table(y_true, arms, groups, num_classes, n_boot, seed)
    preds = {name: p for name, (p, _) in arms.items()}
    gains = [m for m in table.metrics if m != "accuracy"]
    best = _best_classic(table, classical, verdict_metric)

    def compare(a: str, b: str) -> dict:
        return {m: table_to_paired(table, y_true, preds, a, b, m, alpha).as_dict() for m in gains}

    # per arm: intervals, gains over the baseline and the best classical arm, a sentence
    out_arms = {}
    for arm in table.arms:
        entry = {"metrics": {m: table.interval(arm, m, alpha).as_dict() for m in table.metrics}}
        if arm != baseline:
            entry["vs_baseline"] = compare(baseline, arm)
        if best is not None and arm not in classical and arm != baseline:
            entry["vs_best_classic"] = compare(best, arm)
        entry["verdict"] = _arm_verdict(arm, entry, baseline, best, verdict_metric, verdict_label)
        out_arms[arm] = entry

    return {
        "baseline": baseline,
        "best_classic": best,
        "verdict_metric": verdict_metric,
        "verdict_label": verdict_label,
        "metrics": list(table.metrics),
        "n_boot": n_boot,
        "alpha": alpha,
        "n_seeds": int(np.atleast_2d(next(iter(preds.values()))).shape[0]),
        "n_test_images": int(len(y_true)),
        "n_test_groups": int(len(np.unique(groups))),
        "arms": out_arms,
    }


def _arm_verdict(
    arm: str, entry: dict, baseline: str, best: str | None, metric: str, label: str
) -> str:
    """The plain sentence of one arm from its audit entry."""
    if arm == baseline:
        value = entry["metrics"][metric]
        return (
            f"{arm}: the reference, {label} {100 * value['point']:.1f} % "
            f"[{100 * value['lo']:.1f}, {100 * value['hi']:.1f}]."
        )
    g = entry["vs_baseline"][metric]
    vs = entry.get("vs_best_classic", {}).get(metric)
    vs_tuple = None if vs is None else (best, vs["diff"], vs["lo"], vs["hi"])
    base_label = "real only" if baseline == "real" else baseline
    return verdict_sentence(arm, label, g["diff"], g["lo"], g["hi"], vs_tuple, base_label)


# ---------------------------------------------------------------- verdicts and leakage


def _judge(lo: float, hi: float) -> str:
    """'gain', 'loss' or 'tie' from where the interval sits relative to zero."""
    if lo > 0:
        return "gain"
    if hi < 0:
        return "loss"
    return "tie"


def _bracket(lo: float, hi: float) -> str:
    """An interval of fractions written in signed points: '[+3.0, +13.2]'."""
    return f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"


def verdict_sentence(
    arm: str,
    metric: str,
    diff: float,
    lo: float,
    hi: float,
    vs_best_classic: tuple[str, float, float, float] | None = None,
    baseline_label: str = "real only",
) -> str:
    """One plain sentence on an arm's gain over real only, and its place against classic arms.

    Args:
        metric: a readable metric label, e.g. 'minority recall'.
        diff, lo, hi: the gain over real only and its interval, as fractions (0.081 = 8.1 points).
        vs_best_classic: (name, diff, lo, hi) of this arm against the best classical arm, or None
            when the arm is itself classical.
        baseline_label: how the sentence names the reference arm.
    Example:
        "real + ACGAN: +8.1 points minority recall [+3.0, +13.2] over real only; not
        distinguishable from oversampling."
    """
    if not all(map(math.isfinite, (diff, lo, hi))):
        return f"{arm}: the gain in {metric} over {baseline_label} could not be estimated."

    # the gain over the baseline, with a note when the interval straddles zero
    head = f"{arm}: {100 * diff:+.1f} points {metric} {_bracket(lo, hi)} over {baseline_label}"
    if _judge(lo, hi) == "tie":
        head += f" (not distinguishable from {baseline_label})"
    if vs_best_classic is None:
        return head + "."

    # the comparison with the best classical arm
    name, d, low, high = vs_best_classic
    tails = {
        "tie": f"not distinguishable from {name}",
        "gain": f"better than {name} by {100 * d:.1f} points {_bracket(low, high)}",
        "loss": f"worse than {name} by {-100 * d:.1f} points {_bracket(low, high)}",
    }
    return f"{head}; {tails[_judge(low, high)]}."


def assert_no_leakage(test_hashes: np.ndarray, gan_train_hashes: np.ndarray) -> None:
    """Raise LeakageError when any test image's hash is in the GAN's training set."""
    leaked = sorted(set(map(str, test_hashes)) & set(map(str, gan_train_hashes)))
    if leaked:
        raise LeakageError(
            f"expected no test image in the GAN's training set, got {len(leaked)} of "
            f"{len(test_hashes)} test images there (first hash {leaked[0][:12]}...); the audit "
            "refuses to report: train the GAN on the train split only and rerun"
        )
    log.info(
        "leakage check: none of %d test hashes in %d GAN training hashes",
        len(test_hashes),
        len(gan_train_hashes),
    )

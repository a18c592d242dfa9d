"""Sample-quality metrics for generators, as pure functions on NumPy arrays.

Shape letters: N real samples, M generated samples, D feature width, K classes.
Features are float arrays (N, D) from one backbone; probabilities are softmax rows (N, K).
Every function here is deterministic given its ``seed``; nothing touches images or models.

Sources: Inception Score (Salimans et al. 2016); Mode Score (Che et al. 2017, in the form of
Xu et al. 2018); FID (Heusel et al. 2017); KID (Binkowski et al. 2018); the 1-NN two-sample test
(Lopez-Paz & Oquab 2017; Xu et al. 2018); precision/recall (Kynkaanniemi et al. 2019);
density/coverage (Naeem et al. 2020).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from scipy.stats import binomtest

log = logging.getLogger(__name__)

# Rows of the pooled set compared per distance block; 2048 x 4096 float64 blocks are 64 MiB.
_CHUNK = 2048


# ---------------------------------------------------------------------------------------------
# Input checks


def _check_features(name: str, feats: np.ndarray, min_rows: int = 2) -> np.ndarray:
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2:
        raise ValueError(f"expected {name} features of shape (N, D), got shape {feats.shape}")
    if len(feats) < min_rows:
        raise ValueError(f"expected at least {min_rows} {name} samples, got {len(feats)}")
    if not np.all(np.isfinite(feats)):
        raise ValueError(f"{name} features hold NaN or inf; check the backbone's input range")
    return feats


def _check_pair(feats_r: np.ndarray, feats_g: np.ndarray, min_rows: int = 2) -> tuple:
    feats_r = _check_features("real", feats_r, min_rows)
    feats_g = _check_features("generated", feats_g, min_rows)
    if feats_r.shape[1] != feats_g.shape[1]:
        raise ValueError(
            f"expected real and generated features of one width, got D={feats_r.shape[1]} "
            f"and D={feats_g.shape[1]}; extract both with the same backbone"
        )
    return feats_r, feats_g


def _check_probs(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) == 0:
        raise ValueError(f"expected probabilities of shape (N, K) with N >= 1, got {probs.shape}")
    if np.any(probs < 0) or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("expected each row of probabilities to be >= 0 and sum to 1 (softmax)")
    return probs


# ---------------------------------------------------------------------------------------------
# Classifier-based scores


def _kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p_i || q_i) in nats per row, with 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return terms.sum(axis=-1)


def inception_score(probs: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))) over one split of softmax rows (N, K); in [1, K].

    Limitations: computed on the whole set, not the 10-split average of Salimans et al.; the
    bootstrap interval replaces the split standard deviation.
    """
    probs = _check_probs(probs)
    marginal = probs.mean(axis=0)  # (K,)
    return float(np.exp(_kl_rows(probs, marginal[None, :]).mean()))


def mode_score(probs: np.ndarray, real_label_marginal: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y)) - KL(p(y) || p*(y))) with p* the real label marginal (K,).

    The Inception Score penalised by how far the generated label marginal p(y) lies from the
    real one (Che et al. 2017, in the form written by Xu et al. 2018). Classes that p* gives
    zero mass while p(y) does not make the score 0.
    """
    probs = _check_probs(probs)
    p_star = np.asarray(real_label_marginal, dtype=np.float64)
    if p_star.shape != (probs.shape[1],) or np.any(p_star < 0):
        raise ValueError(
            f"expected a real label marginal of shape ({probs.shape[1]},) with entries >= 0, "
            f"got shape {p_star.shape}"
        )
    p_star = p_star / p_star.sum()
    marginal = probs.mean(axis=0)  # (K,)
    log_is = _kl_rows(probs, marginal[None, :]).mean()
    return float(np.exp(log_is - _kl_rows(marginal, p_star)))


# ---------------------------------------------------------------------------------------------
# Frechet distance


def features_to_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), float64."""
    feats = _check_features("input", feats)
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def stats_to_fid(
    mu_r: np.ndarray, sigma_r: np.ndarray, mu_g: np.ndarray, sigma_g: np.ndarray, eps: float = 1e-6
) -> float:
    """FID from Gaussian statistics with ``scipy.linalg.sqrtm``; always finite and >= 0.

    ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^1/2), taking the real part of the matrix
    square root. When the product is singular (N < D) the square root can come back non-finite
    or with a large imaginary part; then ``eps`` is added to both diagonals and it is retried.
    """
    diff = mu_r - mu_g
    covmean = scipy.linalg.sqrtm(sigma_r @ sigma_g)
    if not np.all(np.isfinite(covmean)) or np.abs(np.imag(covmean)).max() > 1e-3:
        log.warning("singular covariance product; adding eps=%g to the diagonals", eps)
        offset = eps * np.eye(len(mu_r))
        covmean = scipy.linalg.sqrtm((sigma_r + offset) @ (sigma_g + offset))
    trace_sqrt = float(np.real(np.trace(covmean)))
    value = diff @ diff + np.trace(sigma_r) + np.trace(sigma_g) - 2 * trace_sqrt
    return max(float(value), 0.0)


def _cov_factor(feats: np.ndarray) -> np.ndarray:
    """A factor L with L @ L.T equal to the covariance of feats (N, D); (D, min(N, D))."""
    centred = feats - feats.mean(axis=0)  # (N, D)
    if len(feats) <= feats.shape[1]:
        return centred.T / np.sqrt(len(feats) - 1)  # (D, N)

    # N > D: the symmetric square root from eigh, negative round-off clipped to 0.
    evals, evecs = np.linalg.eigh(np.cov(feats, rowvar=False))
    return evecs * np.sqrt(np.clip(evals, 0.0, None))  # (D, D)


def fid(feats_r: np.ndarray, feats_g: np.ndarray) -> float:
    """Frechet Inception Distance between real (N, D) and generated (M, D) features; >= 0.

    Tr((S_r S_g)^1/2) equals the sum of the square roots of the eigenvalues of
    S_r^1/2 S_g S_r^1/2, which is the nuclear norm (sum of singular values) of L_r^T L_g for
    any factors S = L L^T. With L the centred data over sqrt(N - 1) when N <= D this is exact,
    real and finite for rank-deficient covariances (N < D), with no eps needed, and costs one
    SVD of at most min(N, D) x min(M, D).
    """
    feats_r, feats_g = _check_pair(feats_r, feats_g)
    diff = feats_r.mean(axis=0) - feats_g.mean(axis=0)  # (D,)
    factor_r, factor_g = _cov_factor(feats_r), _cov_factor(feats_g)
    trace_sqrt = np.linalg.svd(factor_r.T @ factor_g, compute_uv=False).sum()
    trace_r = np.square(factor_r).sum()  # Tr(S_r)
    trace_g = np.square(factor_g).sum()
    return max(float(diff @ diff + trace_r + trace_g - 2 * trace_sqrt), 0.0)


# ---------------------------------------------------------------------------------------------
# Kernel Inception Distance


def polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The KID kernel k(x, y) = (x . y / D + 1)^3 between rows of a (N, D) and b (M, D)."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def kernels_to_mmd2(k_rr: np.ndarray, k_gg: np.ndarray, k_rg: np.ndarray) -> float:
    """Unbiased MMD^2 from kernel matrices (N, N), (M, M), (N, M); diagonals left out."""
    n, m = len(k_rr), len(k_gg)
    within_r = (k_rr.sum() - np.trace(k_rr)) / (n * (n - 1))
    within_g = (k_gg.sum() - np.trace(k_gg)) / (m * (m - 1))
    return float(within_r + within_g - 2 * k_rg.mean())


def resampled_mmd2(
    k_rr: np.ndarray, k_gg: np.ndarray, k_rg: np.ndarray, idx_r: np.ndarray, idx_g: np.ndarray
) -> float:
    """Unbiased MMD^2 of a bootstrap resample, from the full sets' kernel matrices.

    A resample repeats samples; a pair of two copies of one sample would add k(x, x) to the
    within-set means and bias MMD^2 upwards by about (k(x, x) - k(x, y)) / N, so such pairs
    are left out along with the diagonal. With ``idx = arange(N)`` this is ``kernels_to_mmd2``.
    """
    means = []
    for kernel, idx in ((k_rr, idx_r), (k_gg, idx_g)):
        sub = kernel[np.ix_(idx, idx)]  # (n, n)
        distinct = idx[:, None] != idx[None, :]
        means.append(sub[distinct].mean())
    return float(means[0] + means[1] - 2 * k_rg[np.ix_(idx_r, idx_g)].mean())


@dataclass(frozen=True)
class KidResult:
    mean: float  # mean unbiased MMD^2 over subsets
    std: float  # its standard deviation over subsets
    subset_size: int
    num_subsets: int


def kid(
    feats_r: np.ndarray,
    feats_g: np.ndarray,
    subset_size: int = 1000,
    num_subsets: int = 100,
    seed: int = 0,
) -> KidResult:
    """Kernel Inception Distance: unbiased MMD^2 with the cubic kernel, averaged over subsets.

    Each subset draws ``min(subset_size, N, M)`` rows of each set without replacement. KID is
    unbiased, so unlike FID its expected value does not move with N; it can be slightly < 0.
    """
    feats_r, feats_g = _check_pair(feats_r, feats_g)
    size = min(subset_size, len(feats_r), len(feats_g))
    rng = np.random.default_rng(seed)

    # Kernels of the full sets once when they fit (<= 4096 rows, <= 128 MiB each); subsets
    # then only index them. Larger sets compute each subset's kernels afresh.
    small = max(len(feats_r), len(feats_g)) <= 4096
    if small:
        k_rr_all = polynomial_kernel(feats_r, feats_r)  # (N, N)
        k_gg_all = polynomial_kernel(feats_g, feats_g)  # (M, M)
        k_rg_all = polynomial_kernel(feats_r, feats_g)  # (N, M)

    values = []
    for _ in range(num_subsets):
        idx_r = np.sort(rng.choice(len(feats_r), size, replace=False))
        idx_g = np.sort(rng.choice(len(feats_g), size, replace=False))
        if small:
            kernels = (
                k_rr_all[np.ix_(idx_r, idx_r)],
                k_gg_all[np.ix_(idx_g, idx_g)],
                k_rg_all[np.ix_(idx_r, idx_g)],
            )
        else:
            sub_r, sub_g = feats_r[idx_r], feats_g[idx_g]
            kernels = (
                polynomial_kernel(sub_r, sub_r),
                polynomial_kernel(sub_g, sub_g),
                polynomial_kernel(sub_r, sub_g),
            )
        values.append(kernels_to_mmd2(*kernels))
    return KidResult(float(np.mean(values)), float(np.std(values)), size, num_subsets)


# ---------------------------------------------------------------------------------------------
# Nearest neighbours


def _distance_blocks(a: np.ndarray, b: np.ndarray) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (row offset, Euclidean distances of a block of a's rows to all of b) in float64."""
    tb = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float64))
    for start in range(0, len(a), _CHUNK):
        ta = torch.from_numpy(np.ascontiguousarray(a[start : start + _CHUNK], dtype=np.float64))
        yield start, torch.cdist(ta, tb, compute_mode="donot_use_mm_for_euclid_dist")


def nearest_distances(query: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Distance (Q,) from each query row to its nearest row of ref."""
    out = np.empty(len(query))
    for start, dist in _distance_blocks(query, ref):
        out[start : start + len(dist)] = dist.min(dim=1).values.numpy()
    return out


def knn_radii(feats: np.ndarray, k: int) -> np.ndarray:
    """Distance (N,) from each row to its k-th nearest other row of the same set."""
    if not 1 <= k < len(feats):
        raise ValueError(f"expected 1 <= k < N for k-NN radii, got k={k} with N={len(feats)}")
    out = np.empty(len(feats))
    for start, dist in _distance_blocks(feats, feats):
        rows = torch.arange(len(dist))
        dist[rows, rows + start] = torch.inf  # leave each sample out of its own neighbours
        out[start : start + len(dist)] = dist.topk(k, dim=1, largest=False).values[:, -1].numpy()
    return out


@dataclass(frozen=True)
class OneNNResult:
    accuracy: float  # leave-one-out 1-NN accuracy over the pooled 2n; 0.5 is ideal
    real_accuracy: float  # share of real samples whose nearest neighbour is real
    fake_accuracy: float  # share of generated samples whose nearest neighbour is generated
    p_value: float  # two-sided binomial test of the correct count against 0.5
    n: int  # samples per side
    correct: np.ndarray  # (2n,) bool, real rows first; for bootstrap intervals


def one_nn_two_sample(feats_r: np.ndarray, feats_g: np.ndarray) -> OneNNResult:
    """Leave-one-out 1-NN two-sample test on n real and n generated samples (Lopez-Paz 2017).

    Each pooled sample is labelled by its nearest other sample. Near 0.5 the sets are
    indistinguishable, near 1 they are separable, well below 0.5 the generated samples sit on
    top of the real ones (copies). Limitations: leave-one-out predictions are not independent,
    so the binomial p-value is approximate.
    """
    feats_r, feats_g = _check_pair(feats_r, feats_g)
    if len(feats_r) != len(feats_g):
        raise ValueError(
            f"expected equal real and generated counts for the 1-NN test, got {len(feats_r)} "
            f"and {len(feats_g)}; subsample the larger set"
        )
    n = len(feats_r)
    pooled = np.concatenate([feats_r, feats_g])  # (2n, D)
    is_real = np.arange(2 * n) < n

    # Nearest other sample of each pooled row; the first index wins exact ties.
    neighbour = np.empty(2 * n, dtype=np.int64)
    for start, dist in _distance_blocks(pooled, pooled):
        rows = torch.arange(len(dist))
        dist[rows, rows + start] = torch.inf
        neighbour[start : start + len(dist)] = dist.argmin(dim=1).numpy()
    correct = is_real[neighbour] == is_real

    p_value = binomtest(int(correct.sum()), 2 * n, 0.5).pvalue
    return OneNNResult(
        float(correct.mean()),
        float(correct[:n].mean()),
        float(correct[n:].mean()),
        float(p_value),
        n,
        correct,
    )


@dataclass(frozen=True)
class ManifoldResult:
    precision: float  # share of generated samples inside the real k-NN manifold
    recall: float  # share of real samples inside the generated k-NN manifold
    density: float  # mean count of real balls holding each generated sample, over k
    coverage: float  # share of real samples whose ball holds at least one generated sample
    k: int
    per_fake_inside: np.ndarray  # (M,) bool
    per_real_inside: np.ndarray  # (N,) bool
    per_fake_density: np.ndarray  # (M,) float, ball count / k
    per_real_covered: np.ndarray  # (N,) bool


def precision_recall_density_coverage(
    feats_r: np.ndarray, feats_g: np.ndarray, k: int = 5
) -> ManifoldResult:
    """k-NN manifold metrics (Kynkaanniemi et al. 2019; Naeem et al. 2020).

    Each sample's ball has the radius of its k-th nearest neighbour within its own set; a point
    is inside a manifold when it lies in at least one ball (distance <= radius).
    """
    feats_r, feats_g = _check_pair(feats_r, feats_g, min_rows=k + 1)
    radii_r = torch.from_numpy(knn_radii(feats_r, k))  # (N,)
    radii_g = torch.from_numpy(knn_radii(feats_g, k))  # (M,)

    # One pass over generated rows: balls of real samples, and real samples in generated balls.
    fake_count = np.empty(len(feats_g))
    real_inside = torch.zeros(len(feats_r), dtype=torch.bool)
    nearest_fake = torch.full((len(feats_r),), torch.inf, dtype=torch.float64)
    for start, dist in _distance_blocks(feats_g, feats_r):  # dist (B, N)
        fake_count[start : start + len(dist)] = (dist <= radii_r[None, :]).sum(dim=1).numpy()
        block_radii = radii_g[start : start + len(dist), None]  # (B, 1)
        real_inside |= (dist <= block_radii).any(dim=0)
        nearest_fake = torch.minimum(nearest_fake, dist.min(dim=0).values)

    covered = (nearest_fake <= radii_r).numpy()
    real_inside = real_inside.numpy()
    return ManifoldResult(
        precision=float((fake_count > 0).mean()),
        recall=float(real_inside.mean()),
        density=float(fake_count.mean() / k),
        coverage=float(covered.mean()),
        k=k,
        per_fake_inside=fake_count > 0,
        per_real_inside=real_inside,
        per_fake_density=fake_count / k,
        per_real_covered=covered,
    )


@dataclass(frozen=True)
class MemorisationResult:
    copy_fraction: float  # share of generated samples closer to train than q of held-out are
    expected_fraction: float  # q: what copy_fraction is for fresh draws of the real data
    threshold: float  # the q-quantile of held-out -> train nearest distances
    distance_ratio: float  # median d(gen, train) / median d(held-out, train)
    heldout_median: float  # median d(held-out, train): the typical distance of unseen data
    train_distance: np.ndarray  # (M,) each generated sample's nearest-train distance
    heldout_distance: np.ndarray  # (M,) each generated sample's nearest-held-out distance


def memorisation(
    feats_gen: np.ndarray,
    feats_train: np.ndarray,
    feats_heldout: np.ndarray,
    quantile: float = 0.05,
) -> MemorisationResult:
    """Compare each generated sample's nearest-train distance with that of unseen real data.

    Held-out real images are fresh draws the generator never saw, so their nearest-train
    distances show how close a new image typically comes to the training set.
    ``copy_fraction``: generated samples nearer to train than the ``quantile`` of those
    distances count as likely copies; a non-memorising generator gives about ``quantile``.
    ``distance_ratio``: the median generated nearest-train distance over the held-out one;
    about 1 for fresh samples, near 0 for copies, above 1 for samples off the data manifold.
    Limitations: both are distances in the backbone's feature space, blind to copies that the
    backbone maps far apart (e.g. flipped images).
    """
    feats_gen = _check_features("generated", feats_gen, 1)
    feats_train = _check_features("train", feats_train, 1)
    feats_heldout = _check_features("held-out", feats_heldout, 1)
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"expected 0 < quantile < 1, got {quantile}")

    # Typical distance of an unseen real image to the training set.
    heldout_to_train = nearest_distances(feats_heldout, feats_train)  # (H,)
    threshold = float(np.quantile(heldout_to_train, quantile))
    heldout_median = float(np.median(heldout_to_train))

    d_train = nearest_distances(feats_gen, feats_train)  # (M,)
    d_held = nearest_distances(feats_gen, feats_heldout)  # (M,)
    ratio = float(np.median(d_train)) / max(heldout_median, np.finfo(np.float64).tiny)
    return MemorisationResult(
        copy_fraction=float((d_train < threshold).mean()),
        expected_fraction=quantile,
        threshold=threshold,
        distance_ratio=ratio,
        heldout_median=heldout_median,
        train_distance=d_train,
        heldout_distance=d_held,
    )


# ---------------------------------------------------------------------------------------------
# Bootstrap


def bootstrap_interval(
    statistic: Callable[..., float],
    sizes: tuple[int, ...],
    num_resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*index_arrays)``.

    For each resample, one index array per entry of ``sizes`` is drawn with replacement
    (independently, so real and generated sets are resampled separately) and passed to
    ``statistic``. Returns the (lo, hi) percentiles at the given confidence.
    """
    if num_resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(
            f"expected num_resamples >= 1 and 0 < confidence < 1, "
            f"got {num_resamples} and {confidence}"
        )
    rng = np.random.default_rng(seed)
    values = np.array(
        [statistic(*(rng.integers(0, size, size) for size in sizes)) for _ in range(num_resamples)]
    )
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)

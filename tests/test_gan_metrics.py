"""Each metric against a direct NumPy/SciPy computation, plus its known fixed points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist
from scipy.stats import binomtest, entropy

from pipeline import gan_metrics as gm

DATA = Path(__file__).resolve().parent / "data"


def _softmax_rows(n: int, k: int, seed: int) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(n, k)) * 2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _gauss(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


@pytest.fixture(scope="module")
def fixture_feats() -> tuple[np.ndarray, np.ndarray]:
    return np.load(DATA / "features_real_64x256.npy"), np.load(DATA / "features_fake_64x256.npy")


# --- Inception Score and Mode Score -----------------------------------------------------------


def test_inception_score_matches_scipy_entropy():
    probs = _softmax_rows(50, 4, seed=0)
    marginal = probs.mean(axis=0)
    expected = np.exp(np.mean([entropy(p, marginal) for p in probs]))
    assert gm.inception_score(probs) == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_inception_score_uniform_is_one_and_confident_balanced_is_k():
    k = 5
    assert gm.inception_score(np.full((40, k), 1 / k)) == pytest.approx(1.0, abs=1e-9)
    one_hot = np.eye(k)[np.arange(40) % k]
    assert gm.inception_score(one_hot) == pytest.approx(k, abs=1e-9)


def test_mode_score_matches_direct_formula():
    probs = _softmax_rows(60, 3, seed=1)
    p_star = np.array([0.5, 0.3, 0.2])
    marginal = probs.mean(axis=0)
    expected = np.exp(np.mean([entropy(p, marginal) for p in probs]) - entropy(marginal, p_star))
    assert gm.mode_score(probs, p_star) == pytest.approx(expected, rel=1e-9, abs=1e-6)
    # With p* equal to the generated marginal the penalty vanishes.
    assert gm.mode_score(probs, marginal) == pytest.approx(gm.inception_score(probs), rel=1e-12)


def test_mode_score_rejects_a_marginal_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"real label marginal of shape \(3,\)"):
        gm.mode_score(_softmax_rows(10, 3, seed=0), np.array([0.5, 0.5]))


def test_probabilities_must_be_softmax_rows():
    with pytest.raises(ValueError, match="sum to 1"):
        gm.inception_score(np.ones((4, 3)))


# --- FID --------------------------------------------------------------------------------------


def _fid_scipy(a: np.ndarray, b: np.ndarray) -> float:
    # The textbook formula with scipy's matrix square root.
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(scipy.linalg.sqrtm(s_a @ s_b))
    return float((mu_a - mu_b) @ (mu_a - mu_b) + np.trace(s_a + s_b - 2 * covmean))


def _fid_eig(a: np.ndarray, b: np.ndarray) -> float:
    # Tr((S_a S_b)^1/2) as the sum of sqrt eigenvalues of S_a^1/2 S_b S_a^1/2.
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s_a)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ev = np.linalg.eigvalsh(root @ s_b @ root)
    trace_sqrt = np.sqrt(np.clip(ev, 0, None)).sum()
    return float((mu_a - mu_b) @ (mu_a - mu_b) + np.trace(s_a) + np.trace(s_b) - 2 * trace_sqrt)


def test_fid_matches_scipy_sqrtm_when_n_exceeds_d():
    real, fake = _gauss(300, 8, seed=0), _gauss(250, 8, seed=1, shift=0.3) * 1.5
    expected = _fid_scipy(real, fake)
    assert gm.fid(real, fake) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    stats = (*gm.features_to_stats(real), *gm.features_to_stats(fake))
    assert gm.stats_to_fid(*stats) == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_fid_of_a_pure_mean_shift_is_its_squared_norm():
    real = _gauss(100, 6, seed=2)
    shift = np.array([1.0, -2.0, 0.5, 0.0, 0.0, 3.0])
    assert gm.fid(real, real + shift) == pytest.approx(shift @ shift, rel=1e-9)


def test_fid_of_a_set_with_itself_is_zero():
    real = _gauss(100, 6, seed=3)
    assert gm.fid(real, real) == pytest.approx(0.0, abs=1e-6)


def test_fid_mixes_both_factor_forms():
    # Real N > D uses the eigh square root, generated N < D the centred data.
    real, fake = _gauss(40, 16, seed=4), _gauss(10, 16, seed=5, shift=0.2)
    assert gm.fid(real, fake) == pytest.approx(_fid_eig(real, fake), rel=1e-6, abs=1e-6)


def test_fid_is_finite_and_exact_when_n_is_below_d(fixture_feats):
    # The fixture pair: N=64 < D=256, rank-deficient covariances.
    real, fake = fixture_feats
    assert real.shape == fake.shape == (64, 256)
    value = gm.fid(real, fake)
    assert np.isfinite(value) and value >= 0
    assert value == pytest.approx(_fid_eig(real, fake), rel=1e-6)
    assert gm.fid(real, real) == pytest.approx(0.0, abs=1e-6)
    assert gm.fid(fake, fake) == pytest.approx(0.0, abs=1e-6)


def test_stats_to_fid_stays_finite_and_non_negative_when_singular(fixture_feats):
    real, fake = fixture_feats
    mu_r, s_r = gm.features_to_stats(real)
    mu_g, s_g = gm.features_to_stats(fake)
    value = gm.stats_to_fid(mu_r, s_r, mu_g, s_g)
    assert np.isfinite(value) and value >= 0
    assert value == pytest.approx(gm.fid(real, fake), rel=1e-6)
    assert gm.stats_to_fid(mu_r, s_r, mu_r, s_r) == pytest.approx(0.0, abs=1e-6)


def test_fid_rejects_features_of_different_widths():
    with pytest.raises(ValueError, match="one width, got D=4 and D=5"):
        gm.fid(_gauss(10, 4, 0), _gauss(10, 5, 1))


def test_fid_rejects_non_finite_features():
    bad = _gauss(10, 4, 0)
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="real features hold NaN"):
        gm.fid(bad, _gauss(10, 4, 1))


# --- KID --------------------------------------------------------------------------------------


def _mmd2_loops(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1) ** 3

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_kid_on_full_subsets_matches_the_unbiased_mmd_by_loops():
    real, fake = _gauss(20, 4, seed=0), _gauss(20, 4, seed=1, shift=0.5)
    res = gm.kid(real, fake, subset_size=100, num_subsets=3, seed=0)
    assert res.subset_size == 20
    assert res.mean == pytest.approx(_mmd2_loops(real, fake), rel=1e-9, abs=1e-9)
    assert res.std == pytest.approx(0.0, abs=1e-9)


def test_kid_subsets_average_per_subset_values():
    real, fake = _gauss(30, 3, seed=2), _gauss(25, 3, seed=3, shift=0.5)
    res = gm.kid(real, fake, subset_size=10, num_subsets=4, seed=7)
    rng = np.random.default_rng(7)
    values = []
    for _ in range(4):
        i = np.sort(rng.choice(30, 10, replace=False))
        j = np.sort(rng.choice(25, 10, replace=False))
        values.append(_mmd2_loops(real[i], fake[j]))
    assert res.mean == pytest.approx(np.mean(values), rel=1e-9, abs=1e-12)
    assert res.std == pytest.approx(np.std(values), rel=1e-6, abs=1e-12)


def test_resampled_mmd2_leaves_out_pairs_of_copies():
    real, fake = _gauss(12, 3, seed=4), _gauss(10, 3, seed=5, shift=0.4)
    kernels = (
        gm.polynomial_kernel(real, real),
        gm.polynomial_kernel(fake, fake),
        gm.polynomial_kernel(real, fake),
    )
    # Without repeats it is the ordinary unbiased estimate.
    plain = gm.resampled_mmd2(*kernels, np.arange(12), np.arange(10))
    assert plain == pytest.approx(gm.kernels_to_mmd2(*kernels), rel=1e-12)

    # With repeats: the mean over pairs of distinct original samples, by loops.
    idx_r, idx_g = np.array([0, 0, 3, 5, 5, 5, 7]), np.array([1, 2, 2, 9])

    def within(x, idx):
        vals = [(x[a] @ x[b] / 3 + 1) ** 3 for a in idx for b in idx if a != b]
        return np.mean(vals)

    cross = np.mean([(real[a] @ fake[b] / 3 + 1) ** 3 for a in idx_r for b in idx_g])
    expected = within(real, idx_r) + within(fake, idx_g) - 2 * cross
    assert gm.resampled_mmd2(*kernels, idx_r, idx_g) == pytest.approx(expected, rel=1e-9)


# --- 1-NN two-sample test ---------------------------------------------------------------------


def _one_nn_direct(real: np.ndarray, fake: np.ndarray) -> tuple[float, float, float, float]:
    pooled = np.concatenate([real, fake])
    is_real = np.arange(len(pooled)) < len(real)
    dist = cdist(pooled, pooled)
    np.fill_diagonal(dist, np.inf)
    correct = is_real[dist.argmin(axis=1)] == is_real
    n = len(real)
    p = binomtest(int(correct.sum()), 2 * n, 0.5).pvalue
    return correct.mean(), correct[:n].mean(), correct[n:].mean(), p


def test_one_nn_matches_a_direct_scipy_computation():
    real, fake = _gauss(40, 3, seed=0), _gauss(40, 3, seed=1, shift=0.7)
    res = gm.one_nn_two_sample(real, fake)
    acc, acc_r, acc_g, p = _one_nn_direct(real, fake)
    assert res.accuracy == pytest.approx(acc, abs=1e-12)
    assert res.real_accuracy == pytest.approx(acc_r, abs=1e-12)
    assert res.fake_accuracy == pytest.approx(acc_g, abs=1e-12)
    assert res.p_value == pytest.approx(p, rel=1e-9)
    assert res.n == 40 and res.correct.shape == (80,)


def test_one_nn_is_near_half_for_one_gaussian():
    res = gm.one_nn_two_sample(_gauss(300, 5, seed=2), _gauss(300, 5, seed=3))
    assert abs(res.accuracy - 0.5) < 0.06
    assert res.p_value > 0.01


def test_one_nn_is_near_one_for_separated_gaussians():
    res = gm.one_nn_two_sample(_gauss(200, 5, seed=4), _gauss(200, 5, seed=5, shift=10.0))
    assert res.accuracy == 1.0
    assert res.p_value < 1e-10


def test_one_nn_is_below_half_when_generated_samples_copy_real_ones():
    real = _gauss(200, 5, seed=6)
    copies = real + 1e-6 * _gauss(200, 5, seed=7)
    res = gm.one_nn_two_sample(real, copies)
    assert res.accuracy < 0.05
    assert res.real_accuracy < 0.05 and res.fake_accuracy < 0.05


def test_one_nn_needs_equal_sample_counts():
    with pytest.raises(ValueError, match="equal real and generated counts.*got 10 and 12"):
        gm.one_nn_two_sample(_gauss(10, 2, 0), _gauss(12, 2, 1))


# --- Precision/recall, density/coverage -------------------------------------------------------


def _manifold_direct(real: np.ndarray, fake: np.ndarray, k: int) -> tuple:
    # Straight from the papers' definitions with full scipy distance matrices.
    d_rr, d_gg, d_rg = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    radius_r = np.sort(d_rr, axis=1)[:, k]  # column 0 is the point itself
    radius_g = np.sort(d_gg, axis=1)[:, k]
    in_real_ball = d_rg <= radius_r[:, None]  # (N, M)
    precision = in_real_ball.any(axis=0).mean()
    recall = (d_rg <= radius_g[None, :]).any(axis=1).mean()
    density = in_real_ball.sum() / (k * len(fake))
    coverage = (d_rg.min(axis=1) <= radius_r).mean()
    return precision, recall, density, coverage


def test_precision_recall_density_coverage_match_direct_formulas():
    real, fake = _gauss(60, 3, seed=0), _gauss(50, 3, seed=1, shift=0.6) * 1.3
    res = gm.precision_recall_density_coverage(real, fake, k=3)
    expected = _manifold_direct(real, fake, k=3)
    got = (res.precision, res.recall, res.density, res.coverage)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_manifold_metrics_drop_for_separated_sets():
    res = gm.precision_recall_density_coverage(_gauss(80, 4, 2), _gauss(80, 4, 3, 20.0), k=5)
    assert res.precision == res.recall == res.density == res.coverage == 0.0


def test_knn_radii_need_more_samples_than_k():
    with pytest.raises(ValueError, match="at least 6 real samples"):
        gm.precision_recall_density_coverage(_gauss(5, 2, 0), _gauss(9, 2, 1), k=5)


# --- Memorisation -----------------------------------------------------------------------------


def test_memorisation_matches_direct_distances():
    train, held, gen = _gauss(80, 3, 0), _gauss(30, 3, 1), _gauss(40, 3, 2)
    res = gm.memorisation(gen, train, held, quantile=0.2)
    held_to_train = cdist(held, train).min(axis=1)
    gen_to_train = cdist(gen, train).min(axis=1)
    threshold = np.quantile(held_to_train, 0.2)
    assert res.threshold == pytest.approx(threshold, rel=1e-12)
    assert res.copy_fraction == pytest.approx((gen_to_train < threshold).mean(), abs=1e-12)
    ratio = np.median(gen_to_train) / np.median(held_to_train)
    assert res.distance_ratio == pytest.approx(ratio, rel=1e-12)
    np.testing.assert_allclose(res.heldout_distance, cdist(gen, held).min(axis=1), rtol=1e-12)


def test_memorisation_flags_copies_of_training_images():
    train, held = _gauss(200, 4, 0), _gauss(100, 4, 1)
    res = gm.memorisation(train[:100] + 1e-6, train, held, quantile=0.05)
    assert res.copy_fraction == 1.0
    assert res.distance_ratio < 0.01


def test_memorisation_of_fresh_draws_is_near_the_quantile():
    train, held, fresh = _gauss(400, 4, 0), _gauss(400, 4, 1), _gauss(400, 4, 2)
    res = gm.memorisation(fresh, train, held, quantile=0.1)
    assert abs(res.copy_fraction - 0.1) < 0.06
    assert 0.8 < res.distance_ratio < 1.25


# --- Bootstrap --------------------------------------------------------------------------------


def test_bootstrap_interval_matches_a_direct_percentile_loop():
    values = _gauss(50, 1, seed=0)[:, 0]
    lo, hi = gm.bootstrap_interval(lambda i: values[i].mean(), (50,), 300, 0.9, seed=4)
    rng = np.random.default_rng(4)
    reps = [values[rng.integers(0, 50, 50)].mean() for _ in range(300)]
    assert (lo, hi) == pytest.approx(tuple(np.quantile(reps, [0.05, 0.95])), abs=1e-12)
    assert lo < values.mean() < hi


def test_bootstrap_interval_is_seeded_and_checks_its_arguments():
    values = _gauss(30, 1, seed=1)[:, 0]

    def stat(i, j):
        return values[i].mean() - values[j].mean()

    assert gm.bootstrap_interval(stat, (30, 30), 50, seed=2) == gm.bootstrap_interval(
        stat, (30, 30), 50, seed=2
    )
    with pytest.raises(ValueError, match="0 < confidence < 1, got 50 and 1.5"):
        gm.bootstrap_interval(stat, (30, 30), 50, confidence=1.5)

from __future__ import annotations

import numpy as np
import pytest

from pipeline.synthesis import image_grid, synthesis_counts, synthesize


def test_counts_fill_the_minority_up_to_the_majority():
    assert synthesis_counts([100, 60, 10], "majority", 1.0, "minority") == [0, 0, 90]
    assert synthesis_counts([100, 60, 10], "majority", 1.0, "all_below_target") == [0, 40, 90]


def test_counts_by_ratio():
    assert synthesis_counts([100, 60, 10], "ratio", 2.5, "minority") == [0, 0, 25]
    assert synthesis_counts([100, 60, 10], "ratio", 0.5, "all_below_target") == [0, 30, 5]


def test_unknown_target_fails():
    with pytest.raises(ValueError, match="unknown target"):
        synthesis_counts([3, 1], "double", 1.0, "minority")


def _sampler(labels: np.ndarray, seed: int) -> np.ndarray:
    # Brightness is a uniform draw; the "filter" below accepts only bright images.
    rng = np.random.default_rng(seed)
    return np.repeat(rng.random(len(labels)), 16).reshape(-1, 1, 4, 4).astype(np.float32)


def _scorer(imgs: np.ndarray) -> np.ndarray:
    p = imgs.mean(axis=(1, 2, 3))
    return np.stack([1 - p, p], axis=1)


def test_filter_keeps_only_confident_samples_and_redraws():
    out = synthesize(_sampler, [0, 50], seed=0, score=_scorer, min_confidence=0.7)
    assert out.kept == [0, 50] and len(out.labels) == 50
    assert (out.labels == 1).all() and (out.confidence >= 0.7).all()
    assert out.drawn[1] > 50  # about 30 % pass, so rejected ones were redrawn


def test_filter_stops_at_the_draw_budget():
    out = synthesize(
        _sampler, [0, 50], seed=0, score=_scorer, min_confidence=0.99, max_draw_factor=2.0
    )
    assert out.drawn[1] == 100 and out.kept[1] < 50


def test_same_seed_same_samples():
    a = synthesize(_sampler, [5, 7], seed=3)
    b = synthesize(_sampler, [5, 7], seed=3)
    assert np.array_equal(a.images, b.images) and a.kept == [5, 7]


def test_grid_shape():
    grid = image_grid(np.ones((10, 1, 4, 4), np.float32), columns=4, pad=1)
    assert grid.size == (4 * 5 + 1, 3 * 5 + 1) and grid.mode == "L"

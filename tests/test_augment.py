"""Classic augmentation: range, dtype, determinism per seed, and each transform's effect."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.augment import Augmenter, AugmentSpec

OFF = {"hflip_p": 0.0, "vflip_p": 0.0, "affine_p": 0.0, "intensity_p": 0.0}


def _batch(n: int = 16, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, size, size)).astype(np.float32)


def test_same_seed_same_batch_other_seed_other_batch():
    imgs, aug = _batch(), Augmenter()
    first = aug(imgs, np.random.default_rng(7))

    assert np.array_equal(first, aug(imgs, np.random.default_rng(7)))
    assert np.array_equal(first, Augmenter()(imgs, np.random.default_rng(7)))
    assert not np.array_equal(first, aug(imgs, np.random.default_rng(8)))


def test_output_keeps_shape_dtype_and_unit_range_under_strong_jitter():
    spec = AugmentSpec(affine_p=1.0, intensity_p=1.0, brightness=0.5, contrast=0.5, gamma=0.5)
    for value in (0.0, 1.0):
        imgs = np.full((32, 1, 8, 8), value, np.float32)
        out = Augmenter(spec)(imgs, np.random.default_rng(0))
        assert out.shape == imgs.shape and out.dtype == np.float32
        assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    assert imgs.max() == 1.0  # the input is left untouched


def test_all_off_is_identity_and_hflip_mirrors():
    imgs = _batch()
    assert np.array_equal(Augmenter(AugmentSpec(**OFF))(imgs, np.random.default_rng(0)), imgs)

    flipped = Augmenter(AugmentSpec(**{**OFF, "hflip_p": 1.0}))(imgs, np.random.default_rng(0))
    assert np.array_equal(flipped, imgs[..., ::-1])


def test_16bit_precision_is_kept():
    # a 16-bit grey level must not be rounded to 8 bits by any step
    level = np.float32(30001 / 65535)
    imgs = np.full((4, 1, 8, 8), level, np.float32)
    out = Augmenter(AugmentSpec(**{**OFF, "hflip_p": 1.0}))(imgs, np.random.default_rng(0))
    assert np.all(out == level)


def test_gamma_only_matches_power_law():
    # gamma alone maps x to x ** g for one g per image; recover g from two grey levels
    spec = AugmentSpec(**{**OFF, "intensity_p": 1.0}, brightness=0.0, contrast=0.0, gamma=0.3)
    imgs = np.zeros((8, 1, 4, 4), np.float32)
    imgs[:, :, :2], imgs[:, :, 2:] = 0.25, 0.64
    out = Augmenter(spec)(imgs, np.random.default_rng(3))

    g = np.log(out[:, 0, 0, 0]) / np.log(0.25)  # (N,) exponent per image
    assert np.allclose(out[:, 0, 3, 0], 0.64**g, atol=1e-5)
    assert np.all((g >= 0.7 - 1e-3) & (g <= 1.3 + 1e-3)) and np.ptp(g) > 0.01


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match=r"expected images of shape \(N, C, H, W\)"):
        Augmenter()(np.zeros((4, 16, 16), np.float32), np.random.default_rng(0))
    with pytest.raises(ValueError, match="expected probabilities in"):
        AugmentSpec(hflip_p=1.5)

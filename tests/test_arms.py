"""Arms: counts, weights, synthetic draws and params validation on a tiny imbalanced split."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.utils.class_weight import compute_class_weight

from pipeline.arms import (
    AuditParams,
    arms_from_params,
    check_gan_runs,
    inverse_frequency_weights,
    minority_classes,
    parse_arm,
    verdict_metric_key,
)
from pipeline.augment import Augmenter
from pipeline.io import Split, image_hashes

COUNTS = [40, 30, 10]  # grey, white, csf_other (minority)


def _split(counts=COUNTS, size: int = 8, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(counts)), counts).astype(np.int64)
    imgs = rng.random((len(labels), 1, size, size)).astype(np.float32)
    groups = np.array([f"p{i % 7}" for i in range(len(labels))])
    return Split(imgs, labels, groups, image_hashes(imgs), ("grey", "white", "csf_other"))


def _synthetic(per_class: int = 50, size: int = 8):
    labels = np.repeat(np.arange(3), per_class).astype(np.int64)
    imgs = np.random.default_rng(9).random((len(labels), 1, size, size)).astype(np.float32)
    return imgs, labels


def _counts(data) -> list[int]:
    return np.bincount(data.labels, minlength=3).tolist()


def test_real_and_classic_keep_the_real_set():
    train = _split()
    real = parse_arm("real").prepare(train, None, 1.0, np.random.default_rng(0))
    classic = parse_arm("classic").prepare(train, None, 1.0, np.random.default_rng(0))

    assert real.images is train.images and real.augment is None and real.class_weights is None
    assert np.array_equal(classic.labels, train.labels)
    assert isinstance(classic.augment, Augmenter)


def test_class_weights_equal_sklearn_balanced():
    train = _split()
    data = parse_arm("class_weight").prepare(train, None, 1.0, np.random.default_rng(0))
    expected = compute_class_weight("balanced", classes=np.arange(3), y=train.labels)

    assert np.allclose(data.class_weights, expected)
    assert data.class_weights.dtype == np.float32
    # the weights average 1 over the training images
    assert data.class_weights[train.labels].mean() == pytest.approx(1.0)


def test_class_weights_refuse_an_empty_class():
    with pytest.raises(ValueError, match=r"got counts \[2, 0, 1\]"):
        inverse_frequency_weights(np.array([0, 0, 2]), 3)


def test_oversample_to_majority_and_to_ratio():
    train = _split()
    to_major = parse_arm("oversample", minority="all_below_majority")
    data = to_major.prepare(train, None, 1.0, np.random.default_rng(0))
    assert _counts(data) == [40, 40, 40] and data.n_added == 40

    # duplicates are real minority images, drawn from their own class
    hashes = set(train.hashes[train.labels == 2])
    assert set(image_hashes(data.images[data.labels == 2])) <= hashes

    by_ratio = parse_arm("oversample", oversample_to="ratio")
    assert by_ratio.uses_ratio and not to_major.uses_ratio
    assert _counts(by_ratio.prepare(train, None, 0.5, np.random.default_rng(0))) == [40, 30, 15]


def test_gan_arm_adds_distinct_synthetic_minority_images():
    train, synth = _split(), _synthetic()
    arm = parse_arm("gan:acgan")
    data = arm.prepare(train, synth, 2.0, np.random.default_rng(0))

    assert _counts(data) == [40, 30, 30] and data.n_added == 20
    assert np.array_equal(data.images[: len(train.labels)], train.images)
    added = image_hashes(data.images[len(train.labels) :])
    assert len(set(added)) == 20 and set(added) <= set(image_hashes(synth[0][synth[1] == 2]))
    assert data.augment is None and arm.run == "acgan" and arm.uses_ratio


def test_gan_arm_fills_every_minority_class_up_to_the_majority():
    train, synth = _split(), _synthetic()
    arm = parse_arm("gan:acgan", minority="all_below_majority", synthetic_to="majority")
    data = arm.prepare(train, synth, 0.5, np.random.default_rng(0))

    # the ratio is ignored: 10 extra of class 1 and 30 of class 2, none of the majority
    assert _counts(data) == [40, 40, 40] and data.n_added == 40 and not arm.uses_ratio
    added = data.labels[len(train.labels) :]
    assert set(image_hashes(data.images[len(train.labels) :][added == 2])) <= set(
        image_hashes(synth[0][synth[1] == 2])
    )


def test_gan_arm_is_deterministic_per_seed_and_gan_classic_augments():
    train, synth = _split(), _synthetic()
    a = parse_arm("gan:d2gan").prepare(train, synth, 1.0, np.random.default_rng(4))
    b = parse_arm("gan:d2gan").prepare(train, synth, 1.0, np.random.default_rng(4))
    c = parse_arm("gan_classic:d2gan").prepare(train, synth, 1.0, np.random.default_rng(4))

    assert np.array_equal(a.images, b.images) and np.array_equal(a.images, c.images)
    assert isinstance(c.augment, Augmenter)


def test_gan_arm_refuses_too_few_or_bad_synthetic_images():
    train, (imgs, labels) = _split(), _synthetic(per_class=5)
    arm = parse_arm("gan:acgan")
    with pytest.raises(ValueError, match="expected at least 20 synthetic images of class 'csf"):
        arm.prepare(train, (imgs, labels), 2.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"map generator output from \[-1, 1\]"):
        arm.prepare(train, (imgs * 2 - 1, labels), 0.1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="synthesize at the training image size"):
        arm.prepare(train, (imgs[..., :4], labels), 0.1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="got None"):
        arm.prepare(train, None, 0.1, np.random.default_rng(0))


def test_minority_rules():
    assert minority_classes(np.array(COUNTS), "minority").tolist() == [2]
    assert minority_classes(np.array(COUNTS), "all_below_majority").tolist() == [1, 2]
    with pytest.raises(ValueError, match="expected minority rule"):
        minority_classes(np.array(COUNTS), "smallest")


def test_parse_arm_rejects_unknown_names():
    for bad in ("gan", "real:x", "smote", "gan_classic:"):
        with pytest.raises(ValueError, match="unknown arm"):
            parse_arm(bad)


AUDIT = {
    "arms": ["real", "classic", "oversample", "class_weight", "gan:acgan", "gan_classic:acgan"],
    "seeds": [0, 1],
    "ratios": [1.0],
    "minority": "minority",
    "oversample_to": "majority",
    "synthetic_to": "ratio",
    "verdict_metric": "minority_recall",
    "n_boot": 1000,
    "alpha": 0.05,
    "bootstrap_seed": 0,
    "augment": {
        "hflip_p": 0.5,
        "vflip_p": 0.0,
        "affine_p": 0.5,
        "rotate_deg": 10.0,
        "scale": 0.1,
        "translate": 0.05,
        "intensity_p": 0.5,
        "brightness": 0.1,
        "contrast": 0.1,
        "gamma": 0.2,
    },
}


def test_audit_params_build_arms_and_reject_bad_values():
    arms = arms_from_params(AuditParams.model_validate(AUDIT))
    assert [a.kind for a in arms][-2:] == ["gan", "gan_classic"]
    check_gan_runs(arms, ["acgan", "d2gan"])
    with pytest.raises(ValueError, match=r"GAN runs \['acgan'\] are not in gan.runs"):
        check_gan_runs(arms, ["d2gan"])

    for change, message in [
        ({"arms": ["classic"]}, "expected 'real' among the arms"),
        ({"arms": ["real", "smote"]}, "unknown arm 'smote'"),
        ({"seeds": [1, 1]}, "expected distinct seeds"),
        ({"ratios": [0.0]}, "greater than 0"),
        ({"extra": 1}, "Extra inputs are not permitted"),
    ]:
        with pytest.raises(ValidationError, match=message):
            AuditParams.model_validate({**AUDIT, **change})


def test_verdict_metric_key_names_the_minority_class():
    assert verdict_metric_key("minority_recall", COUNTS, ("a", "b", "c")) == (
        "recall/2",
        "minority (c) recall",
    )
    assert verdict_metric_key("macro_f1", COUNTS, ("a", "b", "c")) == ("macro_f1", "macro-F1")

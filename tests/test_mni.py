from __future__ import annotations

import numpy as np
import pytest

from pipeline.mni import (
    CLASS_NAMES,
    PatchSpec,
    assign_slabs,
    build_splits,
    label_tissue,
    load_mni152,
)


@pytest.fixture(scope="module")
def vols():
    return load_mni152()


@pytest.fixture(scope="module")
def splits(vols):
    return build_splits(vols, PatchSpec(stride=12), 0.15, 0.2, minority_train_cap=60, seed=0)


def test_no_slab_in_two_splits(splits):
    groups = {name: set(s.groups.tolist()) for name, s in splits.items()}
    assert not groups["train"] & groups["val"]
    assert not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]


def test_no_image_in_two_splits(splits):
    hashes = {name: set(s.hashes.tolist()) for name, s in splits.items()}
    assert not hashes["train"] & (hashes["val"] | hashes["test"])


def test_counts_add_up_and_the_minority_is_capped_and_rare(vols, splits):
    uncapped = build_splits(vols, PatchSpec(stride=12), 0.15, 0.2, minority_train_cap=10**6, seed=0)
    for name in ("val", "test"):
        assert splits[name].counts() == uncapped[name].counts()
    train, full = splits["train"].counts(), uncapped["train"].counts()
    assert train[2] == min(60, full[2]) and train[:2] == full[:2]
    total = sum(sum(s.counts()) for s in uncapped.values())
    assert full[2] + uncapped["val"].counts()[2] + uncapped["test"].counts()[2] < 0.1 * total
    for s in splits.values():
        assert s.class_names == CLASS_NAMES
        assert len(s.labels) == len(s.images) == len(s.groups) == sum(s.counts())


def test_images_are_float32_in_unit_range_and_informative(splits):
    imgs = splits["train"].images
    assert imgs.dtype == np.float32 and imgs.shape[1:] == (1, 32, 32)
    assert imgs.min() >= 0.0 and imgs.max() <= 1.0
    # White matter is brighter than grey matter on T1: the labels follow the anatomy.
    means = [imgs[splits["train"].labels == k].mean() for k in range(3)]
    assert means[1] > means[0] > means[2]


def test_same_seed_same_splits_other_seed_other_slabs(vols):
    a = build_splits(vols, PatchSpec(stride=16), 0.15, 0.2, 40, seed=1)
    b = build_splits(vols, PatchSpec(stride=16), 0.15, 0.2, 40, seed=1)
    c = build_splits(vols, PatchSpec(stride=16), 0.15, 0.2, 40, seed=2)
    assert (a["test"].hashes == b["test"].hashes).all()
    assert set(a["test"].groups) != set(c["test"].groups)


def test_label_tissue_thresholds():
    gm, wm = np.array([0.8, 0.1, 0.05, 0.5]), np.array([0.1, 0.8, 0.05, 0.4])
    assert label_tissue(gm, wm, 0.7).tolist() == [0, 1, 2, -1]


def test_every_split_gets_a_slab_and_too_few_slabs_fail():
    names = assign_slabs(np.arange(3), 0.01, 0.01, seed=0)
    assert sorted(names.values()) == ["test", "train", "val"]
    with pytest.raises(ValueError, match="at least 3 slabs"):
        assign_slabs(np.arange(2), 0.2, 0.2, seed=0)

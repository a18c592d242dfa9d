"""Fashion-MNIST IDX reading and the DeepSMOTE long-tail draw, on tiny IDX files written here."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from pipeline.fashion_mnist import (
    FILES,
    IdxFormatError,
    draw_longtail_split,
    heldout_pool,
    load_fashion_mnist,
    load_longtail_split,
    read_idx,
    save_longtail_split,
    source_digest,
    val_counts,
    write_medmnist_npz,
)
from pipeline.readers import read_medmnist


def _write_idx(path: Path, arr: np.ndarray, code: int = 0x08, magic: bytes | None = None) -> Path:
    """An IDX file as LeCun describes it: 0 0 type ndim, big-endian uint32 dims, data."""
    header = magic or bytes([0, 0, code, arr.ndim])
    dims = b"".join(struct.pack(">I", d) for d in arr.shape)
    body = arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(header + dims + body)
    return path


def _fake_root(tmp_path: Path, n_train: int = 60, n_test: int = 40, size: int = 4) -> Path:
    """Ten classes, n_train / 10 training and n_test / 10 test images of each."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        imgs = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        _write_idx(tmp_path / FILES[split, "images"], imgs)
        _write_idx(tmp_path / FILES[split, "labels"], labels)
    return tmp_path


def test_read_idx_returns_the_written_values(tmp_path):
    imgs = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    assert np.array_equal(read_idx(_write_idx(tmp_path / "a-idx3-ubyte.gz", imgs)), imgs)
    ints = np.array([-7, 0, 70000], dtype=np.int32)
    out = read_idx(_write_idx(tmp_path / "b-idx1-int", ints, code=0x0C))
    assert out.tolist() == [-7, 0, 70000] and out.dtype.isnative


def test_read_idx_refuses_a_bad_magic_number_naming_the_file(tmp_path):
    path = _write_idx(tmp_path / "bad.gz", np.zeros((2, 2), np.uint8), magic=b"\x1f\x8b\x08\x02")
    with pytest.raises(IdxFormatError, match=r"bad\.gz: expected an IDX magic .*got 0x1f8b0802"):
        read_idx(path)


def test_read_idx_refuses_a_truncated_file(tmp_path):
    path = _write_idx(tmp_path / "cut", np.zeros((3, 2, 2), np.uint8))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(IdxFormatError, match=r"cut: header declares shape \(3, 2, 2\) \(12 bytes"):
        read_idx(path)


def test_missing_files_say_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


def test_load_checks_images_and_labels_fit(tmp_path):
    root = _fake_root(tmp_path)
    data = load_fashion_mnist(root)
    assert data["train"][0].shape == (60, 4, 4) and data["test"][1].dtype == np.int64
    _write_idx(root / FILES["test", "labels"], np.zeros(39, np.uint8))
    with pytest.raises(IdxFormatError, match="test has 40 images but 39 labels"):
        load_fashion_mnist(root)


TRAIN_COUNTS = [6, 6, 5, 4, 4, 3, 3, 2, 2, 2]
TEST_COUNTS = [4, 3, 3, 2, 2, 2, 1, 1, 1, 1]


def _draw(root: Path, seed: int = 0):
    data = load_fashion_mnist(root)
    split = draw_longtail_split(
        data["train"][1], data["test"][1], TRAIN_COUNTS, TEST_COUNTS, 0.25, seed, "x"
    )
    return data, split


def test_draw_has_the_protocol_counts_and_val_comes_from_the_training_draw(tmp_path):
    data, split = _draw(_fake_root(tmp_path))
    tr_labels, te_labels = data["train"][1], data["test"][1]

    # train + val is exactly the training draw; val took round(0.25 n_k), at least 1
    both = np.bincount(tr_labels[split.train + split.val], minlength=10)
    assert both.tolist() == TRAIN_COUNTS
    assert np.bincount(tr_labels[split.val], minlength=10).tolist() == val_counts(
        TRAIN_COUNTS, 0.25
    )
    assert not set(split.train) & set(split.val)
    assert np.bincount(te_labels[split.test_imbalanced], minlength=10).tolist() == TEST_COUNTS
    assert val_counts([40, 4000, 2], 0.1) == [4, 400, 1]


def test_draw_is_deterministic_and_the_seed_matters(tmp_path):
    root = _fake_root(tmp_path)
    assert _draw(root)[1] == _draw(root)[1]
    assert _draw(root)[1].train != _draw(root, seed=1)[1].train


def test_saved_indices_rebuild_the_split_exactly(tmp_path):
    data, split = _draw(_fake_root(tmp_path / "src"))
    save_longtail_split(tmp_path / "split.json", split)
    again = load_longtail_split(tmp_path / "split.json")
    assert again == split

    # the ingest's MedMNIST file holds the drawn images; test is the whole test file in order
    write_medmnist_npz(tmp_path / "fm.npz", data, again)
    read = read_medmnist(tmp_path / "fm.npz")
    assert np.array_equal(read["train"][0], data["train"][0][split.train])
    assert np.array_equal(read["val"][1], data["train"][1][split.val])
    assert np.array_equal(read["test"][0], data["test"][0])


def test_heldout_pool_avoids_the_draw(tmp_path):
    data, split = _draw(_fake_root(tmp_path, n_train=200))
    pool = heldout_pool(data["train"][1], split, per_class=3, seed=0)
    assert not set(pool.tolist()) & set(split.train + split.val)
    assert np.bincount(data["train"][1][pool]).tolist() == [3] * 10


def test_source_digest_changes_with_the_data(tmp_path):
    data = load_fashion_mnist(_fake_root(tmp_path))
    flipped = {**data, "test": (255 - data["test"][0], data["test"][1])}
    assert source_digest(data) != source_digest(flipped)

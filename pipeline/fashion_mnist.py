"""Fashion-MNIST from its IDX files, and the long-tail protocol of DeepSMOTE on it.

Shape letters: N images, H/W image size (28), K classes (10).

The files come from Debian's ``dataset-fashion-mnist`` package (``apt-get install
dataset-fashion-mnist``), which puts the four gzipped IDX files under
``/usr/share/datasets/fashion-mnist/``; nothing is downloaded.

The protocol (Dablain, Krawczyk, Chawla, "DeepSMOTE", IEEE TNNLS 2022): a fixed-seed draw of
per-class training counts from the 60k training set, an imbalanced test set drawn the same way
from the 10k test set, and the full balanced 10k test set. Validation images come out of the
training draw (a share of each class), never out of the test set, so model selection sees no
more real minority images than training does. The drawn indices are saved as JSON so the split
rebuilds exactly, whatever the NumPy version.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.io import write_json, write_npz

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = "apt-get install dataset-fashion-mnist"
FILES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}
CLASS_NAMES = (
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
# IDX type codes (third magic byte) -> big-endian NumPy dtypes.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxFormatError(ValueError):
    """A file is not a well-formed IDX file of the expected kind."""


# --------------------------------------------------------------------------------------------
# IDX reading


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzipped when its name ends in ``.gz``) into an array of its shape.

    The header is two zero bytes, a type code, the number of dimensions, then one big-endian
    uint32 per dimension (LeCun's MNIST format). Raises IdxFormatError naming the file when the
    magic number, the type code or the data length is wrong.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise IdxFormatError(f"{path}: cannot read ({exc}); reinstall: {INSTALL_HINT}") from None

    # Magic: 0x00 0x00, type code, number of dimensions.
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise IdxFormatError(
            f"{path}: expected an IDX magic number 0x0000TTDD (TT a type code in "
            f"{[hex(t) for t in IDX_DTYPES]}), got 0x{data[:4].hex()}; not an IDX file"
        )
    dtype, ndim = IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">u4"))

    # The payload must hold exactly prod(shape) values.
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(shape) != ndim or len(data) - header != expected:
        raise IdxFormatError(
            f"{path}: header declares shape {shape} ({expected} bytes of data), got "
            f"{len(data) - max(header, 4)} bytes; the file is truncated or corrupt"
        )
    return (
        np.frombuffer(data, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def load_fashion_mnist(root: str | Path = DEFAULT_ROOT) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The two Fashion-MNIST splits: ``{"train" | "test": (images (N, 28, 28) uint8, labels (N,)
    int64)}``.

    Raises:
        FileNotFoundError: a file is missing; the message says how to install the package.
        IdxFormatError: a file is not IDX, or images and labels do not fit together.
    """
    root = Path(root)
    missing = [str(root / name) for name in FILES.values() if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST IDX files not found: {missing}; install them with "
            f"`{INSTALL_HINT}` (Debian/Ubuntu, as root) or point data_root at a folder holding "
            f"{sorted(FILES.values())}"
        )
    out = {}
    for split in ("train", "test"):
        imgs = read_idx(root / FILES[split, "images"])
        labels = read_idx(root / FILES[split, "labels"])
        if imgs.ndim != 3 or imgs.dtype != np.uint8 or labels.ndim != 1:
            raise IdxFormatError(
                f"{root}: expected {split} images uint8 (N, H, W) and labels (N,), got images "
                f"{imgs.dtype} {imgs.shape} and labels {labels.shape}; files swapped?"
            )
        if len(imgs) != len(labels):
            raise IdxFormatError(f"{root}: {split} has {len(imgs)} images but {len(labels)} labels")
        out[split] = (imgs, labels.astype(np.int64))
    return out


def source_digest(data: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """sha256 of every split's images and labels, so a saved split names the data it indexes."""
    digest = hashlib.sha256()
    for split in sorted(data):
        for arr in data[split]:
            digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# The protocol draw


@dataclass(frozen=True)
class LongTailSplit:
    """Indices into the source files: train and val into the training file, test_imbalanced
    into the test file (the balanced test set is the whole test file)."""

    train: list[int]
    val: list[int]
    test_imbalanced: list[int]
    seed: int
    train_counts: list[int]  # the protocol's per-class training draw, before val is taken out
    test_counts: list[int]
    val_fraction: float
    source_sha256: str

    def as_dict(self) -> dict:
        return asdict(self)


def draw_per_class(labels: np.ndarray, counts: list[int], rng: np.random.Generator) -> np.ndarray:
    """Draw counts[k] distinct indices of class k, class by class; (sum(counts),) int64 sorted
    within each class."""
    picks = []
    for k, n in enumerate(counts):
        pool = np.flatnonzero(labels == k)
        if n > len(pool):
            raise ValueError(
                f"expected at least {n} images of class {k} to draw from, got {len(pool)}; "
                "lower the protocol's counts"
            )
        picks.append(np.sort(rng.choice(pool, n, replace=False)))
    return np.concatenate(picks).astype(np.int64)


def val_counts(train_counts: list[int], val_fraction: float) -> list[int]:
    """Validation images per class: round(fraction * n_k), at least 1, leaving at least 1."""
    if min(train_counts) < 2:
        raise ValueError(f"expected at least 2 training images per class, got {train_counts}")
    return [min(n - 1, max(1, round(val_fraction * n))) for n in train_counts]


def draw_longtail_split(
    train_labels: np.ndarray,
    test_labels: np.ndarray,
    train_counts: list[int],
    test_counts: list[int],
    val_fraction: float,
    seed: int,
    source_sha256: str = "",
) -> LongTailSplit:
    """The protocol draw: training counts per class, val out of them, an imbalanced test set.

    One seeded generator draws, in this order, the training indices, the val indices among
    them, then the imbalanced test indices; the same labels and seed give the same split.
    """
    num_classes = int(train_labels.max()) + 1
    if len(train_counts) != num_classes or len(test_counts) != num_classes:
        raise ValueError(
            f"expected {num_classes} train and test counts (one per class), got "
            f"{len(train_counts)} and {len(test_counts)}"
        )
    rng = np.random.default_rng(seed)
    drawn = draw_per_class(train_labels, train_counts, rng)

    # Val: a share of each class of the training draw, never of the test set.
    val = draw_per_class(train_labels[drawn], val_counts(train_counts, val_fraction), rng)
    val_idx = drawn[val]
    train_idx = np.setdiff1d(drawn, val_idx)
    test_idx = draw_per_class(test_labels, test_counts, rng)
    return LongTailSplit(
        train=train_idx.tolist(),
        val=np.sort(val_idx).tolist(),
        test_imbalanced=test_idx.tolist(),
        seed=seed,
        train_counts=list(train_counts),
        test_counts=list(test_counts),
        val_fraction=val_fraction,
        source_sha256=source_sha256,
    )


def save_longtail_split(path: str | Path, split: LongTailSplit) -> None:
    """Write the drawn indices as JSON, atomically."""
    write_json(path, split.as_dict())


def load_longtail_split(path: str | Path) -> LongTailSplit:
    """Read indices written by save_longtail_split."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}; run the benchmark to draw it")
    raw = json.loads(path.read_text())
    try:
        return LongTailSplit(**raw)
    except TypeError as exc:
        raise ValueError(
            f"{path}: not a long-tail split file ({exc}); delete it to redraw"
        ) from None


def check_split_matches(split: LongTailSplit, source_sha256: str, path: str | Path) -> None:
    """Refuse a saved split drawn from other source files."""
    if split.source_sha256 != source_sha256:
        raise ValueError(
            f"{path}: drawn from data with sha256 {split.source_sha256[:12]}..., but the "
            f"Fashion-MNIST files here hash to {source_sha256[:12]}...; delete {path} to redraw"
        )


def write_medmnist_npz(
    path: str | Path, data: dict[str, tuple[np.ndarray, np.ndarray]], split: LongTailSplit
) -> None:
    """Write the split as a MedMNIST-style ``.npz`` for the folder ingest (layout medmnist).

    train and val hold the drawn training-file images; test holds the whole test file in its
    own order, so row i of the prepared test split is test image i and the imbalanced test
    set is the rows ``split.test_imbalanced``.
    """
    (tr_imgs, tr_labels), (te_imgs, te_labels) = data["train"], data["test"]
    write_npz(
        path,
        train_images=tr_imgs[split.train],
        train_labels=tr_labels[split.train],
        val_images=tr_imgs[split.val],
        val_labels=tr_labels[split.val],
        test_images=te_imgs,
        test_labels=te_labels,
    )
    log.info(
        "wrote %s: train %s, val %s, test %s per class",
        path,
        np.bincount(tr_labels[split.train]).tolist(),
        np.bincount(tr_labels[split.val]).tolist(),
        np.bincount(te_labels).tolist(),
    )


def heldout_pool(
    train_labels: np.ndarray, split: LongTailSplit, per_class: int, seed: int
) -> np.ndarray:
    """Indices of training-file images outside the draw, per_class of each class (seeded).

    They are neither training, val nor test images: a real reference for scoring generators
    per class when val holds only a handful of the rarest class.
    """
    unused = np.ones(len(train_labels), dtype=bool)
    unused[split.train + split.val] = False
    rng = np.random.default_rng(seed)
    masked = np.where(unused, train_labels, -1)
    return draw_per_class(masked, [per_class] * (int(train_labels.max()) + 1), rng)

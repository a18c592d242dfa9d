"""Atomic output writers and the prepared-split format shared by every stage.

A split file is one ``.npz`` holding ``images`` float32 (N, 1, H, W) in [0, 1], ``labels``
int64 (N,), ``groups`` str (N,) (pseudonymised patient or slab ids), ``hashes`` str (N,)
(sha256 of each image's float32 bytes) and ``class_names`` str (K,).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# mkstemp creates files readable by their owner only; finished outputs get the mode an
# ordinary open() would give them (0666 less the umask), read once at import.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_atomic(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Run ``writer(tmp_path)`` and rename the result onto ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Write arrays to a compressed ``.npz``, atomically (the name keeps its ``.npz``)."""

    def _write(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.savez_compressed(fh, **arrays)

    write_atomic(path, _write)


def image_hashes(imgs: np.ndarray) -> np.ndarray:
    """sha256 hex digest of each image's float32 C-contiguous bytes; (N,) str."""
    imgs = np.ascontiguousarray(imgs, dtype=np.float32)
    return np.array([hashlib.sha256(img.tobytes()).hexdigest() for img in imgs])


@dataclass(frozen=True)
class Split:
    """One prepared split held in memory."""

    images: np.ndarray  # (N, 1, H, W) float32 [0, 1]
    labels: np.ndarray  # (N,) int64
    groups: np.ndarray  # (N,) str
    hashes: np.ndarray  # (N,) str
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def counts(self) -> list[int]:
        return np.bincount(self.labels, minlength=self.num_classes).tolist()


def save_split(path: str | Path, split: Split) -> None:
    """Write a split in the shared ``.npz`` format, atomically."""
    write_npz(
        path,
        images=split.images.astype(np.float32),
        labels=split.labels.astype(np.int64),
        groups=split.groups.astype(str),
        hashes=split.hashes.astype(str),
        class_names=np.array(split.class_names, dtype=str),
    )


def load_split(path: str | Path) -> Split:
    """Read a split written by ``save_split`` and check its layout."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}; run the ingest stage first")
    with np.load(path, allow_pickle=False) as npz:
        missing = {"images", "labels", "groups", "hashes", "class_names"} - set(npz.files)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)}; re-run ingest")
        split = Split(
            images=npz["images"],
            labels=npz["labels"],
            groups=npz["groups"],
            hashes=npz["hashes"],
            class_names=tuple(str(c) for c in npz["class_names"]),
        )
    if split.images.ndim != 4 or split.images.dtype != np.float32:
        raise ValueError(
            f"{path}: expected images float32 (N, C, H, W), "
            f"got {split.images.dtype} {split.images.shape}; re-run ingest"
        )
    return split

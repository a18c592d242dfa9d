"""Patient-grouped, class-stratified, deterministic train/val/test split, and pseudonyms.

Each patient's split comes from a seeded SHA-256 of its id mapped to [0, 1): below
``test_fraction`` is test, below ``test_fraction + val_fraction`` is val, the rest train. So a
patient's split never depends on which other patients exist, and adding files or patients
does not move anyone, and each class is split in the given fractions in expectation
(stratified by class). A repair step then moves the fewest patients needed so that test and
train hold at least one patient of every class (val too when enough patients exist); patients
moved by a repair may move back once new patients make the repair unnecessary.

Patient ids leave memory only as ``pseudonymise`` output: HMAC-SHA256 under a secret key from
the environment variable ``SCARCE_AUG_PSEUDONYM_KEY`` or a key file kept outside the outputs.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

KEY_ENV = "SCARCE_AUG_PSEUDONYM_KEY"
SPLITS = ("train", "val", "test")
PSEUDONYM_HEX = 16  # 64 bits: collisions are negligible below ~10^8 patients


class SplitError(ValueError):
    """The patients cannot be split so that every required split holds every class."""


# --------------------------------------------------------------------------------------------
# Pseudonyms


def load_pseudonym_key(key_file: str | Path | None) -> bytes:
    """The pseudonymisation key: ``$SCARCE_AUG_PSEUDONYM_KEY`` if set, else ``key_file``.

    A missing key file is created with 32 random bytes (hex) and mode 600. Keep it: the same
    key gives the same pseudonyms on later runs.

    Raises:
        ValueError: no key source, or a key shorter than 32 characters.
    """
    env = os.environ.get(KEY_ENV, "").strip()
    if env:
        key = env
    elif key_file is None:
        raise ValueError(
            f"no pseudonymisation key: set the environment variable {KEY_ENV} or "
            "data.folder.key_file to a path outside the outputs (created if missing)"
        )
    else:
        path = Path(key_file).expanduser()
        if not path.exists():
            _create_key_file(path)
        key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(
            f"pseudonymisation key is {len(key)} characters; use at least 32 "
            "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return key.encode()


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    log.warning("created a new pseudonymisation key file %s (mode 600); keep it private", path)


def check_key_outside(key_file: str | Path | None, folders: Iterable[str | Path]) -> None:
    """Refuse a key file that lies inside any of ``folders`` (outputs, raw data).

    Raises:
        ValueError: naming the folder that contains the key file.
    """
    if key_file is None:
        return
    key = Path(key_file).expanduser().resolve()
    for folder in folders:
        folder = Path(folder).expanduser().resolve()
        if key == folder or folder in key.parents:
            raise ValueError(
                f"key_file {key_file} lies inside {folder}; keep the pseudonymisation key "
                "outside the data and output folders (e.g. ~/.config/scarce_aug/pseudonym.key)"
            )


def pseudonymise(patient_id: str, key: bytes) -> str:
    """Keyed, irreversible pseudonym of a patient id: ``pt-`` + 16 hex of HMAC-SHA256."""
    digest = hmac.new(key, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"pt-{digest[:PSEUDONYM_HEX]}"


def pseudonym_table(patient_ids: Iterable[str], key: bytes) -> dict[str, str]:
    """raw id -> pseudonym for every distinct id.

    Raises:
        ValueError: two ids share a pseudonym (would merge patients).
    """
    table = {pid: pseudonymise(pid, key) for pid in sorted(set(patient_ids))}
    if len(set(table.values())) != len(table):
        raise ValueError("pseudonym collision between two patient ids; report this as a bug")
    return table


# --------------------------------------------------------------------------------------------
# Split


def patient_position(patient_id: str, seed: int) -> float:
    """Where a patient falls in [0, 1), from a seeded SHA-256 of its id."""
    digest = hashlib.sha256(f"{seed}\x00{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(frozen=True)
class PatientSplit:
    """Which split each patient is in, and which patients a repair moved."""

    split_of: dict[str, str]  # patient id -> train | val | test
    repaired: tuple[str, ...]  # patient ids moved away from their hashed split
    val_missing: tuple[int, ...]  # classes with no patient in val (warned, not fatal)

    def sample_splits(self, patient_ids: Sequence[str]) -> np.ndarray:
        """(N,) split name of each sample."""
        return np.array([self.split_of[p] for p in patient_ids])


def assign_patients(
    patient_ids: Sequence[str],
    labels: np.ndarray,
    num_classes: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    class_names: Sequence[str] | None = None,
) -> PatientSplit:
    """Assign every patient to train, val or test.

    Args:
        patient_ids: (N,) patient of each sample (raw ids: nothing here is written out).
        labels: (N,) int class of each sample.

    Raises:
        SplitError: a class has too few patients for test and train to both hold it.
    """
    names = list(class_names) if class_names else [str(k) for k in range(num_classes)]
    classes_of: dict[str, set[int]] = {}
    for pid, label in zip(patient_ids, labels, strict=True):
        classes_of.setdefault(str(pid), set()).add(int(label))

    # Hash every patient into its split; this alone is stable as patients are added.
    pos = {pid: patient_position(pid, seed) for pid in classes_of}
    bounds = {"test": (0.0, test_fraction), "val": (test_fraction, test_fraction + val_fraction)}
    bounds["train"] = (test_fraction + val_fraction, 1.0)
    split_of = {pid: _hashed_split(p, bounds) for pid, p in pos.items()}
    hashed = dict(split_of)

    # Every class needs a test patient and a training patient.
    for k in range(num_classes):
        n = sum(k in cls for cls in classes_of.values())
        if n < 2:
            raise SplitError(
                f"class {names[k]!r} has {n} patient(s); the test split and the training split "
                "each need one of its patients; add patients of this class or drop the class"
            )

    # Repair test, then train (both required), then val (best effort).
    ctx = _Repair(split_of, classes_of, pos, bounds, num_classes, names)
    ctx.fill("test", keep=("train",), required=True)
    ctx.fill("train", keep=("test",), required=True)
    val_missing = ctx.fill("val", keep=("train", "test"), required=False)
    if val_missing:
        log.warning(
            "val holds no patient of class(es) %s: too few patients; val scores ignore them",
            [names[k] for k in val_missing],
        )
    repaired = tuple(sorted(p for p in split_of if split_of[p] != hashed[p]))
    return PatientSplit(split_of, repaired, tuple(val_missing))


def _hashed_split(p: float, bounds: dict[str, tuple[float, float]]) -> str:
    for name in ("test", "val"):
        if bounds[name][0] <= p < bounds[name][1]:
            return name
    return "train"


@dataclass
class _Repair:
    """Moves the patients nearest a split's hash interval into it until it holds every class."""

    split_of: dict[str, str]
    classes_of: dict[str, set[int]]
    pos: dict[str, float]
    bounds: dict[str, tuple[float, float]]
    num_classes: int
    names: list[str]

    def covered(self, split: str) -> set[int]:
        return {k for p, s in self.split_of.items() if s == split for k in self.classes_of[p]}

    def fill(self, target: str, keep: tuple[str, ...], required: bool) -> list[int]:
        """Give ``target`` every class; moves never uncover a class in a ``keep`` split."""
        missing = []
        for k in range(self.num_classes):
            if k in self.covered(target):
                continue
            mover = self._nearest_mover(target, k, keep)
            if mover is None and required:
                raise SplitError(
                    f"cannot give the {target} split a patient of class {self.names[k]!r} "
                    f"without leaving {'/'.join(keep)} without a class; add patients"
                )
            if mover is None:
                missing.append(k)
                continue
            log.info(
                "moved a patient from %s to %s for class %s",
                self.split_of[mover],
                target,
                self.names[k],
            )
            self.split_of[mover] = target
        return missing

    def _nearest_mover(self, target: str, k: int, keep: tuple[str, ...]) -> str | None:
        lo, hi = self.bounds[target]
        candidates = sorted(
            (max(lo - self.pos[p], self.pos[p] - hi, 0.0), p)
            for p, s in self.split_of.items()
            if s != target and k in self.classes_of[p]
        )
        for _, p in candidates:
            source = self.split_of[p]
            if source not in keep:
                return p
            before = self.covered(source)
            self.split_of[p] = target
            after = self.covered(source)
            self.split_of[p] = source
            if before <= after:
                return p
        return None

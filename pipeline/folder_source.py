"""Users' own data: discover labelled files, read them in a batch, split by patient.

Three layouts (``data.folder.layout``):

- ``manifest``: a CSV under ``root`` with columns ``path`` (alias ``file``, ``filename``,
  ``image_id``; relative to ``root``; a name without suffix matches ``<name>.*``), ``label``
  and ``patient_id`` (alias ``patient``, ``subject``).
- ``folders``: ``root/<class>/.../<file>``, one folder per class. The patient id comes from
  ``patient_from``: ``dicom`` reads (0010,0020) PatientID (files of other formats use their
  parent folder name), ``parent`` the name of the file's parent folder (``root/<class>/<patient>/
  <file>``), ``stem`` the file name up to its first ``_`` (``P07_003.png`` -> ``P07``).
- ``medmnist``: one MedMNIST-style ``.npz``; its own train/val/test split is kept and each image
  is its own group (MedMNIST has no patient ids).

Batch policy: a file that cannot be read is set aside with its reason in the report (path
relative to ``root``), counted in the log, and the run goes on, unless ``stop_on_error``.
Raw inputs are only read. Patient ids leave memory only as keyed pseudonyms; identifying DICOM
values and raw patient ids are scrubbed from every path and reason in the report and the log.

Shape letters: N samples, C channels, S target size (H = W).
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.config import FolderParams
from pipeline.io import Split, image_hashes
from pipeline.patient_split import (
    SPLITS,
    PatientSplit,
    assign_patients,
    check_key_outside,
    load_pseudonym_key,
    pseudonym_table,
)
from pipeline.readers import (
    SUFFIXES,
    IntensityPolicy,
    RawImage,
    UnreadableFile,
    VolumeOptions,
    detect_format,
    medmnist_to_raw,
    prepare_image,
    read_file,
    read_medmnist,
)

log = logging.getLogger(__name__)

PATH_COLUMNS = ("path", "file", "filename", "image_id")
PATIENT_COLUMNS = ("patient_id", "patient", "subject")
MIN_SCRUB_LENGTH = 4  # shorter identifying values are too common to scrub as substrings


def intensity_policy(params: FolderParams) -> IntensityPolicy:
    """The readers' intensity policy from ``data.folder.intensity``."""
    it = params.intensity
    return IntensityPolicy(it.policy, it.window_centre, it.window_width, it.percentiles, it.range)


def volume_options(params: FolderParams) -> VolumeOptions:
    """The readers' volume options from ``data.folder.volume``."""
    v = params.volume
    return VolumeOptions(v.slice_axis, v.slice_policy, v.slice_step, v.four_d, v.volume_index)


# --------------------------------------------------------------------------------------------
# Discovery


@dataclass(frozen=True)
class Entry:
    """One labelled file to read."""

    path: Path
    rel: str  # path relative to root, posix
    label: str
    patient_id: str | None  # None: take it from the file (DICOM PatientID)


def discover(params: FolderParams, root: Path) -> tuple[list[Entry], list[dict[str, str]]]:
    """List labelled files by layout; returns (entries, set-aside records for missing files)."""
    if params.layout == "manifest":
        return _manifest_entries(root, root / str(params.manifest), params.formats)
    return _folder_entries(root, params.formats, params.patient_from), []


def _manifest_entries(
    root: Path, manifest: Path, formats: list[str]
) -> tuple[list[Entry], list[dict[str, str]]]:
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest not found: {manifest}; set data.folder.manifest")
    with manifest.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = set(rows[0]) if rows else set()
    path_col = next((c for c in PATH_COLUMNS if c in columns), None)
    pid_col = next((c for c in PATIENT_COLUMNS if c in columns), None)
    if path_col is None or pid_col is None or "label" not in columns:
        raise ValueError(
            f"{manifest}: expected columns path (or {'/'.join(PATH_COLUMNS[1:])}), label and "
            f"patient_id (or {'/'.join(PATIENT_COLUMNS[1:])}), got {sorted(columns)}"
        )
    entries, missing = [], []
    for row in rows:
        rel = row[path_col].strip()
        path = _resolve(root, rel)
        if path is None:
            missing.append({"path": rel, "reason": "listed in the manifest but not found"})
            continue
        if detect_format(path) not in formats:
            missing.append({"path": rel, "reason": f"format not in data.folder.formats {formats}"})
            continue
        rel = path.relative_to(root).as_posix()
        entries.append(Entry(path, rel, row["label"].strip(), row[pid_col].strip()))
    return entries, missing


def _resolve(root: Path, rel: str) -> Path | None:
    """root/rel, or the one root/rel.* when rel has no suffix."""
    path = root / rel
    if path.is_file():
        return path
    if not Path(rel).suffix:
        matches = sorted(path.parent.glob(f"{path.name}.*"))
        if len(matches) == 1:
            return matches[0]
    return None


def _folder_entries(root: Path, formats: list[str], patient_from: str) -> list[Entry]:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ValueError(f"{root}: no class folders; layout folders expects root/<class>/<files>")
    entries, skipped = [], 0
    for name in classes:
        for path in sorted((root / name).rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            fmt = detect_format(path)
            if fmt not in formats:
                skipped += 1
                continue
            rel = path.relative_to(root).as_posix()
            entries.append(
                Entry(path, rel, name, _patient_from_path(path, root / name, fmt, patient_from))
            )
    if skipped:
        log.info("ignored %d files whose format is not in data.folder.formats", skipped)
    return entries


def _patient_from_path(
    path: Path, class_dir: Path, fmt: str | None, patient_from: str
) -> str | None:
    """Patient id from the path; None means 'read the DICOM PatientID'."""
    if patient_from == "dicom" and fmt == "dicom":
        return None
    if patient_from == "stem":
        return _stem(path).split("_")[0]
    if path.parent == class_dir:
        raise ValueError(
            f"{path.relative_to(class_dir.parent)} sits directly in its class folder, so its "
            "parent folder is not a patient; nest files as <class>/<patient>/<file> or set "
            "data.folder.patient_from to stem"
        )
    return path.parent.name


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted({s for group in SUFFIXES.values() for s in group}, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


# --------------------------------------------------------------------------------------------
# Batch read


@dataclass
class Sample:
    """One prepared image before splitting."""

    image: np.ndarray  # (C, S, S) float32 [0, 1]
    label: str
    patient_id: str  # raw; memory only
    rel: str
    index: int  # frame/slice/page number within the file
    bounds: tuple[float, float]  # file units mapped to 0 and 1


def read_entries(
    entries: list[Entry], params: FolderParams
) -> tuple[list[Sample], list[dict[str, str]], set[str]]:
    """Read and prepare every entry; returns (samples, set-aside records, PHI strings seen)."""
    policy, volume = intensity_policy(params), volume_options(params)
    samples, set_aside, phi = [], [], set()
    for entry in tqdm(entries, desc="ingest", unit="file", total=len(entries)):
        try:
            raws = read_file(entry.path, volume)
            phi.update(v for raw in raws for v in raw.phi)
            pid = entry.patient_id or _dicom_patient(raws, entry)
            for i, raw in enumerate(raws):
                img, bounds = prepare_image(
                    raw, policy, params.target_size, params.channels, params.aspect
                )
                samples.append(Sample(img, entry.label, pid, entry.rel, i, bounds))
        except UnreadableFile as exc:
            if params.stop_on_error:
                raise UnreadableFile(entry.rel, exc.reason) from None
            set_aside.append({"path": entry.rel, "reason": exc.reason})
    return samples, set_aside, phi


def _dicom_patient(raws: list[RawImage], entry: Entry) -> str:
    if raws and raws[0].patient_id:
        return raws[0].patient_id
    if raws and raws[0].meta.get("format") != "dicom":
        return entry.path.parent.name
    raise UnreadableFile(
        entry.rel, "no (0010,0020) PatientID to group by; set data.folder.patient_from to parent"
    )


# --------------------------------------------------------------------------------------------
# Privacy


def scrub(text: str, pseudonyms: dict[str, str], phi: set[str]) -> str:
    """Replace raw patient ids (whole path parts or a ``<id>_`` prefix) by their pseudonyms and
    identifying header values (at least 4 characters) by ``[redacted]``."""
    parts = []
    for part in text.split("/"):
        for raw_id, pseudo in pseudonyms.items():
            if part == raw_id or part.startswith((f"{raw_id}_", f"{raw_id}.")):
                part = pseudo + part[len(raw_id) :]
                break
        parts.append(part)
    text = "/".join(parts)
    for value in sorted(phi | set(pseudonyms), key=len, reverse=True):
        if len(value) >= MIN_SCRUB_LENGTH:
            text = text.replace(value, "[redacted]")
    return text


# --------------------------------------------------------------------------------------------
# Build


def build_folder_splits(
    params: FolderParams, val_fraction: float, test_fraction: float, seed: int
) -> tuple[dict[str, Split], dict[str, Any]]:
    """Read users' files into train/val/test ``Split`` s and an ingest report.

    Returns:
        splits: name -> Split with images (N, C, S, S) float32 [0, 1], groups = pseudonymised
            patient ids, hashes = sha256 of each image.
        report: JSON-ready dict: counts, set-aside files (path relative to root, reason),
            repaired patients (pseudonyms) and each sample's file and (lo, hi) file units.

    Raises:
        FileNotFoundError: root or manifest missing.
        UnreadableFile: a bad file with ``stop_on_error``.
        SplitError: too few patients of a class for test and train.
    """
    root = Path(params.root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root not found: {root}; set data.folder.root")
    check_key_outside(params.key_file, [root])
    key = load_pseudonym_key(params.key_file)
    if params.layout == "medmnist":
        return _medmnist_splits(params, root, key)

    # Read every file; bad ones are set aside with their reason.
    entries, set_aside = discover(params, root)
    n_listed = len(entries) + len(set_aside)
    samples, unreadable, phi = read_entries(entries, params)
    set_aside += unreadable
    if not samples:
        raise ValueError(f"{root}: no readable images among {len(entries)} files; see reasons")
    class_names = _class_names(params.class_names, [s.label for s in samples])
    labels = np.array([class_names.index(s.label) for s in samples], dtype=np.int64)

    # Split by raw patient id, then write only pseudonyms.
    pids = [s.patient_id for s in samples]
    assignment = assign_patients(
        pids, labels, len(class_names), val_fraction, test_fraction, seed, class_names
    )
    # Pseudonyms also for patients whose files were all set aside: their ids are in paths.
    pseudo = pseudonym_table(pids + [e.patient_id for e in entries if e.patient_id], key)
    split_of = assignment.sample_splits(pids)
    splits = {
        name: _make_split(
            [s for s, sp in zip(samples, split_of, strict=True) if sp == name],
            labels[split_of == name],
            pseudo,
            class_names,
        )
        for name in SPLITS
    }

    report = _report(
        n_listed, samples, split_of, set_aside, splits, assignment, pseudo, phi, class_names
    )
    _log_summary(report)
    return splits, report


def _class_names(declared: list[str] | None, labels: list[str]) -> tuple[str, ...]:
    found = sorted(set(labels), key=lambda v: (not v.lstrip("-").isdigit(), _num(v), v))
    if declared is None:
        return tuple(found)
    unknown = sorted(set(found) - set(declared))
    if unknown:
        raise ValueError(f"labels {unknown} not in data.folder.class_names {declared}")
    return tuple(declared)


def _num(value: str) -> int:
    return int(value) if value.lstrip("-").isdigit() else 0


def _make_split(
    samples: list[Sample], labels: np.ndarray, pseudo: dict[str, str], class_names: tuple[str, ...]
) -> Split:
    if samples:
        imgs = np.stack([s.image for s in samples]).astype(np.float32)  # (N, C, S, S) [0, 1]
    else:
        imgs = np.zeros((0, 1, 1, 1), dtype=np.float32)
    return Split(
        images=imgs,
        labels=labels.astype(np.int64),
        groups=np.array([pseudo[s.patient_id] for s in samples], dtype=str),
        hashes=image_hashes(imgs),
        class_names=class_names,
    )


def _report(
    n_listed: int,
    samples: list[Sample],
    split_of: np.ndarray,
    set_aside: list[dict[str, str]],
    splits: dict[str, Split],
    assignment: PatientSplit,
    pseudo: dict[str, str],
    phi: set[str],
    class_names: tuple[str, ...],
) -> dict[str, Any]:
    """The JSON-ready ingest report; every path and reason is scrubbed of identifiers."""
    index_in_split: Counter[str] = Counter()
    rows = []
    for s, name in zip(samples, split_of, strict=True):
        rows.append(
            {
                "split": str(name),
                "row": index_in_split[name],
                "file": scrub(s.rel, pseudo, phi),
                "index": s.index,
                "lo": s.bounds[0],
                "hi": s.bounds[1],
            }
        )
        index_in_split[name] += 1
    patients = {
        name: [
            len({g for g, y in zip(sp.groups, sp.labels, strict=True) if y == k})
            for k in range(len(class_names))
        ]
        for name, sp in splits.items()
    }
    return {
        "class_names": list(class_names),
        "files_listed": n_listed,
        "files_read": len({s.rel for s in samples}),
        "files_set_aside": len(set_aside),
        "set_aside": [
            {"path": scrub(r["path"], pseudo, phi), "reason": scrub(r["reason"], pseudo, phi)}
            for r in set_aside
        ],
        "samples_per_class": {name: sp.counts() for name, sp in splits.items()},
        "patients_per_class": patients,
        "repaired_patients": [pseudo[p] for p in assignment.repaired],
        "val_missing_classes": [class_names[k] for k in assignment.val_missing],
        "samples": rows,
    }


def _log_summary(report: dict[str, Any]) -> None:
    for record in report["set_aside"]:
        log.warning("set aside %s: %s", record["path"], record["reason"])
    log.info(
        "read %d files, set aside %d; samples per class %s; patients per class %s",
        report["files_read"],
        report["files_set_aside"],
        report["samples_per_class"],
        report["patients_per_class"],
    )


def _medmnist_splits(
    params: FolderParams, root: Path, key: bytes
) -> tuple[dict[str, Split], dict[str, Any]]:
    """Keep a MedMNIST file's own split; each image is its own (pseudonymised) group."""
    path = root / str(params.medmnist_file)
    data = read_medmnist(path)
    num_classes = int(max(labels.max(initial=0) for _, labels in data.values())) + 1
    class_names = tuple(params.class_names or [str(k) for k in range(num_classes)])
    if len(class_names) < num_classes:
        raise ValueError(f"{path}: {num_classes} classes but class_names has {len(class_names)}")
    policy = intensity_policy(params)
    splits, rows = {}, []
    for name, (imgs, labels) in data.items():
        raws = medmnist_to_raw(imgs)
        prepared = [
            prepare_image(raw, policy, params.target_size, params.channels, params.aspect)
            for raw in tqdm(raws, desc=f"medmnist {name}", unit="img", leave=False)
        ]
        images = np.stack([img for img, _ in prepared]).astype(np.float32)  # (N, C, S, S)
        ids = [f"{name}:{i}" for i in range(len(raws))]
        pseudo = pseudonym_table(ids, key)
        splits[name] = Split(
            images, labels, np.array([pseudo[i] for i in ids]), image_hashes(images), class_names
        )
        rows += [
            {"split": name, "row": i, "lo": b[0], "hi": b[1]} for i, (_, b) in enumerate(prepared)
        ]
    report = {
        "class_names": list(class_names),
        "files_listed": 1,
        "files_read": 1,
        "files_set_aside": 0,
        "set_aside": [],
        "samples_per_class": {name: sp.counts() for name, sp in splits.items()},
        "split_source": "medmnist file's own train/val/test",
        "samples": rows,
    }
    _log_summary({**report, "patients_per_class": "n/a (one group per image)"})
    return splits, report

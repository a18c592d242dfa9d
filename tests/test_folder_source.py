"""Folder ingest: a mixed folder sets bad files aside and keeps good ones; no identifying
DICOM value reaches the outputs or the log; splits are patient-grouped and hash-disjoint."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydantic import ValidationError
from pydicom.data import get_testdata_file

from pipeline.folder_source import FolderParams, build_folder_splits, scrub
from pipeline.io import image_hashes, load_split, save_split, write_json
from pipeline.patient_split import KEY_ENV
from pipeline.readers import PHI_KEYWORDS, UnreadableFile

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "test-key-" + "0123456789abcdef" * 2)


def _params(root: Path, **overrides) -> FolderParams:
    raw = {
        "root": str(root),
        "layout": "folders",
        "manifest": None,
        "medmnist_file": None,
        "patient_from": "parent",
        "formats": ["dicom", "nifti", "png", "tiff", "npy"],
        "class_names": None,
        "intensity": {
            "policy": "percentile",
            "window_centre": None,
            "window_width": None,
            "percentiles": [0.5, 99.5],
            "range": None,
        },
        "volume": {
            "slice_axis": "axial",
            "slice_policy": "middle",
            "slice_step": 1,
            "four_d": "first",
            "volume_index": 0,
        },
        "target_size": 16,
        "aspect": "stretch",
        "channels": 1,
        "stop_on_error": False,
        "key_file": None,
    }
    raw.update(overrides)
    return FolderParams.model_validate(raw)


def _copy(src, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _mixed_folder(root: Path) -> dict[str, int]:
    """root/<class>/<patient>/<file>; returns the number of good samples per class."""
    pydicom_files = ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "rtdose_1frame.dcm"]
    for i, name in enumerate(pydicom_files):
        _copy(get_testdata_file(name), root / "lesion" / f"pat{i % 2}" / name)
    _copy(DATA / "dicom_header_only_no_pixeldata.dcm", root / "lesion" / "pat0" / "header.dcm")
    _copy(DATA / "dicom_ct_rescale_slope2_intercept-1024.dcm", root / "normal" / "pat2" / "ct.dcm")
    _copy(DATA / "dicom_monochrome1_ramp_12bit.dcm", root / "normal" / "pat3" / "cr.dcm")
    _copy(DATA / "dicom_signed_12bit_in_16.dcm", root / "normal" / "pat4" / "signed.dcm")
    _copy(DATA / "png_16bit_ramp.png", root / "normal" / "pat3" / "thermal.png")
    _copy(DATA / "nifti_scl_slope_nan.nii.gz", root / "normal" / "pat2" / "vol.nii.gz")
    blob = (DATA / "nifti_scl_slope_zero.nii.gz").read_bytes()
    (root / "normal" / "pat4" / "cut.nii.gz").write_bytes(blob[: len(blob) // 2])
    (root / "normal" / "pat4" / "notes.txt").write_text("ignored: not an image format")
    return {"lesion": 4, "normal": 5}


def _phi_strings(root: Path) -> set[str]:
    """Every identifying header value of every DICOM under root."""
    values = set()
    for path in root.rglob("*.dcm"):
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
        for keyword in PHI_KEYWORDS:
            value = ds.get(keyword)
            items = value if isinstance(value, pydicom.multival.MultiValue) else [value]
            values |= {str(v).strip() for v in items if v is not None and str(v).strip()}
    # Values made only of zeros (an empty accession number) also occur in plain numbers.
    return {v for v in values if len(v) >= 3 and set(v) != {"0"}}


def _write_outputs(splits, report, out: Path) -> None:
    for name, split in splits.items():
        save_split(out / f"{name}.npz", split)
    write_json(out / "ingest_report.json", report)


def _output_text(out: Path) -> str:
    """Everything written under out, as text: JSON files and every array in every npz."""
    parts = []
    for path in sorted(out.rglob("*")):
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                parts += [" ".join(map(str, npz[k].ravel().tolist())) for k in npz.files]
        elif path.is_file():
            parts.append(path.read_text())
    return "\n".join(parts)


def test_mixed_folder_sets_bad_files_aside_and_keeps_good_ones(tmp_path, caplog):
    root = tmp_path / "raw"
    good = _mixed_folder(root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    with caplog.at_level(logging.INFO):
        splits, report = build_folder_splits(_params(root), 0.2, 0.3, seed=0)
    out = tmp_path / "out"
    _write_outputs(splits, report, out)

    # Bad files are listed with their reasons; the run went on.
    # Paths are relative to root, the patient folder replaced by its pseudonym.
    aside = {r["path"].split("/")[-1]: r for r in report["set_aside"]}
    assert set(aside) == {"header.dcm", "cut.nii.gz"}
    assert re.fullmatch(r"lesion/pt-[0-9a-f]{16}/header\.dcm", aside["header.dcm"]["path"])
    assert "no pixel data" in aside["header.dcm"]["reason"]
    assert "truncated or corrupt gzip" in aside["cut.nii.gz"]["reason"]
    assert report["files_set_aside"] == 2 and "set aside" in caplog.text

    # Good files are in the npz: one sample each (middle slice for the volume).
    loaded = {name: load_split(out / f"{name}.npz") for name in splits}
    total = np.sum([sp.counts() for sp in loaded.values()], axis=0)
    assert total.tolist() == [good["lesion"], good["normal"]]
    for sp in loaded.values():
        assert sp.images.shape[1:] == (1, 16, 16) and sp.images.dtype == np.float32
        assert sp.images.min() >= 0.0 and sp.images.max() <= 1.0
        assert not np.any(np.all(sp.images == 0, axis=(1, 2, 3)))
        np.testing.assert_array_equal(sp.hashes, image_hashes(sp.images))

    # Raw inputs are untouched.
    assert before == {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_no_identifying_dicom_value_reaches_outputs_or_log(tmp_path, caplog):
    root = tmp_path / "raw"
    _mixed_folder(root)
    for name in ("JPEG2000.dcm", "SC_rgb_jpeg_dcmtk.dcm", "examples_palette.dcm"):
        _copy(get_testdata_file(name), root / "normal" / "pat5" / name)
    phi = _phi_strings(root)
    assert {"Synthetic^Case", "SYNTH001", "CompressedSamples^CT1", "1CT1"} <= phi

    out = tmp_path / "out"
    with caplog.at_level(logging.DEBUG):
        for patient_from in ("parent", "dicom"):
            params = _params(root, patient_from=patient_from, stop_on_error=False)
            if patient_from == "dicom":
                params = _params(root, patient_from="dicom", formats=["dicom"])
            splits, report = build_folder_splits(params, 0.2, 0.3, seed=1)
            _write_outputs(splits, report, out / patient_from)

    text = _output_text(out) + "\n" + caplog.text
    leaked = sorted(v for v in phi if v in text)
    assert leaked == []
    groups = np.concatenate([load_split(out / "dicom" / f"{n}.npz").groups for n in splits])
    assert all(g.startswith("pt-") for g in groups)


def test_no_patient_in_two_splits_and_hashes_are_disjoint(tmp_path):
    root = tmp_path / "raw"
    rng = np.random.default_rng(0)
    for cls, n_patients in (("common", 12), ("rare", 4)):
        for p in range(n_patients):
            for k in range(3):
                img = rng.integers(0, 65535, (20, 24), dtype=np.uint16)
                path = root / cls / f"{cls}{p:02d}_{k}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(path)
    params = _params(root, patient_from="stem", intensity=_native())
    splits, report = build_folder_splits(params, 0.2, 0.25, seed=3)

    groups = {name: set(sp.groups) for name, sp in splits.items()}
    assert not groups["train"] & groups["val"] and not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    hashes = {name: set(sp.hashes) for name, sp in splits.items()}
    assert not hashes["train"] & (hashes["val"] | hashes["test"])
    assert all(c > 0 for c in report["patients_per_class"]["test"])
    assert sum(len(g) for g in groups.values()) == 16

    # Adding new patients' files keeps existing patients where they were (unless repaired).
    for p in range(12, 20):
        Image.fromarray(rng.integers(0, 65535, (20, 24), dtype=np.uint16)).save(
            root / "common" / f"common{p:02d}_0.png"
        )
    again, report2 = build_folder_splits(params, 0.2, 0.25, seed=3)
    split_of = {g: name for name, sp in splits.items() for g in sp.groups}
    split_of2 = {g: name for name, sp in again.items() for g in sp.groups}
    moved = set(report["repaired_patients"]) | set(report2["repaired_patients"])
    assert all(split_of2[g] == s for g, s in split_of.items() if g not in moved)


def _native() -> dict:
    return {
        "policy": "native",
        "window_centre": None,
        "window_width": None,
        "percentiles": [0.0, 100.0],
        "range": None,
    }


def test_manifest_layout_with_the_fixture_manifest(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    shutil.copyfile(DATA / "manifest_patients_imbalanced.csv", root / "manifest.csv")
    rng = np.random.default_rng(1)
    for i in range(20):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(
            root / f"img{i:02d}.png"
        )
    params = _params(root, layout="manifest", manifest="manifest.csv", intensity=_native())
    splits, report = build_folder_splits(params, 0.2, 0.2, seed=0)

    assert report["files_read"] == 20 and report["class_names"] == ["0", "1"]
    assert set(splits["test"].labels) == {0, 1}
    groups = [set(sp.groups) for sp in splits.values()]
    assert sum(len(g) for g in groups) == 6 == len(set().union(*groups))
    row = report["samples"][0]
    assert row["file"].startswith("img") and (row["lo"], row["hi"]) == (0.0, 255.0)


def test_manifest_missing_file_and_stop_on_error(tmp_path):
    root = tmp_path / "raw"
    for pid in ["a", "b", "c", "d"]:
        _copy(get_testdata_file("MR_small.dcm"), root / f"{pid}.dcm")
    (root / "m.csv").write_text(
        "path,label,patient_id\na.dcm,x,a\nb.dcm,x,b\nc.dcm,y,c\nd.dcm,y,d\ngone.dcm,y,d\n"
    )
    _copy(DATA / "dicom_header_only_no_pixeldata.dcm", root / "h.dcm")
    params = _params(root, layout="manifest", manifest="m.csv")
    _, report = build_folder_splits(params, 0.2, 0.3, seed=0)
    assert report["set_aside"] == [
        {"path": "gone.dcm", "reason": "listed in the manifest but not found"}
    ]

    with (root / "m.csv").open("a") as fh:
        fh.write("h.dcm,y,d\n")
    strict = _params(root, layout="manifest", manifest="m.csv", stop_on_error=True)
    with pytest.raises(UnreadableFile, match="h.dcm: no pixel data"):
        build_folder_splits(strict, 0.2, 0.3, seed=0)


def test_medmnist_layout_keeps_its_own_split(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 6), ("val", 3), ("test", 4)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2)[:, None]
    np.savez(tmp_path / "mini.npz", **arrays)
    params = _params(
        tmp_path, layout="medmnist", medmnist_file="mini.npz", intensity=_native(), target_size=28
    )
    splits, _ = build_folder_splits(params, 0.2, 0.2, seed=0)
    assert [len(splits[s].labels) for s in ("train", "val", "test")] == [6, 3, 4]
    expected = (arrays["val_images"][1] @ [0.299, 0.587, 0.114]) / 255
    np.testing.assert_allclose(splits["val"].images[1, 0], expected, atol=1e-6)
    np.testing.assert_array_equal(splits["test"].labels, [0, 1, 0, 1])


def test_patient_from_parent_needs_patient_folders(tmp_path):
    _copy(get_testdata_file("MR_small.dcm"), tmp_path / "cls" / "flat.dcm")
    with pytest.raises(ValueError, match="sits directly in its class folder"):
        build_folder_splits(_params(tmp_path), 0.2, 0.2, seed=0)


def test_params_reject_inconsistent_values(tmp_path):
    with pytest.raises(ValidationError, match="policy fixed needs range"):
        _params(tmp_path, intensity={**_native(), "policy": "fixed"})
    with pytest.raises(ValidationError, match="layout manifest needs manifest"):
        _params(tmp_path, layout="manifest")
    with pytest.raises(ValidationError, match="extra"):
        _params(tmp_path, unknown_key=1)


def test_key_file_inside_the_data_root_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ValueError, match="outside the data and output folders"):
        build_folder_splits(_params(tmp_path, key_file=str(tmp_path / "k")), 0.2, 0.2, 0)


def test_scrub_replaces_ids_in_paths_and_phi_values():
    pseudo = {"P0": "pt-1", "SMITH": "pt-2"}
    assert scrub("cls/P0/img_P0.png", pseudo, set()) == "cls/pt-1/img_P0.png"
    assert scrub("cls/SMITH_003.png", pseudo, set()) == "cls/pt-2_003.png"
    assert scrub("bad Doe^John header", {}, {"Doe^John"}) == "bad [redacted] header"
    assert json.dumps(scrub("x/SMITHY/y", pseudo, set())) == '"x/[redacted]Y/y"'

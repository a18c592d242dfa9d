"""The README's "your own data" path: a folder of DICOM and 16-bit PNG files through every stage.

The folder is built from the ingest fixtures: each patient gets noisy copies (so no two patients
share an image), DICOM headers carry identifying values that must not reach any output, and a
header-only DICOM and a truncated NIfTI must be set aside, not crash the run.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import yaml
from PIL import Image

from tests.conftest import DATA
from tests.test_stages import run_pipeline

PHI = ("Doe^Janet", "MRN-778812", "19610704")


def _png_patient(folder: Path, seed: int, n: int) -> None:
    ramp = np.asarray(Image.open(DATA / "png_16bit_ramp.png"), dtype=np.float64)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        img = np.clip(ramp * rng.uniform(0.5, 1.0) + rng.normal(0, 900, ramp.shape), 0, 65535)
        Image.fromarray(img.astype(np.uint16)).save(folder / f"img{i}.png")


def _dicom_patient(folder: Path, patient: str, seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        ds = pydicom.dcmread(DATA / "dicom_ct_rescale_slope2_intercept-1024.dcm")
        px = ds.pixel_array.astype(np.int64)
        noisy = np.clip(px[::-1] + rng.integers(-60, 60, px.shape), 0, 4095)
        ds.PixelData = noisy.astype(ds.pixel_array.dtype).tobytes()
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = PHI[0], f"{PHI[1]}-{patient}", PHI[2]
        ds.save_as(folder / f"slice{i}.dcm")


@pytest.fixture(scope="module")
def own_run(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("raw")
    for p in range(6):
        _png_patient(raw / "normal" / f"N{p}", seed=p, n=6)
    for p in range(4):
        _dicom_patient(raw / "lesion" / f"L{p}", f"L{p}", seed=100 + p, n=3)

    # Two bad files that must be set aside with their reasons.
    shutil.copy(DATA / "dicom_header_only_no_pixeldata.dcm", raw / "lesion" / "L0" / "bad.dcm")
    blob = gzip.compress((DATA / "nifti_scl_slope_zero.nii.gz").read_bytes())
    (raw / "normal" / "N0" / "cut.nii.gz").write_bytes(blob[: len(blob) // 2])

    root = tmp_path_factory.mktemp("run")
    params = yaml.safe_load((DATA / "params_smoke.yaml").read_text())
    params["data"]["source"] = "folder"
    params["data"]["folder"] = yaml.safe_load((DATA / "folder_example.yaml").read_text())
    params["data"]["folder"]["root"] = str(raw)
    params["data"]["folder"]["key_file"] = str(tmp_path_factory.mktemp("key") / "pseudonym.key")
    params_path = root / "own_params.yaml"
    params_path.write_text(yaml.safe_dump(params))
    return run_pipeline(root, params_path)


def test_bad_files_are_listed_and_good_ones_ingested(own_run):
    report = json.loads((own_run / "data/prepared/ingest_report.json").read_text())
    bad = {Path(item["path"]).name for item in report["set_aside"]}
    assert bad == {"bad.dcm", "cut.nii.gz"}
    summary = json.loads((own_run / "data/prepared/summary.json").read_text())
    assert sum(s["n"] for s in summary["splits"].values()) == 6 * 6 + 4 * 3


def test_no_identifying_header_value_reaches_any_output(own_run):
    for path in own_run.rglob("*"):
        if not path.is_file() or path.name == "own_params.yaml":
            continue
        texts = [path.read_bytes()]
        if path.suffix == ".npz":  # compressed: look inside every text array too
            with np.load(path) as npz:
                texts += [
                    " ".join(npz[k].ravel()).encode() for k in npz.files if npz[k].dtype.kind == "U"
                ]
        for value in PHI:
            assert not any(value.encode() in t for t in texts), f"{value} found in {path}"


def test_audit_and_report_come_out(own_run):
    metrics = json.loads((own_run / "metrics/classifier.json").read_text())
    assert "gain_balanced_accuracy" in metrics["gan:acgan"]
    assert (own_run / "reports/report.html").stat().st_size > 10_000

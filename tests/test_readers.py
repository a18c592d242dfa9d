"""Readers: every ingest fixture gives its expected value (tests/data/expected.json) or its
expected clear error; pydicom's bundled files (compressed ones included) decode or are set aside
naming the syntax; intensity, channels and resize against hand-computed values."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from pipeline.readers import (
    IntensityPolicy,
    RawImage,
    UnreadableFile,
    VolumeOptions,
    apply_intensity,
    collapse_channels,
    prepare_image,
    read_dicom,
    read_file,
    read_medmnist,
    read_nifti,
    read_npy,
    read_raster,
    resize_image,
)

DATA = Path(__file__).parent / "data"
NATIVE = IntensityPolicy("native")


def test_every_ingest_fixture_is_in_expected_json():
    listed = {item["file"] for item in json.loads((DATA / "expected.json").read_text())}
    for path in DATA.iterdir():
        if path.suffix in (".dcm", ".png") or path.name.endswith(".nii.gz"):
            assert path.name in listed


# ---------------------------------------------------------------------------------- DICOM


def test_monochrome1_is_inverted_after_modality_lut():
    path = DATA / "dicom_monochrome1_ramp_12bit.dcm"
    stored = pydicom.dcmread(path).pixel_array
    assert stored[0, 0] == 0 and stored[0, 63] == 4095

    (raw,) = read_dicom(path)
    unit, bounds = apply_intensity(raw.pixels, raw, NATIVE)
    assert raw.invert and bounds == (0.0, 4095.0)
    assert unit[0, 0] == 1.0 and unit[0, 63] == 0.0
    np.testing.assert_allclose(unit, (4095 - stored) / 4095, atol=1e-6)


def test_ct_rescale_slope_intercept_gives_float_hounsfield_units():
    path = DATA / "dicom_ct_rescale_slope2_intercept-1024.dcm"
    stored = pydicom.dcmread(path).pixel_array
    (raw,) = read_dicom(path)
    assert raw.pixels.dtype == np.float64
    assert np.all(raw.pixels[stored == 512] == 0.0)
    assert np.all(raw.pixels[0] == -1024.0) and np.all(stored[0] == 0)
    assert np.all(raw.pixels[1] == 1024.0) and np.all(stored[1] == 1024)
    np.testing.assert_array_equal(raw.pixels, 2.0 * stored - 1024.0)


def test_mr_without_rescale_tags_is_identity_not_ct_default():
    path = DATA / "dicom_mr_no_rescale_tags.dcm"
    stored = pydicom.dcmread(path).pixel_array
    (raw,) = read_dicom(path)
    assert np.any(stored == 512)
    np.testing.assert_array_equal(raw.pixels, stored.astype(np.float64))
    assert raw.value_range == (0.0, 4095.0)


def test_signed_12_bit_in_16_is_sign_extended():
    path = DATA / "dicom_signed_12bit_in_16.dcm"
    stored = pydicom.dcmread(path).pixel_array
    assert stored.dtype == np.int16
    (raw,) = read_dicom(path)
    assert raw.pixels[0, 0] == -2048 and raw.pixels[0, 1] == 2047 and raw.pixels[0, 2] == 0
    values, counts = np.unique(raw.pixels, return_counts=True)
    assert values[np.argmax(counts)] == -1000
    assert raw.value_range == (-2048.0, 2047.0)


def test_header_only_dicom_is_refused_with_no_pixel_data():
    with pytest.raises(UnreadableFile, match="no pixel data"):
        read_file(DATA / "dicom_header_only_no_pixeldata.dcm")


def test_dicom_without_file_meta_is_read_by_inferring_the_syntax(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("MR_small_implicit.dcm"))
    reference = ds.pixel_array.astype(np.float64)
    del ds.file_meta
    ds.preamble = None
    ds.save_as(tmp_path / "nometa.dcm", enforce_file_format=False)
    with (tmp_path / "nometa.dcm").open("rb") as fh:
        assert fh.read(132)[128:] != b"DICM"

    (raw,) = read_dicom(tmp_path / "nometa.dcm")
    np.testing.assert_array_equal(raw.pixels, reference)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("no_meta.dcm", "not a DICOM file"),
        ("meta_missing_tsyntax.dcm", "Rows/Columns"),
        ("rtplan.dcm", "no pixel data"),
        ("MR_truncated.dcm", "cannot decode"),
    ],
)
def test_pydicom_files_without_an_image_give_a_clear_reason(name, match):
    with pytest.raises(UnreadableFile, match=match):
        read_dicom(get_testdata_file(name))


COMPRESSED = [
    "MR_small_RLE.dcm",
    "SC_rgb_rle.dcm",
    "JPEG2000.dcm",
    "MR_small_jp2klossless.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "JPEG-lossy.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "JPEGLSNearLossless_08.dcm",
    "SC_rgb_jpeg_gdcm.dcm",
]


@pytest.mark.parametrize("name", COMPRESSED)
def test_compressed_dicom_decodes_or_names_syntax_and_decoder(name):
    path = get_testdata_file(name)
    syntax = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    try:
        raws = read_dicom(path)
    except UnreadableFile as exc:
        assert syntax.name in exc.reason and str(syntax) in exc.reason
        assert "not installed" in exc.reason or "cannot decode" in exc.reason
        return
    assert raws and all(np.any(raw.pixels) for raw in raws)
    assert raws[0].meta["transfer_syntax"] == syntax.name


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm"])
def test_lossless_compressed_matches_uncompressed(name):
    reference = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array
    try:
        (raw,) = read_dicom(get_testdata_file(name))
    except UnreadableFile as exc:
        assert "not installed" in exc.reason or "cannot decode" in exc.reason
        return
    np.testing.assert_array_equal(raw.pixels, reference)


def test_multi_frame_gives_one_sample_per_frame_and_one_frame_the_same_layout():
    many = read_dicom(get_testdata_file("rtdose.dcm"))
    one = read_dicom(get_testdata_file("rtdose_1frame.dcm"))
    stored = pydicom.dcmread(get_testdata_file("rtdose.dcm")).pixel_array  # (15, 10, 10)
    assert len(many) == 15 and len(one) == 1
    assert {raw.pixels.shape for raw in many + one} == {(10, 10)}
    np.testing.assert_array_equal(many[3].pixels, stored[3])
    assert [raw.meta["frame"] for raw in many] == list(range(15))


def test_colour_dicoms_collapse_to_luma():
    (ybr,) = read_dicom(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    (palette,) = read_dicom(get_testdata_file("examples_palette.dcm"))
    assert ybr.pixels.shape == (100, 100, 3) and palette.pixels.shape == (350, 800, 3)
    grey = collapse_channels(ybr.pixels, 1)
    np.testing.assert_allclose(grey[0], ybr.pixels @ [0.299, 0.587, 0.114])


def test_file_voi_window_uses_the_standard_linear_function():
    (raw,) = read_dicom(get_testdata_file("MR_small.dcm"))
    assert (raw.voi.centre, raw.voi.width, raw.voi.function) == (600.0, 1600.0, "LINEAR")
    x = np.array([[-300.0, 599.5, 1500.0, 2000.0]])
    unit, bounds = apply_intensity(x, raw, IntensityPolicy("window"))
    # y = ((x - (c - 0.5)) / (w - 1) + 0.5), clipped: PS3.3 C.11.2.1.2.1
    expected = np.clip((x - 599.5) / 1599.0 + 0.5, 0, 1)
    np.testing.assert_allclose(unit, expected, atol=1e-6)
    assert bounds == (-200.0, 1400.0)


def test_param_window_overrides_file_and_monochrome1_inverts_after_it():
    raw = RawImage(np.array([[-1000.0, 40.0, 1000.0]]), (-1024.0, 3071.0), {}, invert=True)
    unit, _ = apply_intensity(raw.pixels, raw, IntensityPolicy("window", centre=40.5, width=401))
    np.testing.assert_allclose(unit, [[1.0, 0.5, 0.0]], atol=1e-6)


def test_window_policy_without_any_window_is_a_clear_error():
    raw = RawImage(np.zeros((2, 2)), (0.0, 1.0), {"format": "dicom"})
    with pytest.raises(UnreadableFile, match="no window in params and none in the file"):
        apply_intensity(raw.pixels, raw, IntensityPolicy("window"))


# ---------------------------------------------------------------------------------- NIfTI


def _voxel(raws, x, y, z, size=16):
    # Axial slice z, rotated: plane[H - 1 - y, x] holds voxel (x, y, z) of the RAS volume.
    return raws[z].pixels[size - 1 - y, x]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("nifti_scl_slope_zero.nii.gz", 64.0),
        ("nifti_scl_slope_nan.nii.gz", 64.0),
        ("nifti_scl_slope2_inter-100.nii.gz", 28.0),
    ],
)
def test_nifti_scaling_follows_nibabel_and_the_standard(name, value):
    img = nib.load(DATA / name)
    assert img.get_fdata()[1, 0, 0] == value  # nibabel's own reading
    raws = read_nifti(DATA / name, VolumeOptions(axis="axial"))
    assert len(raws) == 4 and raws[0].pixels.shape == (16, 16)
    assert _voxel(raws, 1, 0, 0) == value
    assert all(np.isfinite(raw.pixels).all() for raw in raws)


def test_nifti_4d_policy_is_explicit():
    path = DATA / "nifti_4d_16x16x4x3.nii.gz"
    with pytest.raises(UnreadableFile, match="4-D image with 3 volumes"):
        read_nifti(path, VolumeOptions(four_d="reject"))

    raws = read_nifti(path, VolumeOptions(four_d="all"))
    assert len(raws) == 12 and {raw.pixels.shape for raw in raws} == {(16, 16)}
    for raw in raws:
        assert np.all(raw.pixels == 10.0 * (raw.meta["volume"] + 1))

    third = read_nifti(path, VolumeOptions(four_d="index", volume_index=2, policy="middle"))
    assert len(third) == 1 and np.all(third[0].pixels == 30.0)
    with pytest.raises(UnreadableFile, match="volume_index 5 out of range"):
        read_nifti(path, VolumeOptions(four_d="index", volume_index=5))


def test_nifti_slices_are_canonical_whatever_the_stored_orientation(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    ras = nib.Nifti1Image(data, np.eye(4))
    # The same voxels stored left-right flipped (LAS): the affine says so.
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = 3.0
    las = nib.Nifti1Image(data[::-1].copy(), flip)
    nib.save(ras, tmp_path / "ras.nii")
    nib.save(las, tmp_path / "las.nii")
    opts = VolumeOptions(axis="coronal")
    a, b = read_nifti(tmp_path / "ras.nii", opts), read_nifti(tmp_path / "las.nii", opts)
    assert len(a) == 5 and a[0].pixels.shape == (6, 4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.pixels, y.pixels)
    # Coronal plane (X, Z) -> (H, W) = (Z reversed, X): superior up.
    np.testing.assert_array_equal(a[2].pixels, np.rot90(data[:, 2, :]))


def test_truncated_and_mislabelled_gzip_are_found_naming_the_file(tmp_path):
    blob = (DATA / "nifti_scl_slope_zero.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "plain.nii.gz").write_bytes(gzip.decompress(blob))
    (tmp_path / "zipped.nii").write_bytes(blob)
    (tmp_path / "short.nii").write_bytes(gzip.decompress(blob)[:-100])
    cases = {
        "cut.nii.gz": "truncated or corrupt gzip",
        "plain.nii.gz": "not gzip-compressed",
        "zipped.nii": "gzip-compressed but named .nii",
        "short.nii": "truncated: the header declares",
    }
    for name, match in cases.items():
        with pytest.raises(UnreadableFile, match=match) as info:
            read_file(tmp_path / name)
        assert name in str(info.value)


# ---------------------------------------------------------------------------------- rasters


def test_16_bit_png_keeps_full_depth_and_scales():
    (raw,) = read_raster(DATA / "png_16bit_ramp.png")
    assert raw.pixels.max() == 65535 and len(np.unique(raw.pixels)) == 64
    assert raw.pixels.shape == (16, 64) and raw.value_range == (0.0, 65535.0)
    unit, _ = apply_intensity(raw.pixels, raw, NATIVE)
    assert len(np.unique(unit)) == 64
    view8 = np.round(unit.astype(np.float64) * 255)
    np.testing.assert_array_equal(view8, np.round(raw.pixels / 257))
    assert np.round(1040 / 65535 * 255) == 4 and np.round(32768 / 65535 * 255) == 128


def test_tiff_16_bit_pages_and_rgba_png(tmp_path):
    ramp = (np.arange(12 * 10).reshape(12, 10) * 500).astype(np.uint16)
    pages = [Image.fromarray(ramp), Image.fromarray(ramp[::-1].copy())]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    raws = read_raster(tmp_path / "stack.tif")
    assert len(raws) == 2 and raws[0].value_range == (0.0, 65535.0)
    np.testing.assert_array_equal(raws[1].pixels, ramp[::-1])

    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 17
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    (raw,) = read_raster(tmp_path / "rgba.png")
    grey = collapse_channels(raw.pixels, 1)
    np.testing.assert_allclose(grey, 0.299 * 200)
    assert collapse_channels(raw.pixels, 3).shape == (3, 4, 6)


def test_thermal_npy_maps_to_unit_range_and_back(tmp_path):
    temps = np.linspace(21.5, 37.25, 2 * 8 * 8).reshape(2, 8, 8)
    np.save(tmp_path / "thermal.npy", temps)
    raws = read_npy(tmp_path / "thermal.npy")
    assert len(raws) == 2 and raws[0].value_range == (21.5, 37.25)
    img, (lo, hi) = prepare_image(raws[1], NATIVE, size=8, channels=1)
    np.testing.assert_allclose(lo + img[0] * (hi - lo), temps[1], atol=1e-4)
    np.save(tmp_path / "bad.npy", np.array([[1.0, np.inf]]))
    with pytest.raises(UnreadableFile, match="infinite"):
        read_file(tmp_path / "bad.npy")


def test_medmnist_npz(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 5), ("val", 2), ("test", 3)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 3, (n, 1))
    np.savez(tmp_path / "mini.npz", **arrays)
    data = read_medmnist(tmp_path / "mini.npz")
    assert data["test"][0].shape == (3, 28, 28) and data["train"][1].shape == (5,)
    del arrays["val_labels"]
    np.savez(tmp_path / "broken.npz", **arrays)
    with pytest.raises(UnreadableFile, match="missing arrays"):
        read_medmnist(tmp_path / "broken.npz")


# ---------------------------------------------------------------------------------- policy


def test_percentile_fixed_and_constant_images():
    pixels = np.arange(101, dtype=np.float64)[None]
    raw = RawImage(pixels, (0.0, 100.0), {})
    unit, bounds = apply_intensity(pixels, raw, IntensityPolicy("percentile", percentiles=(10, 90)))
    assert bounds == (10.0, 90.0)
    np.testing.assert_allclose(unit, np.clip((pixels - 10) / 80, 0, 1), atol=1e-6)
    unit, _ = apply_intensity(pixels, raw, IntensityPolicy("fixed", fixed_range=(0.0, 200.0)))
    np.testing.assert_allclose(unit, pixels / 200, atol=1e-6)
    mostly_air = np.full((100, 100), -1000.0)
    mostly_air[0, :2] = (-2048.0, 2047.0)
    air = RawImage(mostly_air, (-2048.0, 2047.0), {})
    unit, bounds = apply_intensity(mostly_air, air, IntensityPolicy("percentile"))
    assert bounds == (-2048.0, 2047.0) and unit[0, 1] == 1.0 and unit[5, 5] > 0
    flat = RawImage(np.full((3, 3), 7.0), (7.0, 7.0), {})
    unit, _ = apply_intensity(flat.pixels, flat, NATIVE)
    assert np.all(unit == 0.0)


def test_resize_keeps_range_and_pads_aspect():
    img = np.ones((1, 8, 16), dtype=np.float32)
    out = resize_image(img, 4, "stretch")
    assert out.shape == (1, 4, 4) and np.allclose(out, 1.0)
    padded = resize_image(img, 16, "pad")
    assert padded.shape == (1, 16, 16)
    assert np.all(padded[0, :4] == 0) and np.all(padded[0, 4:12] == 1)

"""Per-format image readers and the step that turns what they read into float32 [0, 1] images.

Each reader turns one file into a list of ``RawImage``, one per 2-D sample (a DICOM frame, a
NIfTI slice, a TIFF page, a row of a ``.npy`` stack). A ``RawImage`` holds the pixels in the
file's own units (the DICOM modality LUT's output such as Hounsfield units, scaled NIfTI values,
raw 8/16-bit counts, temperatures) and what the intensity step needs: the native value range,
the file's VOI window and whether the display is inverted (MONOCHROME1). ``prepare_image`` then
collapses channels, applies the intensity policy and resizes.

A file that cannot be read raises ``UnreadableFile`` with a reason a person can act on; the
batch reader in ``pipeline.folder_source`` sets such files aside.

Shape letters: N samples, C channels, S samples per pixel in the file (3 RGB, 4 RGBA),
F frames, H/W rows/columns, X/Y/Z volume axes (RAS after ``as_closest_canonical``),
T volumes of a 4-D series.
"""

from __future__ import annotations

import gzip
import logging
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import torch
import torch.nn.functional as F
from PIL import Image, ImageSequence
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

log = logging.getLogger(__name__)

# Header fields that identify a person. Readers collect their values (in memory only) so the
# batch reader can scrub them from anything it writes; they are never copied to outputs.
PHI_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientBirthName",
    "PatientMotherBirthName",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "InstitutionName",
    "InstitutionAddress",
    "AccessionNumber",
    "StationName",
)

# ITU-R BT.601 luma weights, the usual RGB -> grey for medical screenshots and camera frames.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])

SUFFIXES = {
    "dicom": (".dcm", ".dicom", ".ima"),
    "nifti": (".nii", ".nii.gz"),
    "png": (".png",),
    "tiff": (".tif", ".tiff"),
    "npy": (".npy",),
}


class UnreadableFile(ValueError):
    """A file that cannot become an image; ``reason`` says why and how to fix it."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class Voi:
    """A DICOM VOI window: centre and width in modality units, and the VOI LUT function."""

    centre: float
    width: float
    function: str = "LINEAR"  # LINEAR | LINEAR_EXACT | SIGMOID (PS3.3 C.11.2.1.2)


@dataclass(frozen=True)
class RawImage:
    """One 2-D sample in its file's units, before intensity mapping."""

    pixels: np.ndarray  # (H, W) or (H, W, S) float64, file units
    value_range: tuple[float, float]  # native (lo, hi) of those units
    meta: dict[str, Any]  # non-identifying facts: format, modality, frame, slice, volume
    invert: bool = False  # MONOCHROME1: invert after the VOI step
    voi: Voi | None = None  # the file's own window, if any
    patient_id: str | None = field(default=None, repr=False)  # raw id; memory only
    phi: tuple[str, ...] = field(default=(), repr=False)  # identifying header values


@dataclass(frozen=True)
class VolumeOptions:
    """How NIfTI volumes become 2-D slices."""

    axis: str = "axial"  # axial | coronal | sagittal, in RAS after as_closest_canonical
    policy: str = "all"  # all | middle
    step: int = 1  # with policy all: keep every step-th slice
    four_d: str = "reject"  # all | first | index | reject: what to do with a 4th axis
    volume_index: int = 0  # with four_d index: the volume to keep


# --------------------------------------------------------------------------------------------
# Dispatch


def detect_format(path: Path) -> str | None:
    """Format name of ``path`` from its suffix (or the DICM magic for suffix-less files)."""
    name = path.name.lower()
    for fmt, suffixes in SUFFIXES.items():
        if name.endswith(suffixes):
            return fmt
    if path.suffix == "" and _has_dicm_magic(path):
        return "dicom"
    return None


def _has_dicm_magic(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(132)[128:] == b"DICM"
    except OSError:
        return False


def read_file(path: str | Path, volume: VolumeOptions | None = None) -> list[RawImage]:
    """Read any supported file into its 2-D samples.

    Raises:
        UnreadableFile: the file is missing, of an unknown format, or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise UnreadableFile(path, "file not found")
    fmt = detect_format(path)
    if fmt is None:
        known = ", ".join(s for group in SUFFIXES.values() for s in group)
        raise UnreadableFile(path, f"unknown file type; expected one of {known} or DICOM")
    try:
        return READERS[fmt](path, volume or VolumeOptions())
    except UnreadableFile:
        raise
    except Exception as exc:  # libraries raise many types on corrupt files; keep the reason
        raise UnreadableFile(path, f"{fmt} reader failed: {type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# DICOM


@contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's warnings while reading: they quote header values, which may be PHI."""
    logger = logging.getLogger("pydicom")
    was_disabled = logger.disabled
    logger.disabled = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.disabled = was_disabled


def read_dicom(path: str | Path) -> list[RawImage]:
    """Read a DICOM file into one ``RawImage`` per frame, in modality units.

    The modality LUT (Modality LUT Sequence, or Rescale Slope/Intercept) is applied when the file
    has one and is the identity otherwise, whatever the modality. MONOCHROME1 is flagged for
    inversion after the VOI step, as the standard orders it. Colour data (RGB, YBR decoded to
    RGB, PALETTE COLOR through its LUT) keeps S = 3 samples per pixel.

    Raises:
        UnreadableFile: no pixel data, no transfer syntax, a compressed syntax without an
            installed decoder (the reason names both), a failed decode, or an all-zero decode.
    """
    path = Path(path)
    with _quiet_pydicom():
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception as exc:
            reason = f"not a readable DICOM file ({type(exc).__name__}: {exc})"
            raise UnreadableFile(path, reason) from None
        _check_pixel_module(ds, path)
        syntax = _transfer_syntax(ds, path)
        frames = _decode_frames(ds, syntax, path)  # (F, H, W[, S]) stored values

        # Stored values -> modality units; grey images only (colour has no modality LUT).
        is_grey = frames.ndim == 3
        if is_grey:
            values = np.asarray(apply_modality_lut(frames, ds), dtype=np.float64)
            value_range = _dicom_native_range(ds, frames)
        else:
            values = frames.astype(np.float64)
            value_range = _dtype_range(frames)

    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    meta = {
        "format": "dicom",
        "modality": str(ds.get("Modality", "")),
        "photometric": photometric,
        "transfer_syntax": syntax.name,
        "frames": int(values.shape[0]),
    }
    phi = _phi_values(ds)
    patient_id = str(ds.get("PatientID", "") or "").strip() or None
    voi = _dicom_voi(ds) if is_grey else None
    return [
        RawImage(
            pixels=frame,
            value_range=value_range,
            meta={**meta, "frame": i},
            invert=is_grey and photometric == "MONOCHROME1",
            voi=voi,
            patient_id=patient_id,
            phi=phi,
        )
        for i, frame in enumerate(values)
    ]


def _check_pixel_module(ds: pydicom.Dataset, path: Path) -> None:
    """Refuse files with no image in them, saying which kind of file it looks like."""
    has_pixels = any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    has_meta = "TransferSyntaxUID" in getattr(ds, "file_meta", {})
    if not has_pixels and not has_meta and len(ds) < 3:
        raise UnreadableFile(path, "no pixel data: not a DICOM file (no file meta, no elements)")
    if not has_pixels:
        kind = str(ds.get("Modality", "")) or "unknown modality"
        raise UnreadableFile(
            path,
            f"no pixel data (7FE0,0010): a header-only DICOM ({kind}) with no image to ingest; "
            "remove it from the data folder or manifest",
        )
    missing = [k for k in ("Rows", "Columns") if not ds.get(k)]
    if missing:
        raise UnreadableFile(path, f"pixel data present but {'/'.join(missing)} missing or 0")


def _transfer_syntax(ds: pydicom.Dataset, path: Path) -> UID:
    """The file's transfer syntax; for files without file meta, infer it from the encoding."""
    syntax = getattr(ds, "file_meta", {}).get("TransferSyntaxUID")
    if syntax is not None:
        return UID(syntax)

    # A file without file meta can only hold native (uncompressed) pixel data we can interpret.
    implicit, little = ds.original_encoding
    if "PixelData" in ds and ds["PixelData"].is_undefined_length:
        raise UnreadableFile(
            path,
            "no file meta (0002,0010) Transfer Syntax UID and the pixel data is compressed, "
            "so its codec is unknown; re-export the file with its file meta",
        )
    if implicit is None or little is None:
        raise UnreadableFile(path, "no file meta and the encoding cannot be determined")
    if implicit:
        syntax = ImplicitVRLittleEndian
    else:
        syntax = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    ds.ensure_file_meta()
    ds.file_meta.TransferSyntaxUID = syntax  # in memory only; the raw file is never written
    log.debug("%s: no file meta; read as %s", path.name, syntax.name)
    return syntax


def _decode_frames(ds: pydicom.Dataset, syntax: UID, path: Path) -> np.ndarray:
    """Decode pixel data to stored values, (F, H, W) grey or (F, H, W, S) colour."""
    # A compressed syntax needs a decoder plugin; name both when none is installed.
    missing = ""
    if syntax.is_compressed:
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError:
            raise UnreadableFile(
                path, f"transfer syntax '{syntax.name}' ({syntax}) has no pixel decoder in pydicom"
            ) from None
        missing = "; ".join(decoder.missing_dependencies)
        if not decoder.is_available:
            raise UnreadableFile(
                path,
                f"compressed transfer syntax '{syntax.name}' ({syntax}) needs a decoder that is "
                f"not installed: {missing}",
            )

    # Decode; pydicom sign-extends BitsStored < BitsAllocated and converts YBR to RGB.
    try:
        arr = ds.pixel_array
    except Exception as exc:
        hint = f"; other decoders: {missing}" if missing else ""
        raise UnreadableFile(
            path, f"cannot decode '{syntax.name}' ({syntax}) pixel data: {exc}{hint}"
        ) from None
    if syntax.is_compressed and not np.any(arr):
        raise UnreadableFile(
            path, f"'{syntax.name}' ({syntax}) decoded to an all-zero image; the decoder failed"
        )

    # Palette colour goes through its LUT to RGB; then give every file a frame axis.
    samples = int(ds.get("SamplesPerPixel", 1))
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if photometric == "PALETTE COLOR":
        arr, samples = apply_color_lut(arr, ds), 3
    if arr.ndim == (2 if samples == 1 else 3):
        arr = arr[None]  # one frame -> (1, H, W[, S])
    return arr


def _dtype_range(arr: np.ndarray) -> tuple[float, float]:
    """(min, max) representable by an integer dtype, or the data's own range for floats."""
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        return float(info.min), float(info.max)
    if arr.dtype == bool:
        return 0.0, 1.0
    return float(np.nanmin(arr)), float(np.nanmax(arr))


def _dicom_native_range(ds: pydicom.Dataset, frames: np.ndarray) -> tuple[float, float]:
    """The stored-value range implied by BitsStored and signedness, through the modality LUT."""
    bits = ds.get("BitsStored")
    if not bits or not np.issubdtype(frames.dtype, np.integer):
        lo, hi = float(np.nanmin(frames)), float(np.nanmax(frames))
    elif int(ds.get("PixelRepresentation", 0)) == 1:
        lo, hi = -(2 ** (int(bits) - 1)), 2 ** (int(bits) - 1) - 1
    else:
        lo, hi = 0, 2 ** int(bits) - 1
    ends = np.asarray(apply_modality_lut(np.array([lo, hi], dtype=np.int64), ds), float)
    return float(ends.min()), float(ends.max())


def _dicom_voi(ds: pydicom.Dataset) -> Voi | None:
    """The first window in the file's VOI LUT module, if it has a usable one."""
    centre, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centre is None or width is None:
        return None
    centre = float(centre[0] if isinstance(centre, pydicom.multival.MultiValue) else centre)
    width = float(width[0] if isinstance(width, pydicom.multival.MultiValue) else width)
    if width <= 0:
        return None
    function = str(ds.get("VOILUTFunction", "LINEAR")).strip().upper() or "LINEAR"
    return Voi(centre, width, function)


def _phi_values(ds: pydicom.Dataset) -> tuple[str, ...]:
    """Non-empty values of the identifying header fields, for scrubbing outputs."""
    values = []
    for keyword in PHI_KEYWORDS:
        value = ds.get(keyword)
        items = value if isinstance(value, pydicom.multival.MultiValue) else [value]
        values += [str(v).strip() for v in items if v is not None and str(v).strip()]
    return tuple(values)


# --------------------------------------------------------------------------------------------
# NIfTI

SLICE_AXES = {"sagittal": 0, "coronal": 1, "axial": 2}


def read_nifti(path: str | Path, volume: VolumeOptions) -> list[RawImage]:
    """Read a NIfTI file into 2-D slices in one canonical (RAS) orientation.

    nibabel applies scl_slope/scl_inter and treats a slope of 0 or NaN as "unscaled", as the
    NIfTI-1 standard says. Each slice is rotated so the second in-plane RAS axis points up
    (anterior up for axial, superior up for coronal and sagittal), the same as the MNI patches.
    The native range is the whole file's (min, max), so all its slices share one scale.

    Raises:
        UnreadableFile: a truncated or mislabelled gzip, data shorter than the header declares,
            or a 4-D file with ``four_d: reject``.
    """
    path = Path(path)
    _check_gzip(path)
    _check_nifti_length(path)
    img = nib.load(path)

    # Reorient to the closest RAS, read scaled values, fill NaN voxels with the minimum.
    data = np.asarray(nib.as_closest_canonical(img).get_fdata(), dtype=np.float64)
    n_nan = int(np.isnan(data).sum())
    if n_nan == data.size:
        raise UnreadableFile(path, "every voxel is NaN")
    data = np.nan_to_num(data, nan=float(np.nanmin(data)))
    while data.ndim > 4 and data.shape[-1] == 1:
        data = data[..., 0]

    volumes = _select_volumes(data, volume, path)  # list of (t, (X, Y, Z) or (X, Y))
    value_range = (float(data.min()), float(data.max()))
    meta = {"format": "nifti", "nan_voxels": n_nan}
    out = []
    for t, vol in volumes:
        for k, plane in _slices(vol, volume):
            out.append(RawImage(plane, value_range, {**meta, "volume": t, "slice": k}))
    return out


def _check_gzip(path: Path) -> None:
    """Find a mislabelled or truncated gzip now, naming the file, not later in a worker."""
    with path.open("rb") as fh:
        is_gzip = fh.read(2) == b"\x1f\x8b"
    named_gzip = path.name.lower().endswith(".gz")
    if named_gzip and not is_gzip:
        raise UnreadableFile(path, "named .gz but not gzip-compressed; rename it to .nii")
    if is_gzip and not named_gzip:
        raise UnreadableFile(path, "gzip-compressed but named .nii; rename it to .nii.gz")
    if is_gzip:
        try:
            with gzip.open(path, "rb") as fh:
                while fh.read(1 << 20):
                    pass
        except (EOFError, OSError, zlib.error) as exc:
            raise UnreadableFile(
                path, f"truncated or corrupt gzip stream ({exc}); copy or export the file again"
            ) from None


def _check_nifti_length(path: Path) -> None:
    """Compare the voxel bytes a NIfTI-1 header declares with what the (decompressed) file
    holds, before nibabel reads it; other headers are left to nibabel."""
    is_gzip = path.name.lower().endswith(".gz")
    opener = gzip.open if is_gzip else open
    with opener(path, "rb") as fh:
        try:
            header = nib.Nifti1Header.from_fileobj(fh, check=False)
        except Exception:  # not NIfTI-1 (e.g. NIfTI-2): nibabel reports its own errors
            return
        need = int(header.get_data_offset()) + int(
            np.prod(header.get_data_shape()) * header.get_data_dtype().itemsize
        )
    if is_gzip:
        with gzip.open(path, "rb") as fh:
            have = sum(len(chunk) for chunk in iter(lambda: fh.read(1 << 20), b""))
    else:
        have = path.stat().st_size
    if have < need:
        raise UnreadableFile(
            path,
            f"truncated: the header declares {need} bytes up to the end of the voxel data, "
            f"the file holds {have}; copy or export it again",
        )


def _select_volumes(
    data: np.ndarray, volume: VolumeOptions, path: Path
) -> list[tuple[int, np.ndarray]]:
    """Apply the 4-D policy; returns (volume index, (X, Y[, Z]) array) pairs."""
    if data.ndim <= 3:
        return [(0, data)]
    if data.ndim > 4:
        raise UnreadableFile(path, f"expected a 2-D, 3-D or 4-D image, got shape {data.shape}")
    n_vol = data.shape[3]
    chosen = {
        "all": list(range(n_vol)),
        "first": [0],
        "index": [volume.volume_index],
        "reject": [],
    }.get(volume.four_d)
    if chosen is None:
        raise ValueError(f"unknown four_d policy {volume.four_d!r}; use all|first|index|reject")
    if not chosen:
        raise UnreadableFile(
            path,
            f"4-D image with {n_vol} volumes of shape {data.shape[:3]}; set the 4-D policy "
            "(data.folder.volume.four_d) to all, first or index to ingest it",
        )
    if chosen[0] >= n_vol:
        raise UnreadableFile(path, f"volume_index {chosen[0]} out of range: {n_vol} volumes")
    return [(t, data[..., t]) for t in chosen]


def _slices(vol: np.ndarray, volume: VolumeOptions) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (slice index, (H, W) plane) along the declared axis, second axis pointing up."""
    if vol.ndim == 2:
        yield 0, np.rot90(vol).copy()
        return
    if volume.axis not in SLICE_AXES:
        raise ValueError(f"unknown slice axis {volume.axis!r}; use {'|'.join(SLICE_AXES)}")
    axis = SLICE_AXES[volume.axis]
    n = vol.shape[axis]
    if volume.policy == "middle":
        indices = [n // 2]
    elif volume.policy == "all":
        indices = list(range(0, n, volume.step))
    else:
        raise ValueError(f"unknown slice policy {volume.policy!r}; use all|middle")
    for k in indices:
        # (a, b) in-plane RAS axes -> rot90 gives (H, W) = (b reversed, a).
        yield k, np.rot90(np.take(vol, k, axis=axis)).copy()


# --------------------------------------------------------------------------------------------
# Rasters and arrays


def read_raster(path: str | Path) -> list[RawImage]:
    """Read a PNG or TIFF (every page) keeping the full bit depth.

    8-bit data has native range [0, 255], 16-bit [0, 65535] (never reduced to 8 bits), 32-bit
    integer and float pages their own (min, max). Palette images become RGB(A).

    Limitations: Pillow reads 16-bit RGB/RGBA PNGs as 8-bit RGB; grey 16-bit is read in full.
    """
    path = Path(path)
    out = []
    with Image.open(path) as im:
        for page_index, page in enumerate(ImageSequence.Iterator(im)):
            arr, value_range = _page_to_array(page, path)
            meta = {"format": "raster", "mode": page.mode, "page": page_index}
            out.append(RawImage(arr.astype(np.float64), value_range, meta))
    return out


def _page_to_array(page: Image.Image, path: Path) -> tuple[np.ndarray, tuple[float, float]]:
    """One Pillow page -> ((H, W) or (H, W, S) array, native range)."""
    mode = page.mode
    if mode == "P":
        page = page.convert("RGBA" if "transparency" in page.info else "RGB")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        page = page.convert("RGB")
    elif mode in ("LA", "La", "PA"):
        page = page.convert("L")
    arr = np.asarray(page)
    if arr.dtype == bool:
        return arr.astype(np.uint8), (0.0, 1.0)
    if arr.dtype.kind in "ui" and arr.dtype.itemsize <= 2:
        arr = arr.astype(arr.dtype.newbyteorder("="))  # 8/16-bit: the bit depth's range
        return arr, _dtype_range(arr)
    if np.issubdtype(arr.dtype, np.number):
        return arr, (float(arr.min()), float(arr.max()))
    raise UnreadableFile(path, f"unsupported image mode {mode!r} (dtype {arr.dtype})")


def read_npy(path: str | Path) -> list[RawImage]:
    """Read a float array of temperatures (or any real values): (H, W) or (N, H, W).

    The native range is the file's (min, max); it is recorded so values map back to physical
    units: value = lo + y * (hi - lo). NaN pixels (invalid camera pixels) become the minimum.
    """
    path = Path(path)
    arr = np.load(path, allow_pickle=False)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
        raise UnreadableFile(path, f"expected a real-valued array, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise UnreadableFile(path, f"expected shape (H, W) or (N, H, W), got {arr.shape}")
    arr = arr.astype(np.float64).reshape((-1, *arr.shape[-2:]))  # (N, H, W)
    if np.isinf(arr).any():
        raise UnreadableFile(path, "array holds infinite values; replace them with NaN or a value")
    n_nan = int(np.isnan(arr).sum())
    if n_nan == arr.size:
        raise UnreadableFile(path, "every value is NaN")
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    arr = np.nan_to_num(arr, nan=lo)
    meta = {"format": "npy", "nan_pixels": n_nan}
    return [RawImage(img, (lo, hi), {**meta, "frame": i}) for i, img in enumerate(arr)]


MEDMNIST_SPLITS = ("train", "val", "test")


def read_medmnist(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read a MedMNIST-style ``.npz``: ``{split}_images`` (N, H, W[, 3]) uint8 and
    ``{split}_labels`` (N,) or (N, 1) for split in train/val/test.

    Returns:
        split -> (images as stored, labels int64 (N,)).
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as npz:
        need = [f"{s}_{k}" for s in MEDMNIST_SPLITS for k in ("images", "labels")]
        missing = [k for k in need if k not in npz.files]
        if missing:
            raise UnreadableFile(
                path, f"missing arrays {missing}; found {sorted(npz.files)} (MedMNIST layout)"
            )
        out = {}
        for split in MEDMNIST_SPLITS:
            imgs, labels = npz[f"{split}_images"], npz[f"{split}_labels"]
            if labels.ndim == 2 and labels.shape[1] != 1:
                raise UnreadableFile(
                    path, f"{split}_labels has shape {labels.shape}: multi-label is not supported"
                )
            is_colour = imgs.ndim == 4 and imgs.shape[-1] in (3, 4)
            if not (imgs.ndim == 3 or is_colour):
                raise UnreadableFile(
                    path, f"{split}_images: expected (N, H, W) or (N, H, W, 3), got {imgs.shape}"
                )
            labels = labels.reshape(-1).astype(np.int64)
            if len(labels) != len(imgs):
                raise UnreadableFile(path, f"{split}: {len(imgs)} images but {len(labels)} labels")
            out[split] = (imgs, labels)
    return out


def medmnist_to_raw(imgs: np.ndarray) -> list[RawImage]:
    """Wrap MedMNIST images (N, H, W[, 3]) as ``RawImage`` with their dtype's native range."""
    value_range = _dtype_range(imgs)
    meta = {"format": "medmnist"}
    return [
        RawImage(img.astype(np.float64), value_range, {**meta, "index": i})
        for i, img in enumerate(imgs)
    ]


READERS: dict[str, Callable[[Path, VolumeOptions], list[RawImage]]] = {
    "dicom": lambda path, _: read_dicom(path),
    "nifti": read_nifti,
    "png": lambda path, _: read_raster(path),
    "tiff": lambda path, _: read_raster(path),
    "npy": lambda path, _: read_npy(path),
}


# --------------------------------------------------------------------------------------------
# Intensity, channels, size


@dataclass(frozen=True)
class IntensityPolicy:
    """How file units map to [0, 1].

    ``window``: a centre/width in file units (``centre``/``width``), or the file's own VOI
    window when they are None; ``percentile``: the (lo, hi) percentiles of each image;
    ``fixed``: one (lo, hi) for every file, e.g. temperatures 20-40 degC; ``native``: the file's
    native range (bit depth through the modality LUT, or the volume's/array's min and max).
    """

    policy: str = "percentile"  # window | percentile | fixed | native
    centre: float | None = None
    width: float | None = None
    percentiles: tuple[float, float] = (0.5, 99.5)
    fixed_range: tuple[float, float] | None = None


def _voi_linear(x: np.ndarray, c: float, w: float) -> np.ndarray:
    # PS3.3 C.11.2.1.2.1: the default LINEAR function, centred on c - 0.5 over w - 1 steps.
    if w <= 1:
        return (x > c - 0.5).astype(np.float64)
    return (x - (c - 0.5)) / (w - 1) + 0.5


def _voi_linear_exact(x: np.ndarray, c: float, w: float) -> np.ndarray:
    # PS3.3 C.11.2.1.3.2
    return (x - c) / w + 0.5


def _voi_sigmoid(x: np.ndarray, c: float, w: float) -> np.ndarray:
    # PS3.3 C.11.2.1.3.1
    return 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))


VOI_FUNCTIONS = {
    "LINEAR": _voi_linear,
    "LINEAR_EXACT": _voi_linear_exact,
    "SIGMOID": _voi_sigmoid,
}


def apply_intensity(
    pixels: np.ndarray, raw: RawImage, policy: IntensityPolicy
) -> tuple[np.ndarray, tuple[float, float]]:
    """Map file units to float32 [0, 1] and invert MONOCHROME1 afterwards.

    Returns:
        the image float32 [0, 1] (same shape as ``pixels``) and the (lo, hi) file-unit values
        mapped to 0 and 1, so that value = lo + y * (hi - lo) for unclipped linear maps.

    Raises:
        UnreadableFile: ``window`` with no window in params or in the file.
    """
    if policy.policy == "window":
        voi = raw.voi
        if policy.centre is not None and policy.width is not None:
            voi = Voi(policy.centre, policy.width)
        if voi is None:
            raise UnreadableFile(
                raw.meta.get("format", "file"),
                "intensity policy 'window' but no window in params and none in the file; "
                "set data.folder.intensity.window_centre/window_width",
            )
        func = VOI_FUNCTIONS.get(voi.function, _voi_linear)
        unit = func(pixels, voi.centre, voi.width)
        bounds = (voi.centre - voi.width / 2, voi.centre + voi.width / 2)
    else:
        bounds = _bounds(pixels, raw, policy)
        span = bounds[1] - bounds[0]
        # A constant image has no contrast: it maps to 0 rather than dividing by zero.
        unit = (pixels - bounds[0]) / span if span > 0 else np.zeros_like(pixels)
    unit = np.clip(unit, 0.0, 1.0)
    if raw.invert:
        unit = 1.0 - unit
    return unit.astype(np.float32), (float(bounds[0]), float(bounds[1]))


def _bounds(pixels: np.ndarray, raw: RawImage, policy: IntensityPolicy) -> tuple[float, float]:
    if policy.policy == "percentile":
        lo, hi = np.percentile(pixels, policy.percentiles)
        if hi <= lo:
            # A mostly flat image (e.g. air around a few pixels): fall back to its full range.
            lo, hi = pixels.min(), pixels.max()
        return float(lo), float(hi)
    if policy.policy == "fixed":
        if policy.fixed_range is None:
            raise ValueError("intensity policy 'fixed' needs fixed_range (lo, hi)")
        return policy.fixed_range
    if policy.policy == "native":
        return raw.value_range
    raise ValueError(
        f"unknown intensity policy {policy.policy!r}; use window|percentile|fixed|native"
    )


def collapse_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) or (H, W, S) -> (C, H, W): RGB to luma (BT.601), alpha dropped, grey repeated."""
    if pixels.ndim == 2:
        return np.repeat(pixels[None], channels, axis=0)
    rgb = pixels[..., :3]  # drop alpha
    if channels == 1:
        return (rgb @ LUMA_WEIGHTS)[None]
    if channels == 3:
        return np.moveaxis(rgb, -1, 0)
    raise ValueError(f"channels must be 1 or 3, got {channels}")


def resize_image(img: np.ndarray, size: int, aspect: str = "stretch") -> np.ndarray:
    """(C, H, W) float32 -> (C, size, size) float32 [0, 1] by antialiased bilinear resampling.

    ``aspect``: ``stretch`` resizes each axis independently; ``pad`` first centres the image on
    a square of zeros (black), keeping its aspect ratio.
    """
    if aspect == "pad":
        c, h, w = img.shape
        side = max(h, w)
        square = np.zeros((c, side, side), dtype=img.dtype)
        top, left = (side - h) // 2, (side - w) // 2
        square[:, top : top + h, left : left + w] = img
        img = square
    elif aspect != "stretch":
        raise ValueError(f"unknown aspect {aspect!r}; use stretch|pad")
    if img.shape[1:] == (size, size):
        return img.astype(np.float32)
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None]  # (1, C, H, W)
    y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return y[0].clamp_(0.0, 1.0).numpy()


def prepare_image(
    raw: RawImage, policy: IntensityPolicy, size: int, channels: int, aspect: str = "stretch"
) -> tuple[np.ndarray, tuple[float, float]]:
    """One ``RawImage`` -> ((C, size, size) float32 [0, 1], (lo, hi) in file units)."""
    pixels = collapse_channels(raw.pixels, channels)  # (C, H, W) float64, file units
    unit, bounds = apply_intensity(pixels, raw, policy)  # (C, H, W) float32 [0, 1]
    return resize_image(unit, size, aspect), bounds

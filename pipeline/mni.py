"""The embedded default data: labelled 2-D patches of the MNI152 T1 brain template.

The ICBM 2009a template and its grey/white-matter probability maps ship inside nilearn's wheel,
so nothing is downloaded. Axial patches are cut around centres inside the brain mask and
labelled by the tissue at the centre; CSF/other is the rare class. Neighbouring patches overlap,
so the unit of splitting is a slab of axial slices (the "patient" of this dataset), and slices
next to a slab boundary are dropped so that no two splits hold near-identical patches.

Shape letters: N patches, H/W patch size, X/Y/Z template axes (RAS, 1 mm).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from pipeline.io import Split, image_hashes

log = logging.getLogger(__name__)

CLASS_NAMES = ("grey_matter", "white_matter", "csf_other")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class PatchSpec:
    """How patches are cut from the template and grouped into slabs."""

    patch_size: int = 32  # pixels, H = W
    slice_step: int = 2  # sample every n-th axial slice (mm)
    stride: int = 8  # in-plane distance between patch centres (pixels)
    slab_slices: int = 6  # axial slices per slab, the unit of splitting
    guard_slices: int = 2  # slices skipped at the start of each slab
    threshold: float = 0.7  # tissue probability needed at the centre


@dataclass(frozen=True)
class Volumes:
    """The template volumes, float32 (X, Y, Z), in canonical RAS orientation."""

    t1: np.ndarray  # float32 [0, 1]
    gm: np.ndarray  # float32 probability
    wm: np.ndarray  # float32 probability
    mask: np.ndarray  # bool


def load_mni152() -> Volumes:
    """Load the 1 mm MNI152 T1, GM, WM and brain-mask volumes bundled with nilearn."""
    from nilearn import datasets

    def _as_array(img: nib.Nifti1Image) -> np.ndarray:
        return np.asarray(nib.as_closest_canonical(img).get_fdata(), dtype=np.float32)

    return Volumes(
        t1=_as_array(datasets.load_mni152_template(resolution=1)),
        gm=_as_array(datasets.load_mni152_gm_template(resolution=1)),
        wm=_as_array(datasets.load_mni152_wm_template(resolution=1)),
        mask=_as_array(datasets.load_mni152_brain_mask(resolution=1)) > 0.5,
    )


def label_tissue(gm: np.ndarray, wm: np.ndarray, threshold: float) -> np.ndarray:
    """Tissue label per voxel: 0 grey, 1 white, 2 CSF/other, -1 ambiguous (none above threshold)."""
    other = np.clip(1.0 - gm - wm, 0.0, 1.0)
    labels = np.full(gm.shape, -1, dtype=np.int64)
    labels[gm > threshold] = 0
    labels[wm > threshold] = 1
    labels[other > threshold] = 2
    return labels


def kept_slices(mask: np.ndarray, slice_step: int, slab_slices: int, guard: int) -> np.ndarray:
    """Axial slice indices to sample: every ``slice_step``-th slice with brain in it, skipping
    the ``guard`` slices at the start of each slab so neighbouring slabs never touch."""
    has_brain = mask.any(axis=(0, 1))
    z = np.arange(mask.shape[2])
    keep = has_brain & (z % slice_step == 0) & (z % slab_slices >= guard)
    return z[keep]


def cut_patches(
    vols: Volumes, z_indices: np.ndarray, patch_size: int, stride: int, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut labelled axial patches centred inside the brain mask.

    Returns:
        images float32 (N, H, W) [0, 1] (rows run posterior-to-anterior reversed, i.e. anterior
        up), labels int64 (N,), and the axial slice index of each patch (N,).
    """
    half = patch_size // 2
    xs = np.arange(half, vols.t1.shape[0] - half, stride)
    ys = np.arange(half, vols.t1.shape[1] - half, stride)
    imgs, labels, zs = [], [], []
    for z in z_indices:
        # Label every grid centre in this slice, keep brain voxels with a clear tissue.
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        lab = label_tissue(vols.gm[gx, gy, z], vols.wm[gx, gy, z], threshold)
        keep = vols.mask[gx, gy, z] & (lab >= 0)

        # Cut (X, Y) windows and turn them so anterior is up: (H, W) = (Y reversed, X).
        for x, y, label in zip(gx[keep], gy[keep], lab[keep], strict=True):
            window = vols.t1[x - half : x + half, y - half : y + half, z]
            imgs.append(np.rot90(window))
            labels.append(label)
            zs.append(z)
    images = np.clip(np.stack(imgs).astype(np.float32), 0.0, 1.0)  # (N, H, W) float32 [0, 1]
    return images, np.array(labels, dtype=np.int64), np.array(zs, dtype=np.int64)


def assign_slabs(
    slab_ids: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> dict[int, str]:
    """Map each slab id to a split by a seeded permutation; every split gets at least one slab."""
    slabs = np.unique(slab_ids)
    if len(slabs) < 3:
        raise ValueError(
            f"expected at least 3 slabs to fill train/val/test, got {len(slabs)}; "
            "lower data.mni.slab_slices"
        )
    order = np.random.default_rng(seed).permutation(slabs)
    n_test = max(1, round(test_fraction * len(slabs)))
    n_val = max(1, round(val_fraction * len(slabs)))
    names = ["test"] * n_test + ["val"] * n_val + ["train"] * (len(slabs) - n_test - n_val)
    return {int(s): name for s, name in zip(order, names, strict=True)}


def cap_class(labels: np.ndarray, cls: int, cap: int, seed: int) -> np.ndarray:
    """Mask (N,) keeping every sample but a seeded random excess of class ``cls`` over ``cap``."""
    keep = np.ones(len(labels), dtype=bool)
    idx = np.flatnonzero(labels == cls)
    if len(idx) > cap:
        drop = np.random.default_rng(seed).choice(idx, size=len(idx) - cap, replace=False)
        keep[drop] = False
    return keep


def build_splits(
    vols: Volumes,
    spec: PatchSpec,
    val_fraction: float,
    test_fraction: float,
    minority_train_cap: int,
    seed: int,
) -> dict[str, Split]:
    """Cut, label and split the template into train/val/test by slab.

    The rarest class in the training split is capped at ``minority_train_cap`` patches to mimic a
    scarce minority; val and test keep every patch.
    """
    # Cut labelled patches from the sampled slices; the slab is the grouping unit.
    zs = kept_slices(vols.mask, spec.slice_step, spec.slab_slices, spec.guard_slices)
    imgs, labels, z_of = cut_patches(vols, zs, spec.patch_size, spec.stride, spec.threshold)
    slab_of = z_of // spec.slab_slices
    split_of_slab = assign_slabs(slab_of, val_fraction, test_fraction, seed)
    split_of = np.array([split_of_slab[int(s)] for s in slab_of])
    log.info("cut %d patches from %d slices in %d slabs", len(labels), len(zs), len(split_of_slab))

    splits = {}
    for name in SPLITS:
        sel = split_of == name
        split_labels = labels[sel]
        keep = np.ones(len(split_labels), dtype=bool)

        # Cap the rarest training class so the minority is as scarce as in users' data.
        if name == "train":
            counts = np.bincount(split_labels, minlength=len(CLASS_NAMES))
            keep = cap_class(split_labels, int(np.argmin(counts)), minority_train_cap, seed)
        split_imgs = imgs[sel][keep][:, None]  # (N, 1, H, W) float32 [0, 1]
        splits[name] = Split(
            images=split_imgs,
            labels=split_labels[keep],
            groups=np.array([f"slab-{s:02d}" for s in slab_of[sel][keep]]),
            hashes=image_hashes(split_imgs),
            class_names=CLASS_NAMES,
        )
    return splits

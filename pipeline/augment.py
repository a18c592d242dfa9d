"""Classic augmentation of grayscale float images, as a seeded callable on a batch.

Shape letters: N images, C channels (1 for grayscale scans), H/W image size.

Images are float32 in [0, 1] (an 8- or 16-bit scan already scaled by ingest), so every
transform works on floats and never rounds to 8 bits: flips, a small affine warp with reflected
borders, and brightness, contrast and gamma jitter. The output is clipped back to [0, 1].
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import cv2
import numpy as np

# albumentations asks PyPI for a newer version on import unless told not to; runs stay offline
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A  # noqa: E402

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AugmentSpec:
    """Strength of each transform; probabilities are per image.

    Defaults suit brain MRI patches and thermal frames: a left-right flip keeps anatomy
    plausible, an up-down flip does not (vflip_p = 0), and intensity changes stay within
    about 10 % so a tissue class keeps its grey level.
    """

    hflip_p: float = 0.5
    vflip_p: float = 0.0
    affine_p: float = 0.5
    rotate_deg: float = 10.0  # rotation drawn in [-rotate_deg, +rotate_deg]
    scale: float = 0.1  # zoom drawn in [1 - scale, 1 + scale]
    translate: float = 0.05  # shift as a fraction of the image side
    intensity_p: float = 0.5
    brightness: float = 0.1  # added offset in [-b, +b] of the full range 1.0
    contrast: float = 0.1  # multiplier in [1 - c, 1 + c]
    gamma: float = 0.2  # exponent in [1 - g, 1 + g]

    def __post_init__(self) -> None:
        probs = {k: getattr(self, k) for k in ("hflip_p", "vflip_p", "affine_p", "intensity_p")}
        bad = {k: v for k, v in probs.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"expected probabilities in [0, 1], got {bad}")
        if not 0.0 <= self.gamma < 1.0 or not 0.0 <= self.scale < 1.0:
            raise ValueError(
                f"expected gamma and scale in [0, 1), got gamma={self.gamma}, "
                f"scale={self.scale}; they are relative changes around 1"
            )


def spec_to_compose(spec: AugmentSpec) -> A.Compose:
    """The albumentations pipeline of a spec, for (H, W, C) float32 images in [0, 1]."""
    gamma_pct = (100 * (1 - spec.gamma), 100 * (1 + spec.gamma))
    affine = A.Affine(
        scale=(1 - spec.scale, 1 + spec.scale),
        translate_percent=(-spec.translate, spec.translate),
        rotate=(-spec.rotate_deg, spec.rotate_deg),
        border_mode=cv2.BORDER_REFLECT_101,
        p=spec.affine_p,
    )
    intensity = A.Compose(
        [
            A.RandomBrightnessContrast(
                brightness_limit=spec.brightness, contrast_limit=spec.contrast, p=1.0
            ),
            A.RandomGamma(gamma_limit=gamma_pct, p=1.0),
        ],
        p=spec.intensity_p,
    )
    flips = [A.HorizontalFlip(p=spec.hflip_p), A.VerticalFlip(p=spec.vflip_p)]
    return A.Compose([*flips, affine, intensity])


class Augmenter:
    """Callable ``augment(imgs, rng) -> imgs`` for the classifier's training loop.

    One call draws one integer seed from ``rng`` and reseeds the albumentations pipeline with
    it, so the same generator state always gives the same batch.
    """

    def __init__(self, spec: AugmentSpec | None = None) -> None:
        self.spec = spec or AugmentSpec()
        self._compose = spec_to_compose(self.spec)

    def __call__(self, imgs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment a batch.

        Args:
            imgs: (N, C, H, W) float32 in [0, 1], C = 1 for grayscale.
            rng: the caller's generator; one integer is drawn from it per call.
        Returns:
            (N, C, H, W) float32 in [0, 1], a new array.
        """
        if imgs.ndim != 4:
            raise ValueError(
                f"expected images of shape (N, C, H, W), got {imgs.shape}; add the channel "
                "axis with imgs[:, None]"
            )
        self._compose.set_random_seed(int(rng.integers(0, 2**31 - 1)))

        # albumentations works on (H, W, C) images one at a time
        out = np.empty_like(imgs, dtype=np.float32)
        for i, img in enumerate(np.asarray(imgs, dtype=np.float32)):
            hwc = np.ascontiguousarray(img.transpose(1, 2, 0))  # (H, W, C) float32 [0, 1]
            res = self._compose(image=hwc)["image"].reshape(hwc.shape)
            out[i] = res.transpose(2, 0, 1)

        # a gamma or contrast step can leave tiny excursions; keep the documented range
        return np.clip(out, 0.0, 1.0, out=out)

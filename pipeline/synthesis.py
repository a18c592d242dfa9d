"""Synthetic minority samples up to a target class balance, filtered by a frozen classifier.

Shape letters: N images, C channels, H/W image size, K classes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

# Generates one image per label: (labels (N,), seed) -> float32 [0, 1] (N, C, H, W).
Sampler = Callable[[np.ndarray, int], np.ndarray]
# Class probabilities of float32 [0, 1] images (N, C, H, W) -> (N, K).
Scorer = Callable[[np.ndarray], np.ndarray]


def synthesis_counts(train_counts: list[int], target: str, ratio: float, classes: str) -> list[int]:
    """How many synthetic images each class gets.

    Args:
        train_counts: real training images per class (K,).
        target: "majority" fills each chosen class up to the largest class; "ratio" adds
            ``ratio`` synthetic images per real image of each chosen class.
        classes: "minority" chooses the rarest class only; "all_below_target" every class
            smaller than the largest one.
    """
    counts = np.asarray(train_counts, dtype=np.int64)
    if classes == "minority":
        chosen = counts == counts.min()
    elif classes == "all_below_target":
        chosen = counts < counts.max()
    else:
        raise ValueError(f"unknown classes {classes!r}; expected minority | all_below_target")
    if target == "majority":
        extra = counts.max() - counts
    elif target == "ratio":
        extra = np.rint(ratio * counts).astype(np.int64)
    else:
        raise ValueError(f"unknown target {target!r}; expected majority | ratio")
    return np.where(chosen, extra, 0).tolist()


@dataclass
class Synthetic:
    images: np.ndarray  # (N, C, H, W) float32 [0, 1]
    labels: np.ndarray  # (N,) int64
    confidence: np.ndarray  # (N,) the filter's probability of the intended class
    drawn: list[int]  # images generated per class, kept or not
    kept: list[int]  # images kept per class


def synthesize(
    sample: Sampler,
    counts: list[int],
    seed: int,
    score: Scorer | None = None,
    min_confidence: float = 0.0,
    max_draw_factor: float = 4.0,
) -> Synthetic:
    """Draw ``counts[k]`` images of each class k, keeping those the filter accepts.

    With a scorer and ``min_confidence`` > 0, an image is kept only when the frozen classifier
    gives its intended class at least that probability; rejected images are redrawn until the
    class is full or ``max_draw_factor`` × its count have been drawn (then it stays short, and
    the shortfall is logged and recorded).
    """
    imgs, labels, conf, drawn, kept = [], [], [], [], []
    for k, want in enumerate(counts):
        got, tries, budget = 0, 0, int(np.ceil(want * max_draw_factor))
        while got < want and tries < budget:
            # Draw a batch a little larger than what is missing, each with its own seed.
            n = min(budget - tries, max(want - got, 16))
            batch = sample(np.full(n, k, dtype=np.int64), seed + 7919 * k + tries)
            p = np.ones(n) if score is None else score(batch)[:, k]  # (n,)
            ok = np.flatnonzero(p >= min_confidence)[: want - got]
            imgs.append(batch[ok])
            labels.append(np.full(len(ok), k, dtype=np.int64))
            conf.append(p[ok])
            got, tries = got + len(ok), tries + n
        drawn.append(tries)
        kept.append(got)
        if got < want:
            log.warning("class %d: kept %d of %d wanted after %d draws", k, got, want, tries)
    if not imgs:
        raise ValueError(f"nothing to synthesize for counts {counts}; check the synth params")
    return Synthetic(
        np.concatenate(imgs).astype(np.float32),
        np.concatenate(labels),
        np.concatenate(conf),
        drawn,
        kept,
    )


def image_grid(imgs: np.ndarray, columns: int = 8, pad: int = 2) -> Image.Image:
    """Tile float32 [0, 1] images (N, 1, H, W) into one 8-bit grayscale picture."""
    n, _, h, w = imgs.shape
    rows = max(1, int(np.ceil(n / columns)))
    canvas = np.ones((rows * (h + pad) + pad, columns * (w + pad) + pad), dtype=np.float32)
    for i, img in enumerate(imgs):
        r, c = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        canvas[top : top + h, left : left + w] = img[0]
    return Image.fromarray(np.rint(canvas * 255).astype(np.uint8), mode="L")

"""Benchmark: score 1,000 generated 32 px images with domain features, end to end.

Generation, feature extraction and every score (IS, Mode Score, FID, KID, 1-NN, precision/
recall, density/coverage, memorisation) per class and over all classes, with bootstrap
intervals. Target: under 60 s on the 2-core CPU build machine. Run from the repository root:
``PYTHONPATH=$PWD python bench/bench_gan_metrics.py``.
"""

from __future__ import annotations

import logging
import sys
import time

import numpy as np
import torch

from pipeline.backbones import DomainBackbone
from pipeline.gan_eval import ScoreSettings, evaluate_generator
from pipeline.nets import Generator, init_weights
from pipeline.runtime import configure_logging, select_device
from pipeline.sampling import generate

CLASSES = ("grey", "white", "csf_other")
NUM_GENERATED = 1000
IMAGE_SIZE = 32
TARGET_S = 60.0


class _StandInCNN(torch.nn.Module):
    """SmallCNN's shape (three conv blocks, width 32 -> F = 128) while classifier.py is absent."""

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        layers, c_in = [], 1
        for c_out in (width, 2 * width, 4 * width):
            layers += [
                torch.nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                torch.nn.BatchNorm2d(c_out),
                torch.nn.ReLU(),
                torch.nn.MaxPool2d(2),
            ]
            c_in = c_out
        self.body = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.head = torch.nn.Linear(c_in, num_classes)

    def features(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.body(imgs * 2 - 1)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(imgs))


def reference_model(num_classes: int) -> torch.nn.Module:
    """The project's SmallCNN, randomly initialised (the timing does not depend on weights)."""
    try:
        from pipeline.classifier import SmallCNN
    except ImportError:
        return _StandInCNN(num_classes)
    return SmallCNN(in_channels=1, num_classes=num_classes, width=32)


def real_images(counts: list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class-dependent brightness plus noise: float32 [0, 1] (N, 1, 32, 32) and labels (N,)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(counts)), counts)
    shape = (len(labels), 1, IMAGE_SIZE, IMAGE_SIZE)
    imgs = 0.2 * (labels[:, None, None, None] + 1) + 0.3 * rng.random(shape)
    return imgs.astype(np.float32), labels


def main() -> int:
    configure_logging(logging.WARNING)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    device = select_device(prefer_gpu=False)

    # Imbalanced real splits like the MNI patches: the minority class last.
    val_imgs, val_labels = real_images([300, 200, 100], seed=1)
    train_imgs, train_labels = real_images([1000, 800, 300], seed=2)
    gen = Generator(latent_dim=64, num_classes=3, channels=1, image_size=IMAGE_SIZE, width=32)
    gen.apply(init_weights)
    domain = DomainBackbone(reference_model(3), device)

    start = time.perf_counter()
    gen_labels = np.arange(NUM_GENERATED) % len(CLASSES)
    gen_imgs = generate(gen.eval(), gen_labels, seed=0, device=device)  # (1000, 1, 32, 32)
    result = evaluate_generator(
        gen_imgs=gen_imgs,
        gen_labels=gen_labels,
        val_imgs=val_imgs,
        val_labels=val_labels,
        train_imgs=train_imgs,
        train_labels=train_labels,
        class_names=CLASSES,
        domain=domain,
        features=domain,
        settings=ScoreSettings(k=5, bootstrap=200, kid_subset_size=1000, kid_subsets=100),
    )
    seconds = time.perf_counter() - start

    overall = result["classes"]["all"]
    print(f"scored {NUM_GENERATED} generated {IMAGE_SIZE}px images in {seconds:.1f} s")
    print(f"overall FID {overall['fid']:.3f} [{overall['fid_lo']:.3f}, {overall['fid_hi']:.3f}]")
    print(f"target < {TARGET_S:.0f} s: {'PASS' if seconds < TARGET_S else 'FAIL'}")
    return 0 if seconds < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())

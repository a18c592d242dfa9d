"""Prior-knowledge constraints: what users know about their images that a GAN does not.

Each constraint is one per-image function, ``excess(images, labels) -> (B,)``, that is 0 when
an image agrees with what is known of its class and grows with the disagreement. The same
function is the training loss (its batch mean, times the constraint's weight, added to G's
loss) and the audit metric (the violation rate: the share of images whose excess is above the
constraint's tolerance). One definition therefore trains and audits, and a constraint can be
scored on any generator, trained with it or not.

Class references are fitted on real TRAINING images only (``fit``); the ranges come from
quantiles of the real per-image statistic, so real images of the class violate at a small,
known floor (about the quantile tails) and images that break the prior are clearly above it.

The constraints, by params name:
- ``intensity_range``: pixels stay within the class's range (given in params, in the prepared
  [0, 1] scale, or the class's real pixel quantiles); excess = mean pixel distance outside.
- ``class_stats``: the image's mean, standard deviation and intensity histogram lie within
  the real class's per-image ranges (histogram: total-variation distance to the class's mean
  histogram); excess = hinge distances, each in units of the real spread.
- ``support``: no signal where real images of the class have none (outside the body or the
  field of view); excess = mean signal above ``threshold`` outside the class's support mask.
- ``smoothness``: total variation (mean absolute neighbour difference) within the real class's
  range; excess = hinge distance in units of the real spread.
- ``oracle``: a frozen classifier trained on real training data only gives the intended class
  at least ``min_confidence``; excess = max(0, log(min_confidence) - log p(y | x)).

Limitations: the per-image ranges bound each image, not the spread of the set (a generator
that made every image at the class mean would pass ``class_stats``); the distribution is
judged by the evaluation metrics (FID, KID, 1-NN, recall). ``support`` is trivially met where
the class has signal everywhere, as in the default brain patches.

Shape letters: N images, B batch, C channels, H/W image size, K classes, M bins.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import ConstraintSpec

log = logging.getLogger(__name__)

_EPS = 1e-6


# Per-image statistics, shared by fitting (on real images) and by the excess (on any images).
def image_mean(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).mean(1)  # (B,)


def image_std(x: torch.Tensor) -> torch.Tensor:
    # The small constant keeps the gradient finite on flat images.
    return (x.flatten(1).var(1, unbiased=False) + 1e-8).sqrt()  # (B,)


def soft_histogram(x: torch.Tensor, bins: int) -> torch.Tensor:
    """Per-image intensity histogram over [0, 1] with triangular (linear) bin weights (B, M).

    Each pixel splits its unit mass between the two nearest bin centres, so the histogram is
    differentiable in the pixel values and each row sums to 1.
    """
    centres = torch.linspace(0.0, 1.0, bins, device=x.device)  # (M,)
    width = 1.0 / (bins - 1)
    px = x.flatten(1).clamp(0.0, 1.0).unsqueeze(-1)  # (B, P, 1)
    weights = F.relu(1.0 - (px - centres).abs() / width)  # (B, P, M)
    return weights.mean(1)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between vertical and horizontal neighbours, per image (B,)."""
    dv = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().flatten(1).mean(1)
    dh = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().flatten(1).mean(1)
    return dv + dh


def _batched_stat(fn, imgs: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(imgs[s : s + batch_size]) for s in range(0, len(imgs), batch_size)])


def _per_class_quantiles(
    values: torch.Tensor, labels: torch.Tensor, num_classes: int, q: Sequence[float]
) -> torch.Tensor:
    """Quantiles ``q`` of ``values`` within each class: (K, len(q)) float32."""
    v, y = values.detach().cpu().double().numpy(), labels.cpu().numpy()
    out = np.stack([np.quantile(v[y == k], q) for k in range(num_classes)])
    return torch.as_tensor(out, dtype=torch.float32, device=values.device)


def _hinge(value: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Distance of ``value`` outside [lo, hi], in units of hi - lo (B,)."""
    return (F.relu(lo - value) + F.relu(value - hi)) / (hi - lo + _EPS)


class Constraint(nn.Module):
    """Base: fitted class references as buffers, ``excess`` per image, ``violated`` per image."""

    name = "constraint"

    def __init__(self, weight: float, tolerance: float) -> None:
        super().__init__()
        self.weight = weight
        self.tolerance = tolerance
        self.fitted = False

    def fit(self, imgs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Constraint:
        """Fit the class references on real training images float32 [0, 1] (N, C, H, W)."""
        self._fit(imgs, labels.long(), num_classes)
        self.fitted = True
        return self

    def _fit(self, imgs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
        raise NotImplementedError

    def excess(self, imgs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Disagreement with the class's prior, >= 0 per image (B,); differentiable."""
        if not self.fitted:
            raise RuntimeError(f"constraint {self.name} is used before fit(); fit it on real data")
        return self._excess(imgs.float(), labels.long())

    def _excess(self, imgs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def violated(self, imgs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Whether each image breaks the constraint: excess above the tolerance (B,) bool."""
        return self.excess(imgs, labels) > self.tolerance

    def describe(self) -> dict[str, Any]:
        return {"weight": self.weight, "tolerance": self.tolerance}


class IntensityRange(Constraint):
    name = "intensity_range"

    def __init__(self, weight: float, settings: Any) -> None:
        super().__init__(weight, settings.tolerance)
        self.fixed = settings.range
        self.quantiles = settings.quantiles

    def _fit(self, imgs, labels, num_classes):
        if self.fixed is not None:
            bounds = torch.tensor([self.fixed] * num_classes, dtype=torch.float32)
        else:
            # Pixel quantiles per class, from a strided subsample when the class is large.
            bounds = torch.stack([
                torch.as_tensor(
                    np.quantile(_pixels(imgs[labels == k]), self.quantiles), dtype=torch.float32
                )
                for k in range(num_classes)
            ])
        self.register_buffer("bounds", bounds.to(imgs.device))  # (K, 2) lo, hi

    def _excess(self, imgs, labels):
        lo = self.bounds[labels, 0].view(-1, 1, 1, 1)
        hi = self.bounds[labels, 1].view(-1, 1, 1, 1)
        outside = F.relu(lo - imgs) + F.relu(imgs - hi)  # (B, C, H, W)
        return outside.flatten(1).mean(1)

    def describe(self):
        return super().describe() | {"bounds": self.bounds.cpu().tolist()}


def _pixels(imgs: torch.Tensor, limit: int = 4_000_000) -> np.ndarray:
    flat = imgs.detach().flatten().cpu().double().numpy()
    return flat[:: max(1, len(flat) // limit)]


class ClassStats(Constraint):
    name = "class_stats"

    def __init__(self, weight: float, settings: Any) -> None:
        super().__init__(weight, settings.tolerance)
        self.quantiles = settings.quantiles
        self.bins = settings.bins

    def _stats(self, imgs: torch.Tensor) -> torch.Tensor:
        return torch.stack([image_mean(imgs), image_std(imgs)], dim=1)  # (B, 2)

    def _fit(self, imgs, labels, num_classes):
        stats = _batched_stat(self._stats, imgs)  # (N, 2)
        hists = _batched_stat(lambda x: soft_histogram(x, self.bins), imgs)  # (N, M)
        mean_hist = torch.stack([hists[labels == k].mean(0) for k in range(num_classes)])
        dist = 0.5 * (hists - mean_hist[labels]).abs().sum(1)  # (N,)
        q = (self.quantiles[0], self.quantiles[1])
        ranges = torch.stack([
            _per_class_quantiles(stats[:, j], labels, num_classes, q) for j in range(2)
        ], dim=1)  # (K, 2 stats, 2 bounds)
        self.register_buffer("ranges", ranges)
        self.register_buffer("mean_hist", mean_hist)  # (K, M)
        self.register_buffer(
            "hist_hi", _per_class_quantiles(dist, labels, num_classes, (q[1],))[:, 0]
        )  # (K,)

    def _excess(self, imgs, labels):
        stats = self._stats(imgs)  # (B, 2)
        r = self.ranges[labels]  # (B, 2, 2)
        moments = _hinge(stats, r[..., 0], r[..., 1]).sum(1)  # (B,)
        dist = 0.5 * (soft_histogram(imgs, self.bins) - self.mean_hist[labels]).abs().sum(1)
        hi = self.hist_hi[labels]
        return moments + F.relu(dist - hi) / (hi + _EPS)

    def describe(self):
        return super().describe() | {"mean_std_ranges": self.ranges.cpu().tolist()}


class Support(Constraint):
    name = "support"

    def __init__(self, weight: float, settings: Any) -> None:
        super().__init__(weight, settings.tolerance)
        self.threshold = settings.threshold
        self.min_fraction = settings.min_fraction

    def _fit(self, imgs, labels, num_classes):
        # A pixel is inside class k's support when at least min_fraction of its real images
        # have signal there.
        signal = (imgs > self.threshold).float()
        frac = torch.stack([signal[labels == k].mean(0) for k in range(num_classes)])
        self.register_buffer("outside", (frac < self.min_fraction).float())  # (K, C, H, W)

    def _excess(self, imgs, labels):
        return (self.outside[labels] * F.relu(imgs - self.threshold)).flatten(1).mean(1)

    def describe(self):
        inside = 1.0 - self.outside.flatten(1).mean(1)
        return super().describe() | {"support_fraction": inside.cpu().tolist()}


class Smoothness(Constraint):
    name = "smoothness"

    def __init__(self, weight: float, settings: Any) -> None:
        super().__init__(weight, settings.tolerance)
        self.quantiles = settings.quantiles

    def _fit(self, imgs, labels, num_classes):
        tv = _batched_stat(total_variation, imgs)
        self.register_buffer(
            "range", _per_class_quantiles(tv, labels, num_classes, self.quantiles)
        )  # (K, 2)

    def _excess(self, imgs, labels):
        r = self.range[labels]
        return _hinge(total_variation(imgs), r[:, 0], r[:, 1])

    def describe(self):
        return super().describe() | {"tv_range": self.range.cpu().tolist()}


class Oracle(Constraint):
    name = "oracle"

    def __init__(self, weight: float, settings: Any, oracle: nn.Module | None) -> None:
        super().__init__(weight, tolerance=0.0)
        if oracle is None:
            raise ValueError(
                "constraint 'oracle' needs the reference classifier (models/reference/"
                "classifier.pt); run train_reference first, or remove 'oracle' from constraints"
            )
        self.min_confidence = settings.min_confidence
        # Frozen: gradients reach the images, never the oracle's weights.
        self.oracle = oracle.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> Oracle:
        super().train(mode)
        self.oracle.eval()  # its batch-norm statistics stay those of the real data
        return self

    def _fit(self, imgs, labels, num_classes):
        if self.oracle(imgs[:1]).shape[1] != num_classes:
            raise ValueError(
                f"the oracle predicts {self.oracle(imgs[:1]).shape[1]} classes, the data has "
                f"{num_classes}; retrain the reference classifier on this data"
            )

    def _excess(self, imgs, labels):
        log_p = F.log_softmax(self.oracle(imgs).float(), dim=1).gather(1, labels[:, None])[:, 0]
        return F.relu(np.log(self.min_confidence) - log_p)

    def describe(self):
        return super().describe() | {"min_confidence": self.min_confidence}


CONSTRAINTS: dict[str, type[Constraint]] = {
    cls.name: cls for cls in (IntensityRange, ClassStats, Support, Smoothness, Oracle)
}


class ConstraintSet(nn.Module):
    """The constraints of params, fitted together; the loss and the violation rates."""

    def __init__(self, specs: Sequence[ConstraintSpec], oracle: nn.Module | None = None) -> None:
        super().__init__()
        members = []
        for spec in specs:
            cls = CONSTRAINTS[spec.name]
            if cls is Oracle:
                members.append(Oracle(spec.weight, spec.settings, oracle))
            else:
                members.append(cls(spec.weight, spec.settings))
        self.members = nn.ModuleList(members)

    def __len__(self) -> int:
        return len(self.members)

    def fit(self, imgs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> ConstraintSet:
        for c in self.members:
            c.fit(imgs, labels, num_classes)
        return self

    def loss(
        self, imgs: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted sum of the mean excesses of images float32 [0, 1], and each term."""
        parts = {f"c_{c.name}": c.excess(imgs, labels).mean() for c in self.members}
        total = sum(c.weight * parts[f"c_{c.name}"] for c in self.members)
        return total, parts

    @torch.no_grad()
    def violations(
        self, imgs: torch.Tensor, labels: torch.Tensor, batch_size: int = 512
    ) -> dict[str, np.ndarray]:
        """Per constraint, whether each image breaks it: bool (N,)."""
        labels = labels.long()
        return {
            c.name: torch.cat([
                c.violated(imgs[s : s + batch_size], labels[s : s + batch_size])
                for s in range(0, len(imgs), batch_size)
            ]).cpu().numpy()
            for c in self.members
        }

    def describe(self) -> dict[str, Any]:
        return {c.name: c.describe() for c in self.members}

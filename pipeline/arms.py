"""The arms of the downstream audit: how each one builds its training set and loss weights.

Shape letters: N images, C channels, H/W image size, K classes, M synthetic images.

Every arm starts from the same real training split and returns an ``ArmData`` that
``pipeline.classifier.train_classifier`` takes as it is: images, labels, optional class weights
for the cross-entropy and an optional batch augmentation. Arms by name:

- ``real``: the real training images only (the baseline).
- ``classic``: real images, augmented batch by batch (flips, small affine, intensity jitter).
- ``oversample``: real images plus random duplicates of the minority classes.
- ``class_weight``: real images, cross-entropy weighted by inverse class frequency.
- ``gan:<run>``: real images plus synthetic minority images of GAN run ``<run>``.
- ``gan_classic:<run>``: ``gan:<run>`` with classic augmentation on every batch.

The synthetic-to-real ``ratio`` r adds round(r * n_k) images to each minority class k of n_k
real images (synthetic ones, or duplicates for ``oversample`` with ``oversample_to: ratio``).
With ``synthetic_to: majority`` the gan arms instead fill every minority class up to the largest
class, as the oversampling protocols of DeepSMOTE and BAGAN do, and ignore the ratio.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.augment import Augmenter, AugmentSpec
from pipeline.config import GAN_ARM_KINDS, AuditParams
from pipeline.io import Split

log = logging.getLogger(__name__)

# A batch augmentation: float32 [0, 1] (B, C, H, W) in, same out, driven by a NumPy generator.
Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]
# Synthetic images of one GAN run: (M, C, H, W) float32 [0, 1] and (M,) int64 labels.
Synthetic = tuple[np.ndarray, np.ndarray]

CLASSICAL = ("classic", "oversample", "class_weight")
BASELINE = "real"


@dataclass(frozen=True)
class ArmData:
    """What one arm trains on; the arguments of train_classifier that differ between arms."""

    images: np.ndarray  # (N, C, H, W) float32 [0, 1], real first, then added images
    labels: np.ndarray  # (N,) int64
    class_weights: np.ndarray | None  # (K,) float32 cross-entropy weights, or None
    augment: Augment | None  # batch augmentation, or None
    n_added: int = 0  # images added to the real ones (synthetic or duplicates)


# ---------------------------------------------------------------- class bookkeeping


def minority_classes(counts: np.ndarray, which: str) -> np.ndarray:
    """Indices of the classes that receive extra images.

    Args:
        counts: (K,) real training images per class.
        which: 'minority' (the class or classes with the fewest images) or
            'all_below_majority' (every class smaller than the largest).
    """
    counts = np.asarray(counts)
    rules = {
        "minority": lambda c: np.flatnonzero(c == c.min()),
        "all_below_majority": lambda c: np.flatnonzero(c < c.max()),
    }
    if which not in rules:
        raise ValueError(f"expected minority rule in {sorted(rules)}, got {which!r}")
    return rules[which](counts)


def inverse_frequency_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(K,) float32 weights N / (K n_k), so that the weights average 1 over the training images.

    The 'balanced' rule of sklearn.utils.class_weight.compute_class_weight.
    """
    counts = np.bincount(labels, minlength=num_classes)
    if (counts == 0).any():
        raise ValueError(
            f"expected every class in the training labels, got counts {counts.tolist()}; a "
            "class without images cannot be weighted, drop it from the data or add images"
        )
    return (len(labels) / (num_classes * counts)).astype(np.float32)


def _extra_counts(counts: np.ndarray, classes: np.ndarray, ratio: float | None) -> dict[int, int]:
    """{class: images to add}: round(ratio * n_k), or up to the majority count when ratio=None."""
    if ratio is None:
        return {int(k): int(counts.max() - counts[k]) for k in classes}
    return {int(k): int(round(ratio * counts[k])) for k in classes}


# ---------------------------------------------------------------- the arm kinds


def _real(train: Split, synthetic: Synthetic | None, ratio: float, rng, arm: Arm) -> ArmData:
    return ArmData(train.images, train.labels, None, None)


def _classic(train: Split, synthetic: Synthetic | None, ratio: float, rng, arm: Arm) -> ArmData:
    return ArmData(train.images, train.labels, None, Augmenter(arm.augment_spec))


def _class_weight(
    train: Split, synthetic: Synthetic | None, ratio: float, rng, arm: Arm
) -> ArmData:
    weights = inverse_frequency_weights(train.labels, train.num_classes)
    return ArmData(train.images, train.labels, weights, None)


def _oversample(train: Split, synthetic: Synthetic | None, ratio: float, rng, arm: Arm) -> ArmData:
    counts = np.bincount(train.labels, minlength=train.num_classes)
    classes = minority_classes(counts, arm.minority)
    extra = _extra_counts(counts, classes, ratio if arm.oversample_to == "ratio" else None)

    # duplicates drawn with replacement from each minority class's real images
    picks = [rng.choice(np.flatnonzero(train.labels == k), n) for k, n in extra.items() if n > 0]
    idx = np.concatenate([np.arange(len(train.labels)), *picks])
    return ArmData(train.images[idx], train.labels[idx], None, None, len(idx) - len(train.labels))


def _gan(train: Split, synthetic: Synthetic | None, ratio: float, rng, arm: Arm) -> ArmData:
    imgs, labels = _check_synthetic(train, synthetic, arm.name)
    counts = np.bincount(train.labels, minlength=train.num_classes)
    classes = minority_classes(counts, arm.minority)
    extra = _extra_counts(counts, classes, ratio if arm.synthetic_to == "ratio" else None)

    # distinct synthetic images per minority class, never more than the run generated
    picks = []
    for k, n in extra.items():
        pool = np.flatnonzero(labels == k)
        if n > len(pool):
            raise ValueError(
                f"arm {arm.name}: expected at least {n} synthetic images of class "
                f"{train.class_names[k]!r} ({counts[k]} real, synthetic_to {arm.synthetic_to}, "
                f"ratio {ratio}), got {len(pool)}; generate more in the synthesize stage "
                "(synth.target, synth.max_draw_factor) or lower audit.ratios"
            )
        picks.append(rng.choice(pool, n, replace=False))
    idx = np.concatenate(picks) if picks else np.zeros(0, np.int64)

    augment = Augmenter(arm.augment_spec) if arm.kind == "gan_classic" else None
    images = np.concatenate([train.images, imgs[idx]]).astype(np.float32, copy=False)
    return ArmData(images, np.concatenate([train.labels, labels[idx]]), None, augment, len(idx))


def _check_synthetic(train: Split, synthetic: Synthetic | None, arm: str) -> Synthetic:
    """Validate a GAN run's images against the training split; return (images, int64 labels)."""
    if synthetic is None:
        raise ValueError(f"arm {arm}: expected synthetic (images, labels) of its GAN run, got None")
    imgs, labels = synthetic
    if imgs.ndim != 4 or imgs.shape[1:] != train.images.shape[1:] or len(imgs) != len(labels):
        chw = ", ".join(map(str, train.images.shape[1:]))
        raise ValueError(
            f"arm {arm}: expected synthetic images (M, {chw}) with M labels, got images "
            f"{imgs.shape} and labels {np.shape(labels)}; "
            "synthesize at the training image size"
        )
    if imgs.dtype != np.float32 or imgs.size and (imgs.min() < 0 or imgs.max() > 1):
        raise ValueError(
            f"arm {arm}: expected synthetic images float32 in [0, 1], got {imgs.dtype} in "
            f"[{imgs.min():.3g}, {imgs.max():.3g}]; map generator output from [-1, 1] to [0, 1]"
        )
    return imgs, np.asarray(labels, dtype=np.int64)


PrepareFn = Callable[[Split, "Synthetic | None", float, np.random.Generator, "Arm"], ArmData]
KINDS: dict[str, PrepareFn] = {
    "real": _real,
    "classic": _classic,
    "oversample": _oversample,
    "class_weight": _class_weight,
    "gan": _gan,
    "gan_classic": _gan,
}
GAN_KINDS = GAN_ARM_KINDS


@dataclass(frozen=True)
class Arm:
    """One arm, parsed from its name ('real', 'gan:acgan', ...) with the audit's settings."""

    name: str
    kind: str
    run: str | None  # the GAN run for gan arms, else None
    minority: str = "minority"
    oversample_to: str = "majority"
    synthetic_to: str = "ratio"
    augment_spec: AugmentSpec = AugmentSpec()

    @property
    def uses_ratio(self) -> bool:
        """Whether the training set depends on the synthetic-to-real ratio."""
        if self.kind in GAN_KINDS:
            return self.synthetic_to == "ratio"
        return self.kind == "oversample" and self.oversample_to == "ratio"

    @property
    def is_classical(self) -> bool:
        return self.kind in CLASSICAL

    def prepare(
        self,
        train: Split,
        synthetic: Synthetic | None,
        ratio: float,
        rng: np.random.Generator,
    ) -> ArmData:
        """Build this arm's training data from the real split (and the run's synthetic images).

        Args:
            synthetic: (images (M, C, H, W) float32 [0, 1], labels (M,)) of the GAN run; only
                gan arms read it.
            ratio: synthetic-to-real ratio for each minority class; ignored by arms for which
                uses_ratio is False.
            rng: draws the duplicates or synthetic images; one generator per seed.
        """
        data = KINDS[self.kind](train, synthetic, ratio, rng, self)
        log.info(
            "arm %s: %d images (%d added), counts %s, weights %s, augment %s",
            self.name,
            len(data.labels),
            data.n_added,
            np.bincount(data.labels, minlength=train.num_classes).tolist(),
            None
            if data.class_weights is None
            else [round(float(w), 3) for w in data.class_weights],
            data.augment is not None,
        )
        return data


def parse_arm(name: str, **settings) -> Arm:
    """An Arm from its name: a kind, or 'gan:<run>' / 'gan_classic:<run>'.

    settings are passed on to Arm (minority, oversample_to, synthetic_to, augment_spec).
    """
    kind, _, run = name.partition(":")
    valid = [*[k for k in KINDS if k not in GAN_KINDS], *[f"{k}:<run>" for k in GAN_KINDS]]
    if kind not in KINDS or (kind in GAN_KINDS) != bool(run):
        raise ValueError(f"unknown arm {name!r}; expected one of {valid}")
    return Arm(name, kind, run or None, **settings)


def arm_label(arm: Arm, ratio: float, ratios: list[float]) -> str:
    """The name an arm run carries in results: the arm name, plus '@<ratio>' in a sweep."""
    if arm.uses_ratio and len(ratios) > 1:
        return f"{arm.name}@{ratio:g}"
    return arm.name


def arms_from_params(audit: AuditParams) -> list[Arm]:
    """The configured arms of the ``audit`` section, in params order."""
    spec = AugmentSpec(**audit.augment.model_dump())
    settings = {
        "minority": audit.minority,
        "oversample_to": audit.oversample_to,
        "synthetic_to": audit.synthetic_to,
    }
    return [parse_arm(name, augment_spec=spec, **settings) for name in audit.arms]


def check_gan_runs(arms: list[Arm], runs: list[str]) -> None:
    """Raise when a gan arm names a GAN run that gan.runs does not define."""
    missing = sorted({a.run for a in arms if a.run is not None} - set(runs))
    if missing:
        raise ValueError(
            f"audit.arms: GAN runs {missing} are not in gan.runs {sorted(runs)}; add them there "
            "or fix the arm names"
        )


def verdict_metric_key(verdict_metric: str, train_counts: list[int], class_names) -> tuple:
    """(metric key, readable label) for the sentences, e.g. ('recall/2', 'csf_other recall').

    'minority_recall' is the recall of the class with the fewest real training images.
    """
    if verdict_metric == "minority_recall":
        k = int(np.argmin(train_counts))
        return f"recall/{k}", f"minority ({class_names[k]}) recall"
    labels = {"balanced_accuracy": "balanced accuracy", "macro_f1": "macro-F1", "auroc": "AUROC"}
    return verdict_metric, labels[verdict_metric]

"""Score one generator's samples against held-out real images, per class and over all classes.

Shape letters: N real images, M generated images, C channels, H/W image size, D features,
K classes.
Real images come from the VAL split (test stays reserved for the downstream audit); the
training split only enters the memorisation check. Every score carries N, the backbone, the
preprocessing and a seeded percentile bootstrap interval as ``<key>_lo`` / ``<key>_hi``, in a
flat, JSON-ready dict that ``dvc metrics show`` lists as ``classes.<name>.<key>``.

Reading the scores: within one class IS is near 1 by construction (every sample should get
the same label), and a per-class Mode Score below 1 means the classifier labels the samples
differently from real images of that class; over all classes IS approaches K. FID and KID
fall to 0 and the 1-NN accuracy to 0.5 as generated samples become indistinguishable from
val; 1-NN well below 0.5 or a memorisation copy fraction well above its expected value means
copying. Limitations: the percentile interval of FID sits above the estimate at small N,
because resampling with replacement adds duplicates that inflate FID.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from pipeline import gan_metrics as gm
from pipeline.backbones import Backbone, DomainBackbone, InceptionBackbone
from pipeline.config import GanEvalParams
from pipeline.constraints import ConstraintSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreSettings:
    """The plain values the scores need (built from ``GanEvalParams`` by the stage)."""

    k: int = 5
    bootstrap: int = 200
    confidence: float = 0.95
    kid_subset_size: int = 1000
    kid_subsets: int = 100
    memorisation_quantile: float = 0.05
    seed: int = 0
    # BLAS threads while scoring: the matrices are small (D <= 2048), and threaded OpenBLAS
    # on a busy 2-core machine ran FID 130x slower than one thread.
    blas_threads: int = 1

    @classmethod
    def from_params(cls, params: GanEvalParams, seed: int) -> ScoreSettings:
        return cls(
            k=params.k,
            bootstrap=params.bootstrap,
            confidence=params.confidence,
            kid_subset_size=params.kid_subset_size,
            kid_subsets=params.kid_subsets,
            memorisation_quantile=params.memorisation_quantile,
            seed=seed,
        )


BACKBONES: dict[str, Callable[[DomainBackbone, torch.device], Backbone]] = {
    "domain": lambda domain, device: domain,
    "inception": lambda domain, device: InceptionBackbone(device),
}


def build_feature_backbone(name: str, domain: DomainBackbone, device: torch.device) -> Backbone:
    """The feature backbone by name; an unknown name lists the valid ones."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {sorted(BACKBONES)}")
    return BACKBONES[name](domain, device)


@dataclass(frozen=True)
class GroupData:
    """Everything one group (a class, or all classes) is scored on."""

    feats_real: np.ndarray  # (N, D) val features
    feats_gen: np.ndarray  # (M, D)
    feats_train: np.ndarray  # (T, D) train features, for memorisation only
    probs_gen: np.ndarray  # (M, K) domain softmax
    real_marginal: np.ndarray  # (K,) p*(y) for Mode Score


def _with_interval(
    out: dict[str, float],
    key: str,
    value: float,
    statistic: Callable[..., float],
    sizes: tuple[int, ...],
    settings: ScoreSettings,
) -> None:
    lo, hi = gm.bootstrap_interval(
        statistic, sizes, settings.bootstrap, settings.confidence, settings.seed
    )
    out[key], out[f"{key}_lo"], out[f"{key}_hi"] = value, lo, hi


def _classifier_scores(data: GroupData, s: ScoreSettings) -> dict[str, float]:
    # IS and Mode Score from the domain softmax; the interval resamples generated rows with
    # the real marginal p* held fixed.
    out: dict[str, float] = {}
    probs, p_star = data.probs_gen, data.real_marginal
    m = (len(probs),)
    value = gm.inception_score(probs)
    _with_interval(out, "inception_score", value, lambda i: gm.inception_score(probs[i]), m, s)
    value = gm.mode_score(probs, p_star)
    _with_interval(out, "mode_score", value, lambda i: gm.mode_score(probs[i], p_star), m, s)
    return out


def _distribution_scores(data: GroupData, s: ScoreSettings) -> dict[str, float]:
    # FID and KID; resample real and generated rows independently.
    out: dict[str, float] = {}
    real, gen = data.feats_real, data.feats_gen
    sizes = (len(real), len(gen))
    _with_interval(out, "fid", gm.fid(real, gen), lambda i, j: gm.fid(real[i], gen[j]), sizes, s)

    # KID's interval reuses the full kernels; a resample leaves out pairs of one sample's copies.
    kid = gm.kid(real, gen, s.kid_subset_size, s.kid_subsets, s.seed)
    kernels = tuple(gm.polynomial_kernel(a, b) for a, b in ((real, real), (gen, gen), (real, gen)))
    stat = lambda i, j: gm.resampled_mmd2(*kernels, i, j)  # noqa: E731
    _with_interval(out, "kid", kid.mean, stat, sizes, s)
    out["kid_std"], out["kid_subset_size"] = kid.std, kid.subset_size
    return out


def _one_nn_scores(data: GroupData, s: ScoreSettings) -> dict[str, float]:
    # Equal sizes for the 1-NN test: subsample the larger set (seeded).
    rng = np.random.default_rng(s.seed)
    n = min(len(data.feats_real), len(data.feats_gen))
    real = data.feats_real[np.sort(rng.choice(len(data.feats_real), n, replace=False))]
    gen = data.feats_gen[np.sort(rng.choice(len(data.feats_gen), n, replace=False))]
    res = gm.one_nn_two_sample(real, gen)

    # Intervals resample the per-sample correct flags of each side.
    ok_r, ok_g = res.correct[:n], res.correct[n:]
    out: dict[str, float] = {"one_nn_p_value": res.p_value, "one_nn_n": n}
    both = lambda i, j: (ok_r[i].sum() + ok_g[j].sum()) / (2 * n)  # noqa: E731
    _with_interval(out, "one_nn_accuracy", res.accuracy, both, (n, n), s)
    _with_interval(
        out, "one_nn_real_accuracy", res.real_accuracy, lambda i: ok_r[i].mean(), (n,), s
    )
    _with_interval(
        out, "one_nn_fake_accuracy", res.fake_accuracy, lambda i: ok_g[i].mean(), (n,), s
    )
    return out


def _manifold_scores(data: GroupData, s: ScoreSettings) -> dict[str, float]:
    # k-NN manifolds; the interval resamples per-sample memberships with the balls held fixed.
    res = gm.precision_recall_density_coverage(data.feats_real, data.feats_gen, s.k)
    out: dict[str, float] = {"k": s.k}
    per_sample = {
        "precision": (res.precision, res.per_fake_inside),
        "recall": (res.recall, res.per_real_inside),
        "density": (res.density, res.per_fake_density),
        "coverage": (res.coverage, res.per_real_covered),
    }
    for key, (value, flags) in per_sample.items():
        _with_interval(out, key, value, lambda i, f=flags: f[i].mean(), (len(flags),), s)
    return out


def _memorisation_scores(data: GroupData, s: ScoreSettings) -> dict[str, float]:
    # The interval resamples generated samples with the held-out reference held fixed.
    res = gm.memorisation(
        data.feats_gen, data.feats_train, data.feats_real, s.memorisation_quantile
    )
    out: dict[str, float] = {
        "memo_expected_fraction": res.expected_fraction,
        "memo_threshold": res.threshold,
    }
    d_train, m = res.train_distance, (len(res.train_distance),)
    copies = d_train < res.threshold
    _with_interval(out, "memo_copy_fraction", res.copy_fraction, lambda i: copies[i].mean(), m, s)

    def ratio(i: np.ndarray) -> float:
        return float(np.median(d_train[i])) / res.heldout_median

    _with_interval(out, "memo_distance_ratio", res.distance_ratio, ratio, m, s)
    return out


SCORERS: dict[str, Callable[[GroupData, ScoreSettings], dict[str, float]]] = {
    "classifier": _classifier_scores,
    "distribution": _distribution_scores,
    "one_nn": _one_nn_scores,
    "manifold": _manifold_scores,
    "memorisation": _memorisation_scores,
}


def score_group(data: GroupData, settings: ScoreSettings) -> dict[str, float]:
    """Every score of one group, with its sample counts and bootstrap intervals."""
    min_rows = settings.k + 1
    if min(len(data.feats_real), len(data.feats_gen)) < min_rows:
        raise ValueError(
            f"expected at least k + 1 = {min_rows} real and generated samples per group, got "
            f"{len(data.feats_real)} real and {len(data.feats_gen)} generated; "
            "lower evaluate_gan.k or raise evaluate_gan.samples_per_class"
        )
    out: dict[str, float] = {
        "n_real": len(data.feats_real),
        "n_gen": len(data.feats_gen),
        "n_train": len(data.feats_train),
    }
    for scorer in SCORERS.values():
        out |= scorer(data, settings)
    return out


def _real_marginal(probs_real: np.ndarray, labels_real: np.ndarray, mix: np.ndarray) -> np.ndarray:
    # p*(y): the classifier's mean softmax on real val images of each class, weighted by the
    # class mix that was generated, so a balanced request is not penalised against an
    # imbalanced val split.
    missing = [c for c in range(len(mix)) if not np.any(labels_real == c)]
    if missing:
        raise ValueError(
            f"the val split has no image of classes {missing}; Mode Score needs every class "
            "in val; re-run ingest with a larger data.val_fraction"
        )
    per_class = np.stack([probs_real[labels_real == c].mean(axis=0) for c in range(len(mix))])
    return mix @ per_class  # (K,)


def _check_inputs(
    gen_imgs: np.ndarray, gen_labels: np.ndarray, val_imgs: np.ndarray, val_labels: np.ndarray
) -> None:
    if gen_imgs.shape[1:] != val_imgs.shape[1:]:
        raise ValueError(
            f"expected generated images shaped like the val images {val_imgs.shape[1:]}, got "
            f"{gen_imgs.shape[1:]}; train the generator at the prepared image size"
        )
    if len(gen_imgs) != len(gen_labels) or len(val_imgs) != len(val_labels):
        raise ValueError("expected one label per image for both generated and val images")


def evaluate_generator(
    gen_imgs: np.ndarray,
    gen_labels: np.ndarray,
    val_imgs: np.ndarray,
    val_labels: np.ndarray,
    train_imgs: np.ndarray,
    train_labels: np.ndarray,
    class_names: tuple[str, ...],
    domain: DomainBackbone,
    features: Backbone,
    settings: ScoreSettings,
) -> dict[str, Any]:
    """Score generated images against the val split, per class and over all classes.

    Images are float32 [0, 1] (N, C, H, W) with int labels (N,). ``domain`` gives p(y|x) for
    IS and Mode Score; ``features`` (the domain backbone or Inception) gives the features of
    every other score. Classes with fewer than k + 1 val or generated images are skipped with
    a warning. Returns a JSON-ready dict: provenance strings and ``classes.<name>.<score>``.
    """
    _check_inputs(gen_imgs, gen_labels, val_imgs, val_labels)
    num_classes = len(class_names)

    # Features once per split; probabilities for generated and val images.
    feats = {
        name: features.features(imgs)
        for name, imgs in (("gen", gen_imgs), ("val", val_imgs), ("train", train_imgs))
    }  # each (N, D) float64
    probs_gen, probs_val = domain.probs(gen_imgs), domain.probs(val_imgs)  # (N, K)
    mix = np.bincount(gen_labels, minlength=num_classes) / len(gen_labels)  # (K,)

    classes: dict[str, dict[str, float]] = {}
    groups = [(name, c) for c, name in enumerate(class_names)] + [("all", None)]
    for name, c in groups:
        pick = {
            "val": slice(None) if c is None else val_labels == c,
            "gen": slice(None) if c is None else gen_labels == c,
            "train": slice(None) if c is None else train_labels == c,
        }
        one_hot = mix if c is None else np.eye(num_classes)[c]
        data = GroupData(
            feats_real=feats["val"][pick["val"]],
            feats_gen=feats["gen"][pick["gen"]],
            feats_train=feats["train"][pick["train"]],
            probs_gen=probs_gen[pick["gen"]],
            real_marginal=_real_marginal(probs_val, val_labels, one_hot),
        )
        if min(len(data.feats_real), len(data.feats_gen), len(data.feats_train)) <= settings.k:
            log.warning("class %s: too few images to score (k=%d); skipped", name, settings.k)
            continue
        with threadpool_limits(limits=settings.blas_threads, user_api="blas"):
            scores = classes[name] = score_group(data, settings)
        log.info(
            "%s: FID %.3f, 1-NN %.3f, precision %.3f, recall %.3f (N real %d, N gen %d)",
            *(name, scores["fid"], scores["one_nn_accuracy"], scores["precision"]),
            *(scores["recall"], scores["n_real"], scores["n_gen"]),
        )

    feature_info, probs_info = features.describe(), domain.describe()
    return {
        "real_split": "val",
        "feature_backbone": feature_info["backbone"],
        "feature_weights": feature_info["weights"],
        "feature_preprocessing": feature_info["preprocessing"],
        "probs_backbone": probs_info["backbone"],
        "probs_weights": probs_info["weights"],
        "probs_preprocessing": probs_info["preprocessing"],
        "interval": f"percentile bootstrap, {settings.bootstrap} resamples",
        "settings": asdict(settings),
        "classes": classes,
    }


def constraint_violations(
    constraints: ConstraintSet,
    gen_imgs: np.ndarray,
    gen_labels: np.ndarray,
    val_imgs: np.ndarray,
    val_labels: np.ndarray,
    class_names: tuple[str, ...],
    device: torch.device,
    settings: ScoreSettings,
) -> dict[str, Any]:
    """Violation rates of each fitted constraint on generated images, beside real val images.

    The real val rate is the floor a perfect generator would reach. Each rate carries N and a
    percentile bootstrap interval; per class and over all classes:
    ``<constraint>.<class or all>.{generated, generated_lo, generated_hi, real_val, ...}``.
    """

    def flags(imgs: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
        return constraints.violations(
            torch.from_numpy(imgs).to(device), torch.from_numpy(labels).to(device)
        )

    gen_flags, val_flags = flags(gen_imgs, gen_labels), flags(val_imgs, val_labels)
    out: dict[str, Any] = {}
    groups = [(name, c) for c, name in enumerate(class_names)] + [("all", None)]
    for cname in gen_flags:
        per_group: dict[str, dict[str, float]] = {}
        for group, c in groups:
            row: dict[str, float] = {}
            for key, f, y in (
                ("generated", gen_flags[cname], gen_labels),
                ("real_val", val_flags[cname], val_labels),
            ):
                picked = f if c is None else f[y == c]
                row[f"n_{key}"] = len(picked)
                if len(picked):
                    stat = lambda i, v=picked: float(v[i].mean())  # noqa: E731
                    _with_interval(row, key, float(picked.mean()), stat, (len(picked),), settings)
            per_group[group] = row
        out[cname] = per_group
        overall = per_group["all"]
        log.info(
            "constraint %s: violation rate %.3f generated vs %.3f real val",
            cname, overall.get("generated", float("nan")), overall.get("real_val", float("nan")),
        )
    return out

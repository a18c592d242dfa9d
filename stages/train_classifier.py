"""Stage train_classifier: the downstream CNN for every arm, ratio and seed, scored on test.

Each arm (see pipeline/arms.py) builds its training set from the same real split; every model is
selected on val and run once on test. All test probabilities go into one ``.npz`` for the
evaluate stage: ``probs`` (L, S, N, K) for L arm labels ('gan:acgan@2' in a ratio sweep).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from pipeline.arms import arm_label, arms_from_params
from pipeline.classifier import ClassifierConfig, predict_proba, train_classifier
from pipeline.io import load_split, write_npz
from pipeline.runtime import start_stage

log = logging.getLogger("stages.train_classifier")


def load_synthetic(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A GAN run's synthetic images (M, C, H, W) float32 [0, 1] and labels (M,)."""
    if not path.is_file():
        raise FileNotFoundError(f"synthetic set not found: {path}; run the synthesize stage")
    with np.load(path) as npz:
        return npz["images"], npz["labels"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    parser.add_argument("--synthetic-dir", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--out", type=Path, default=Path("data/predictions/test.npz"))
    args = parser.parse_args(argv)
    params, device = start_stage(args.params, "train_classifier")
    audit = params.audit

    train, val, test = (load_split(args.prepared / f"{s}.npz") for s in ("train", "val", "test"))
    cfg = ClassifierConfig(**params.classifier.model_dump())

    # One (arm, ratio) job per label; arms that ignore the ratio run once.
    jobs = []
    for arm in arms_from_params(audit):
        for ratio in audit.ratios if arm.uses_ratio else audit.ratios[:1]:
            jobs.append((arm_label(arm, ratio, audit.ratios), arm, ratio))

    probs = np.zeros((len(jobs), len(audit.seeds), len(test.labels), test.num_classes))
    trained_on = np.zeros((len(jobs), train.num_classes), dtype=np.int64)  # images per class
    for j, (label, arm, ratio) in enumerate(jobs):
        synthetic = load_synthetic(args.synthetic_dir / f"{arm.run}.npz") if arm.run else None
        for s, seed in enumerate(audit.seeds):
            # The same seed draws the arm's extra images and initialises the network.
            data = arm.prepare(train, synthetic, ratio, np.random.default_rng(seed))
            result = train_classifier(
                data.images,
                data.labels,
                val.images,
                val.labels,
                train.num_classes,
                cfg,
                seed,
                device,
                class_weights=data.class_weights,
                augment=data.augment,
                desc=f"{label} seed {seed}",
            )
            probs[j, s] = predict_proba(result.model, test.images, device)
        trained_on[j] = np.bincount(data.labels, minlength=train.num_classes)

    write_npz(
        args.out,
        probs=probs,
        arms=np.array([label for label, _, _ in jobs]),
        classical=np.array([arm.is_classical for _, arm, _ in jobs]),
        trained_on=trained_on,
        seeds=np.array(audit.seeds),
        labels=test.labels,
        groups=test.groups,
        hashes=test.hashes,
        class_names=np.array(test.class_names),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Stage train_classifier: the downstream CNN per arm and seed, selected on val, run on test.

Arms: ``real`` (the real training split alone) and ``gan:<run>`` (real plus that run's synthetic
samples). Test predictions of every arm and seed go into one ``.npz`` for the evaluate stage.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from pipeline.classifier import ClassifierConfig, predict_proba, train_classifier
from pipeline.io import load_split, write_npz
from pipeline.runtime import start_stage

log = logging.getLogger("stages.train_classifier")


def arm_training_set(arm: str, train, synthetic_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, C, H, W) float32 [0, 1] and labels (N,) an arm trains on."""
    if arm == "real":
        return train.images, train.labels
    run = arm.removeprefix("gan:")
    with np.load(synthetic_dir / f"{run}.npz") as syn:
        imgs = np.concatenate([train.images, syn["images"]])
        labels = np.concatenate([train.labels, syn["labels"]])
    return imgs, labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    parser.add_argument("--synthetic-dir", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--out", type=Path, default=Path("data/predictions/test.npz"))
    args = parser.parse_args(argv)
    params, device = start_stage(args.params, "train_classifier")

    train, val, test = (load_split(args.prepared / f"{s}.npz") for s in ("train", "val", "test"))
    cfg = ClassifierConfig(**params.classifier.model_dump())
    arms, seeds = params.audit.arms, params.audit.seeds
    probs = np.zeros((len(arms), len(seeds), len(test.labels), test.num_classes))
    for a, arm in enumerate(arms):
        imgs, labels = arm_training_set(arm, train, args.synthetic_dir)
        for s, seed in enumerate(seeds):
            result = train_classifier(
                imgs,
                labels,
                val.images,
                val.labels,
                train.num_classes,
                cfg,
                seed,
                device,
                desc=f"{arm} seed {seed}",
            )
            # Scored once on test, with the epoch chosen on val.
            probs[a, s] = predict_proba(result.model, test.images, device)

    write_npz(
        args.out,
        probs=probs,
        arms=np.array(arms),
        seeds=np.array(seeds),
        labels=test.labels,
        groups=test.groups,
        class_names=np.array(test.class_names),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

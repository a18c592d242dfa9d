"""Stage train_reference: a classifier on the real training split only, selected on val.

It is frozen afterwards and serves as the oracle constraint, the domain feature backbone of the
GAN evaluation and the synthesis quality filter.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipeline.classifier import ClassifierConfig, save_classifier, train_classifier
from pipeline.io import load_split, write_json
from pipeline.runtime import start_stage

log = logging.getLogger("stages.train_reference")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--train", type=Path, default=Path("data/prepared/train.npz"))
    parser.add_argument("--val", type=Path, default=Path("data/prepared/val.npz"))
    parser.add_argument("--out", type=Path, default=Path("models/reference/classifier.pt"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/reference.json"))
    args = parser.parse_args(argv)
    params, device = start_stage(args.params, "train_reference")

    train, val = load_split(args.train), load_split(args.val)
    cfg = ClassifierConfig(**params.classifier.model_dump())
    result = train_classifier(
        train.images,
        train.labels,
        val.images,
        val.labels,
        train.num_classes,
        cfg,
        params.seed,
        device,
        desc="reference",
    )
    meta = {
        "class_names": list(train.class_names),
        "train_hashes": sorted(train.hashes.tolist()),
        "params": params.classifier.model_dump(),
        "seed": params.seed,
    }
    save_classifier(args.out, result.model, meta)
    write_json(
        args.metrics,
        {"val_balanced_accuracy": result.val_score, "best_epoch": result.best_epoch},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Stage train_gan: train one class-conditional GAN run on the training split only."""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

import torch

from pipeline.classifier import load_classifier
from pipeline.constraints import ConstraintSet
from pipeline.gan_train import config_from_params, train_gan
from pipeline.io import atomic_path, load_split
from pipeline.runtime import start_stage
from pipeline.sampling import save_generator

log = logging.getLogger("stages.train_gan")


def write_curve(path: Path, history: list[dict[str, float]]) -> None:
    """Curves as CSV (one row per logged step) for ``dvc plots``."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(history[0]) if history else ["step"])
        writer.writeheader()
        writer.writerows(history)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--run", required=True, help="a key of gan.runs in params")
    parser.add_argument("--train", type=Path, default=Path("data/prepared/train.npz"))
    parser.add_argument("--out", type=Path, required=True, help="generator checkpoint (.pt)")
    parser.add_argument("--curve", type=Path, required=True, help="loss curve CSV")
    parser.add_argument(
        "--reference", type=Path, default=Path("models/reference/classifier.pt"),
        help="frozen real-data classifier: the oracle constraint and checkpoint selection",
    )
    parser.add_argument(
        "--selection", type=Path, required=True, help="checkpoint-selection score CSV"
    )
    args = parser.parse_args(argv)
    params, device = start_stage(args.params, f"train_gan[{args.run}]")

    # Only the training split reaches the GAN; its hashes go into the checkpoint as proof.
    train = load_split(args.train)
    cfg = config_from_params(params.gan, args.run, params.seed)
    log.info(
        "run %s: kind %s, constraints %s, %d images %s, counts %s",
        args.run, cfg.kind, cfg.constraints, len(train.labels),
        train.images.shape[1:], train.counts(),
    )
    reference, _ = load_classifier(args.reference, device)
    constraints = None
    if cfg.constraints:
        specs = [c for c in params.constraints if c.weight > 0]
        constraints = ConstraintSet(specs, oracle=reference).to(device)
        constraints.fit(
            torch.from_numpy(train.images).to(device),
            torch.from_numpy(train.labels).to(device),
            train.num_classes,
        )
        log.info("constraints fitted on train: %s", constraints.describe())
    result = train_gan(
        train.images, train.labels, train.num_classes, cfg, device,
        constraints=constraints, select_features=reference.features,
    )
    meta = {
        "run": args.run,
        "config": cfg.__dict__,
        "class_names": list(train.class_names),
        "train_hashes": sorted(train.hashes.tolist()),
        "best_step": result.best_step,
        "selection": result.selection,
        "rollbacks": result.rollbacks,
    }
    save_generator(args.out, result.generator, meta)
    write_curve(args.curve, result.history)
    write_curve(args.selection, result.selection)
    log.info(
        "wrote %s (generator of step %d of %d), %s, %s",
        args.out, result.best_step, cfg.steps, args.curve, args.selection,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

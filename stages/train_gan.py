"""Stage train_gan: train one class-conditional GAN run on the training split only."""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

from pipeline.gan_train import config_from_params, save_generator, train_gan
from pipeline.io import atomic_path, load_split
from pipeline.runtime import start_stage

log = logging.getLogger("stages.train_gan")


def write_curve(path: Path, history: list[dict[str, float]]) -> None:
    """Loss curves as CSV (one row per logged step) for ``dvc plots``."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--run", required=True, help="a key of gan.runs in params")
    parser.add_argument("--train", type=Path, default=Path("data/prepared/train.npz"))
    parser.add_argument("--out", type=Path, required=True, help="generator checkpoint (.pt)")
    parser.add_argument("--curve", type=Path, required=True, help="loss curve CSV")
    args = parser.parse_args(argv)
    params, device = start_stage(args.params, f"train_gan[{args.run}]")

    # Only the training split reaches the GAN; its hashes go into the checkpoint as proof.
    train = load_split(args.train)
    cfg = config_from_params(params.gan, args.run, params.seed)
    result = train_gan(train.images, train.labels, train.num_classes, cfg, device)
    meta = {
        "run": args.run,
        "config": cfg.__dict__,
        "class_names": list(train.class_names),
        "train_hashes": sorted(train.hashes.tolist()),
    }
    save_generator(args.out, result.generator, meta)
    write_curve(args.curve, result.history)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

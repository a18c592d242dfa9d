"""Stage evaluate_gan: score one trained generator against the val split.

Writes ``metrics/gan_<run>.json``: IS, Mode Score, FID, KID, the 1-NN two-sample test,
precision/recall, density/coverage and memorisation, per class and over all classes, each with
N and a bootstrap interval, plus the backbone, preprocessing and resolved params.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import yaml

from pipeline.backbones import DomainBackbone
from pipeline.gan_eval import (
    GanEvalParams,
    ScoreSettings,
    build_feature_backbone,
    evaluate_generator,
)
from pipeline.gan_train import generate, load_generator
from pipeline.io import load_split, write_json
from pipeline.runtime import configure_logging, seed_everything, select_device

log = logging.getLogger("stages.evaluate_gan")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--run", required=True, help="GAN run name, a key of gan.runs")
    parser.add_argument("--generator", required=True, help="models/<run>/generator.pt")
    parser.add_argument("--train", default="data/prepared/train.npz")
    parser.add_argument("--val", default="data/prepared/val.npz")
    parser.add_argument("--reference", default="models/reference/classifier.pt")
    parser.add_argument("--out", required=True, help="metrics/gan_<run>.json")
    return parser.parse_args(argv)


def load_section(path: str) -> tuple[GanEvalParams, int]:
    # Until config.Params carries evaluate_gan, read and validate the section on its own.
    raw = yaml.safe_load(Path(path).read_text())
    if "evaluate_gan" not in raw or "seed" not in raw:
        raise KeyError(f"{path}: expected keys 'seed' and 'evaluate_gan'; add them")
    return GanEvalParams.model_validate(raw["evaluate_gan"]), int(raw["seed"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    params, seed = load_section(args.params)
    seed_everything(seed)
    device = select_device()
    log.info("run %s, params %s, seed %d, device %s", args.run, params.model_dump(), seed, device)

    # Real images: val for scoring, train for the memorisation check only.
    train, val = load_split(args.train), load_split(args.val)
    log.info(
        "val %s per class, train %s, images %s", val.counts(), train.counts(), val.images.shape
    )

    # The same number of samples of every class, from a fixed seed.
    gen, _ = load_generator(args.generator, device)
    gen_labels = np.repeat(np.arange(val.num_classes), params.samples_per_class)
    gen_imgs = generate(gen, gen_labels, seed, device)  # (M, C, H, W) float32 [0, 1]

    domain = DomainBackbone.from_checkpoint(args.reference, device)
    domain.batch_size = params.batch_size
    features = build_feature_backbone(params.backbone, domain, device)
    result = evaluate_generator(
        gen_imgs=gen_imgs,
        gen_labels=gen_labels,
        val_imgs=val.images,
        val_labels=val.labels,
        train_imgs=train.images,
        train_labels=train.labels,
        class_names=val.class_names,
        domain=domain,
        features=features,
        settings=ScoreSettings.from_params(params, seed),
    )

    result = {"run": args.run, "n_generated_per_class": params.samples_per_class, **result}
    result["params"] = params.model_dump()
    write_json(args.out, result)
    log.info("wrote %s (overall FID %s)", args.out, result["classes"].get("all", {}).get("fid"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

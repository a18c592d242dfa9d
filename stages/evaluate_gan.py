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
import torch

from pipeline.backbones import DomainBackbone
from pipeline.constraints import ConstraintSet
from pipeline.gan_eval import (
    ScoreSettings,
    build_feature_backbone,
    constraint_violations,
    evaluate_generator,
)
from pipeline.io import load_split, write_json
from pipeline.runtime import start_stage
from pipeline.sampling import generate, load_generator

log = logging.getLogger("stages.evaluate_gan")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--run", required=True, help="GAN run name, a key of gan.runs")
    parser.add_argument("--generator", type=Path, required=True, help="models/gan/<run>/...pt")
    parser.add_argument("--train", type=Path, default=Path("data/prepared/train.npz"))
    parser.add_argument("--val", type=Path, default=Path("data/prepared/val.npz"))
    parser.add_argument("--reference", type=Path, default=Path("models/reference/classifier.pt"))
    parser.add_argument("--out", type=Path, required=True, help="metrics/gan_<run>.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params, device = start_stage(args.params, f"evaluate_gan[{args.run}]")
    section = params.evaluate_gan

    # Real images: val for scoring, train for the memorisation check only.
    train, val = load_split(args.train), load_split(args.val)
    shape = val.images.shape
    log.info("val %s per class, train %s, images %s", val.counts(), train.counts(), shape)

    # The same number of samples of every class, from a fixed seed.
    gen, _ = load_generator(args.generator, device)
    gen_labels = np.repeat(np.arange(val.num_classes), section.samples_per_class)
    gen_imgs = generate(gen, gen_labels, params.seed, device)  # (M, C, H, W) float32 [0, 1]

    domain = DomainBackbone.from_checkpoint(args.reference, device, section.batch_size)
    features = build_feature_backbone(section.backbone, domain, device)
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
        settings=ScoreSettings.from_params(section, params.seed),
    )

    # Every run is audited against every constraint of params, trained with them or not.
    settings = ScoreSettings.from_params(section, params.seed)
    if params.constraints:
        constraints = ConstraintSet(params.constraints, oracle=domain.model).to(device)
        constraints.fit(
            torch.from_numpy(train.images).to(device),
            torch.from_numpy(train.labels).to(device),
            train.num_classes,
        )
        result["constraints"] = constraint_violations(
            constraints, gen_imgs, gen_labels, val.images, val.labels, val.class_names,
            device, settings,
        )

    # Provenance first, then the resolved section, then the scores.
    run = params.gan.runs[args.run]
    header = {"run": args.run, "kind": run.kind, "trained_with_constraints": run.constraints}
    header |= {"generator": str(args.generator), "seed": params.seed}
    header["n_generated_per_class"] = section.samples_per_class
    write_json(args.out, {**header, **result, "params": section.model_dump()})
    overall = result["classes"].get("all", {})
    log.info(
        "wrote %s: FID %s, 1-NN %s", args.out, overall.get("fid"), overall.get("one_nn_accuracy")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

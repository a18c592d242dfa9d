"""Stage synthesize: minority samples from one GAN run up to the target balance, and grids."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from pipeline.classifier import load_classifier, predict_proba
from pipeline.io import atomic_path, image_hashes, load_split, write_json, write_npz
from pipeline.runtime import start_stage
from pipeline.sampling import generate, load_generator
from pipeline.synthesis import image_grid, synthesis_counts, synthesize

log = logging.getLogger("stages.synthesize")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--run", required=True, help="a key of gan.runs in params")
    parser.add_argument("--generator", type=Path, required=True)
    parser.add_argument("--train", type=Path, default=Path("data/prepared/train.npz"))
    parser.add_argument("--reference", type=Path, default=Path("models/reference/classifier.pt"))
    parser.add_argument("--out", type=Path, required=True, help="synthetic .npz")
    parser.add_argument("--samples-dir", type=Path, required=True, help="PNG grids per class")
    args = parser.parse_args(argv)
    params, device = start_stage(args.params, f"synthesize[{args.run}]")
    syn_params = params.synth

    # How many images each class needs, from the real training counts.
    train = load_split(args.train)
    counts = synthesis_counts(
        train.counts(), syn_params.target, syn_params.ratio, syn_params.classes
    )
    gen, _ = load_generator(args.generator, device)
    reference, _ = load_classifier(args.reference, device)

    # Draw and filter by the frozen reference classifier's confidence in the intended class.
    result = synthesize(
        sample=lambda labels, seed: generate(gen, labels, seed, device),
        counts=counts,
        seed=params.seed,
        score=lambda imgs: predict_proba(reference, imgs, device),
        min_confidence=syn_params.min_confidence,
        max_draw_factor=syn_params.max_draw_factor,
    )
    write_npz(
        args.out,
        images=result.images,
        labels=result.labels,
        confidence=result.confidence,
        hashes=image_hashes(result.images),
        class_names=np.array(train.class_names),
    )
    log.info("run %s: kept %s of %s drawn per class", args.run, result.kept, result.drawn)

    # One grid per class of unfiltered samples, so the grid shows what the generator makes.
    grid_labels = np.repeat(np.arange(train.num_classes), syn_params.grid_per_class)
    grid_imgs = generate(gen, grid_labels, params.seed + 1, device)
    for k, name in enumerate(train.class_names):
        with atomic_path(args.samples_dir / f"class_{name}.png") as tmp:
            image_grid(grid_imgs[grid_labels == k]).save(tmp, format="PNG")
    write_json(
        args.samples_dir / "summary.json",
        {"wanted": counts, "drawn": result.drawn, "kept": result.kept},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Stage report: the self-contained HTML (and Markdown) audit report with its pictures."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from pipeline.io import load_split
from pipeline.report import write_report
from pipeline.runtime import start_stage
from pipeline.sampling import generate, load_generator

log = logging.getLogger("stages.report")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    parser.add_argument("--audit", type=Path, default=Path("reports/audit.json"))
    parser.add_argument("--gan-dir", type=Path, default=Path("models/gan"))
    parser.add_argument("--curves", type=Path, default=Path("plots/gan"))
    parser.add_argument(
        "--gan-metrics", type=Path, default=Path("metrics"), help="holds gan_<run>.json"
    )
    parser.add_argument("--out-dir", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    params, device = start_stage(args.params, "report")
    n_show = 8

    # Real training images beside each generator's samples of every class.
    train = load_split(args.prepared / "train.npz")
    summary = json.loads((args.prepared / "summary.json").read_text())
    labels = np.repeat(np.arange(train.num_classes), n_show)
    gans, generators = {}, {}
    for run in sorted(params.gan.runs):
        gen, meta = load_generator(args.gan_dir / run / "generator.pt", device)
        gans[run] = (generate(gen, labels, params.seed + 2, device), labels)
        scores = args.gan_metrics / f"gan_{run}.json"
        if scores.is_file():
            generators[run] = json.loads(scores.read_text()) | {"best_step": meta["best_step"]}
        else:
            log.warning("no generator scores at %s; run evaluate_gan", scores)

    audit = json.loads(args.audit.read_text())
    results = {
        "class_names": list(train.class_names),
        "counts": {s: list(v["counts"].values()) for s, v in summary["splits"].items()},
        "data": {
            "source": params.data.source,
            "image shape": "x".join(map(str, summary["image_shape"])),
            **{f"groups in {s}": v["groups"] for s, v in summary["splits"].items()},
        },
        "settings": {
            "seeds": list(params.audit.seeds),
            "ratios": list(params.audit.ratios),
            "bootstrap resamples": params.audit.n_boot,
            "classifier epochs": params.classifier.epochs,
            "GAN steps": params.gan.steps,
        },
        "leakage": audit.pop("leakage"),
        "generators": generators,
        "audit": audit,
    }
    curves = {run: args.curves / f"{run}.csv" for run in sorted(params.gan.runs)}
    write_report(args.out_dir, results, (train.images, train.labels), gans, curves, n_show)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Stage evaluate: the audit's statistics on held-out patients, after a leakage check.

Every arm's test scores get a bootstrap interval over test patients (groups), and every arm a
paired gain over real only and over the best classical arm, with a verdict sentence. The full
result goes to ``reports/audit.json``; a compact table (balanced accuracy and minority recall
first, never a gain in plain accuracy) goes to the ``dvc metrics`` file.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from pipeline.arms import verdict_metric_key
from pipeline.audit_stats import assert_no_leakage, audit_arms
from pipeline.io import load_split, write_json
from pipeline.runtime import start_stage

log = logging.getLogger("stages.evaluate")
HEADLINE = ("balanced_accuracy", "minority_recall", "macro_f1", "auroc")


def check_leakage(gan_dir: Path, runs: list[str], test_hashes: np.ndarray) -> dict:
    """Refuse to go on if any test image was in a GAN's training set; return the counts."""
    counts = {}
    for run in runs:
        path = gan_dir / run / "generator.pt"
        if not path.is_file():
            raise FileNotFoundError(f"generator not found: {path}; run the train_gan stage")
        seen = torch.load(path, map_location="cpu", weights_only=True)["meta"]["train_hashes"]
        assert_no_leakage(test_hashes, np.asarray(seen))
        counts[run] = {"n_test": len(test_hashes), "n_gan_train": len(seen), "overlap": 0}
    return counts


def headline(audit: dict, minority_key: str) -> dict:
    """Flat per-arm numbers for ``dvc metrics show``: value, interval, gain over real."""
    table = {}
    for arm, res in audit["arms"].items():
        row = {}
        for name in HEADLINE:
            key = minority_key if name == "minority_recall" else name
            m = res["metrics"][key]
            row |= {name: m["point"], f"{name}_lo": m["lo"], f"{name}_hi": m["hi"]}
        for name in ("balanced_accuracy", "minority_recall"):
            gain = res.get("vs_baseline", {}).get(
                minority_key if name == "minority_recall" else name
            )
            if gain is not None and arm != audit["baseline"]:
                row |= {
                    f"gain_{name}": gain["diff"],
                    f"gain_{name}_lo": gain["lo"],
                    f"gain_{name}_hi": gain["hi"],
                }
        table[arm] = row
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--predictions", type=Path, default=Path("data/predictions/test.npz"))
    parser.add_argument("--train", type=Path, default=Path("data/prepared/train.npz"))
    parser.add_argument("--gan-dir", type=Path, default=Path("models/gan"))
    parser.add_argument("--audit", type=Path, default=Path("reports/audit.json"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/classifier.json"))
    args = parser.parse_args(argv)
    params, _ = start_stage(args.params, "evaluate")
    audit_params = params.audit

    with np.load(args.predictions) as npz:
        probs, labels, groups = npz["probs"], npz["labels"], npz["groups"]
        arms, classical = npz["arms"].tolist(), npz["classical"]
        hashes, class_names = npz["hashes"], npz["class_names"].tolist()
        trained_on = npz["trained_on"].tolist() if "trained_on" in npz else None
    leakage = check_leakage(args.gan_dir, sorted(params.gan.runs), hashes)

    # Minority = the class with the fewest real training images.
    train_counts = load_split(args.train).counts()
    metric, label = verdict_metric_key(audit_params.verdict_metric, train_counts, class_names)
    minority_key, _ = verdict_metric_key("minority_recall", train_counts, class_names)
    audit = audit_arms(
        labels,
        groups,
        {arm: (probs[a].argmax(-1), probs[a]) for a, arm in enumerate(arms)},
        len(class_names),
        metric,
        label,
        audit_params.n_boot,
        audit_params.bootstrap_seed,
        audit_params.alpha,
        classical=tuple(a for a, c in zip(arms, classical, strict=True) if c),
    )
    audit["leakage"] = leakage
    audit["class_names"] = class_names
    if trained_on is not None:  # training images per class of each arm, real plus added
        audit["trained_on"] = dict(zip(arms, trained_on, strict=True))
    write_json(args.audit, audit)
    write_json(args.metrics, headline(audit, minority_key))
    for res in audit["arms"].values():
        log.info("%s", res["verdict"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

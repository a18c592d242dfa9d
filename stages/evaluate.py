"""Stage evaluate: per-arm test scores and the gain of each GAN arm over real only."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from pipeline.io import write_json
from pipeline.metrics import classification_report
from pipeline.runtime import configure_logging

log = logging.getLogger("stages.evaluate")


def arm_scores(probs: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...]) -> dict:
    """Mean over seeds of each score, for one arm's test probabilities (S, N, K)."""
    reports = [classification_report(labels, p.argmax(axis=1), class_names) for p in probs]
    minority = class_names[int(np.argmin(np.bincount(labels, minlength=len(class_names))))]
    return {
        "balanced_accuracy": float(np.mean([r["balanced_accuracy"] for r in reports])),
        "minority_recall": float(np.mean([r["recall"][minority] for r in reports])),
        "macro_f1": float(np.mean([r["macro_f1"] for r in reports])),
        "recall": {c: float(np.mean([r["recall"][c] for r in reports])) for c in class_names},
        "accuracy": float(np.mean([r["accuracy"] for r in reports])),
        "seeds": len(reports),
        "n_test": int(len(labels)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--predictions", type=Path, default=Path("data/predictions/test.npz"))
    parser.add_argument("--out", type=Path, default=Path("metrics/classifier.json"))
    args = parser.parse_args(argv)
    configure_logging()

    with np.load(args.predictions) as npz:
        probs, arms, labels = npz["probs"], npz["arms"].tolist(), npz["labels"]
        class_names = tuple(npz["class_names"].tolist())
    scores = {arm: arm_scores(probs[a], labels, class_names) for a, arm in enumerate(arms)}

    # Gains lead with balanced accuracy and minority recall, never plain accuracy.
    gains = {
        arm: {
            key: scores[arm][key] - scores["real"][key]
            for key in ("balanced_accuracy", "minority_recall", "macro_f1")
        }
        for arm in arms
        if arm != "real" and "real" in scores
    }
    write_json(args.out, {"arms": scores, "gain_over_real": gains})
    for arm, s in scores.items():
        log.info(
            "%s: balanced accuracy %.3f, minority recall %.3f",
            arm,
            s["balanced_accuracy"],
            s["minority_recall"],
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

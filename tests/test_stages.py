"""Every stage's main() on the smoke params, in a temporary folder, in dvc.yaml's order."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.io import load_split
from stages import evaluate, ingest, synthesize, train_classifier, train_gan, train_reference
from tests.conftest import DATA


def run_pipeline(root: Path) -> Path:
    """Run the stages as dvc.yaml wires them, with paths under ``root``; return ``root``."""
    params = root / "params.yaml"
    shutil.copy(DATA / "params_smoke.yaml", params)
    p, prep = str(params), root / "data/prepared"
    assert ingest.main(["--params", p, "--out-dir", str(prep)]) == 0
    assert (
        train_reference.main(
            [
                "--params",
                p,
                "--train",
                str(prep / "train.npz"),
                "--val",
                str(prep / "val.npz"),
                "--out",
                str(root / "models/reference/classifier.pt"),
                "--metrics",
                str(root / "metrics/reference.json"),
            ]
        )
        == 0
    )
    run = "acgan"
    assert (
        train_gan.main(
            [
                "--params",
                p,
                "--run",
                run,
                "--train",
                str(prep / "train.npz"),
                "--out",
                str(root / f"models/gan/{run}/generator.pt"),
                "--curve",
                str(root / f"plots/gan/{run}.csv"),
            ]
        )
        == 0
    )
    assert (
        synthesize.main(
            [
                "--params",
                p,
                "--run",
                run,
                "--generator",
                str(root / f"models/gan/{run}/generator.pt"),
                "--train",
                str(prep / "train.npz"),
                "--reference",
                str(root / "models/reference/classifier.pt"),
                "--out",
                str(root / f"data/synthetic/{run}.npz"),
                "--samples-dir",
                str(root / f"reports/samples/{run}"),
            ]
        )
        == 0
    )
    assert (
        train_classifier.main(
            [
                "--params",
                p,
                "--prepared",
                str(prep),
                "--synthetic-dir",
                str(root / "data/synthetic"),
                "--out",
                str(root / "data/predictions/test.npz"),
            ]
        )
        == 0
    )
    assert (
        evaluate.main(
            [
                "--predictions",
                str(root / "data/predictions/test.npz"),
                "--out",
                str(root / "metrics/classifier.json"),
            ]
        )
        == 0
    )
    return root


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    return run_pipeline(tmp_path_factory.mktemp("smoke"))


def test_ingest_writes_splits_and_summary(smoke):
    summary = json.loads((smoke / "data/prepared/summary.json").read_text())
    for name in ("train", "val", "test"):
        split = load_split(smoke / f"data/prepared/{name}.npz")
        assert summary["splits"][name]["n"] == len(split.labels)
        assert list(summary["splits"][name]["counts"].values()) == split.counts()


def test_gan_checkpoint_records_only_training_hashes(smoke):
    import torch

    payload = torch.load(smoke / "models/gan/acgan/generator.pt", weights_only=True)
    seen = set(payload["meta"]["train_hashes"])
    assert seen == set(load_split(smoke / "data/prepared/train.npz").hashes.tolist())
    for name in ("val", "test"):
        assert not seen & set(load_split(smoke / f"data/prepared/{name}.npz").hashes.tolist())


def test_loss_curve_csv(smoke):
    lines = (smoke / "plots/gan/acgan.csv").read_text().splitlines()
    assert lines[0].startswith("step,loss_d,loss_g")
    assert len(lines) == 1 + 100 // 20


def test_synthetic_set_fills_the_minority_up_to_the_majority(smoke):
    train = load_split(smoke / "data/prepared/train.npz")
    with np.load(smoke / "data/synthetic/acgan.npz") as syn:
        labels, conf, imgs = syn["labels"], syn["confidence"], syn["images"]
    minority = int(np.argmin(train.counts()))
    assert set(labels.tolist()) <= {minority}
    # The smoke params switch the confidence filter off, so the minority is filled exactly.
    assert len(labels) == max(train.counts()) - min(train.counts())
    assert (conf >= 0.0).all() and len(conf) == len(labels)
    assert imgs.dtype == np.float32 and imgs.min() >= 0 and imgs.max() <= 1
    for name in train.class_names:
        assert (smoke / f"reports/samples/acgan/class_{name}.png").stat().st_size > 100


def test_metrics_lead_with_balanced_accuracy_and_report_the_gain(smoke):
    metrics = json.loads((smoke / "metrics/classifier.json").read_text())
    assert set(metrics["arms"]) == {"real", "gan:acgan"}
    real, gan = metrics["arms"]["real"], metrics["arms"]["gan:acgan"]
    assert list(real)[:2] == ["balanced_accuracy", "minority_recall"]
    gain = metrics["gain_over_real"]["gan:acgan"]["balanced_accuracy"]
    assert np.isclose(gain, gan["balanced_accuracy"] - real["balanced_accuracy"])


def test_same_params_and_seed_give_the_same_metrics(smoke, tmp_path):
    again = run_pipeline(tmp_path)
    first = json.loads((smoke / "metrics/classifier.json").read_text())
    second = json.loads((again / "metrics/classifier.json").read_text())
    assert first == second

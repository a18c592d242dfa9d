"""Every stage's main() on the smoke params, in a temporary folder, in dvc.yaml's order."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.io import load_split
from stages import (
    evaluate,
    evaluate_gan,
    ingest,
    report,
    synthesize,
    train_classifier,
    train_gan,
    train_reference,
)
from tests.conftest import DATA

RUNS = ("acgan", "d2gan_prior")  # the smoke params' gan.runs: one plain, one constrained


def run_pipeline(root: Path, params: Path = DATA / "params_smoke.yaml") -> Path:
    """Run the stages as dvc.yaml wires them, with paths under ``root``; return ``root``."""
    if params != root / "params.yaml":
        shutil.copy(params, root / "params.yaml")
    prep, ref = root / "data/prepared", root / "models/reference/classifier.pt"
    steps = [
        (ingest, f"--out-dir {prep}"),
        (
            train_reference,
            f"--train {prep}/train.npz --val {prep}/val.npz --out {ref} "
            f"--metrics {root}/metrics/reference.json",
        ),
    ]
    for run in RUNS:
        gen = root / f"models/gan/{run}/generator.pt"
        steps += [
            (
                train_gan,
                f"--run {run} --train {prep}/train.npz --reference {ref} --out {gen} "
                f"--curve {root}/plots/gan/{run}.csv --selection {root}/plots/gan_select/{run}.csv",
            ),
            (
                synthesize,
                f"--run {run} --generator {gen} --train {prep}/train.npz --reference {ref} "
                f"--out {root}/data/synthetic/{run}.npz --samples-dir {root}/reports/samples/{run}",
            ),
            (
                evaluate_gan,
                f"--run {run} --generator {gen} --train {prep}/train.npz --val {prep}/val.npz "
                f"--reference {ref} --out {root}/metrics/gan_{run}.json",
            ),
        ]
    steps += [
        (
            train_classifier,
            f"--prepared {prep} --synthetic-dir {root}/data/synthetic "
            f"--out {root}/data/predictions/test.npz",
        ),
        (
            evaluate,
            f"--predictions {root}/data/predictions/test.npz --train {prep}/train.npz "
            f"--gan-dir {root}/models/gan --audit {root}/reports/audit.json "
            f"--metrics {root}/metrics/classifier.json",
        ),
        (
            report,
            f"--prepared {prep} --audit {root}/reports/audit.json "
            f"--gan-dir {root}/models/gan --curves {root}/plots/gan --gan-metrics {root}/metrics "
            f"--out-dir {root}/reports",
        ),
    ]
    for stage, args in steps:
        argv = ["--params", str(root / "params.yaml"), *args.split()]
        assert stage.main(argv) == 0, stage.__name__
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


@pytest.mark.parametrize("run", RUNS)
def test_gan_checkpoint_records_only_training_hashes(smoke, run):
    import torch

    payload = torch.load(smoke / f"models/gan/{run}/generator.pt", weights_only=True)
    seen = set(payload["meta"]["train_hashes"])
    assert seen == set(load_split(smoke / "data/prepared/train.npz").hashes.tolist())
    for name in ("val", "test"):
        assert not seen & set(load_split(smoke / f"data/prepared/{name}.npz").hashes.tolist())


@pytest.mark.parametrize("run", RUNS)
def test_generator_is_the_best_selection_checkpoint(smoke, run):
    import torch

    meta = torch.load(smoke / f"models/gan/{run}/generator.pt", weights_only=True)["meta"]
    scores = {row["step"]: row["score"] for row in meta["selection"]}
    assert sorted(scores) == [50, 100]  # select_every 50 of 100 steps
    assert meta["best_step"] == min(scores, key=scores.get)
    curve = (smoke / f"plots/gan_select/{run}.csv").read_text().splitlines()
    assert curve[0] == "step,score" and len(curve) == 3


def test_constrained_run_logs_its_constraint_terms(smoke):
    header = (smoke / "plots/gan/d2gan_prior.csv").read_text().splitlines()[0].split(",")
    for name in ("intensity_range", "class_stats", "support", "smoothness", "oracle"):
        assert f"c_{name}" in header
    assert {"d1_source", "d2_source"} <= set(header)
    plain = (smoke / "plots/gan/acgan.csv").read_text().splitlines()[0]
    assert "c_oracle" not in plain and "d1_source" not in plain


@pytest.mark.parametrize("run", RUNS)
def test_gan_metrics_report_violation_rates_beside_the_real_floor(smoke, run):
    metrics = json.loads((smoke / f"metrics/gan_{run}.json").read_text())
    assert metrics["trained_with_constraints"] == (run == "d2gan_prior")
    rates = metrics["constraints"]
    assert set(rates) == {"intensity_range", "class_stats", "support", "smoothness", "oracle"}
    for per_group in rates.values():
        overall = per_group["all"]
        assert overall["n_generated"] == 3 * 40  # samples_per_class 40, three classes
        for key in ("generated", "real_val"):
            assert 0.0 <= overall[f"{key}_lo"] <= overall[key] <= overall[f"{key}_hi"] <= 1.0


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
        for run in RUNS:
            assert (smoke / f"reports/samples/{run}/class_{name}.png").stat().st_size > 100


def test_metrics_lead_with_balanced_accuracy_and_report_the_gain(smoke):
    metrics = json.loads((smoke / "metrics/classifier.json").read_text())
    arms = [
        "real", "classic", "oversample", "class_weight",
        "gan:acgan", "gan:d2gan_prior", "gan_classic:acgan",
    ]
    assert list(metrics) == arms
    real, gan = metrics["real"], metrics["gan:acgan"]
    assert list(real)[:2] == ["balanced_accuracy", "balanced_accuracy_lo"]
    assert "gain_balanced_accuracy" not in real
    assert real["balanced_accuracy_lo"] <= real["balanced_accuracy"] <= real["balanced_accuracy_hi"]
    gain = gan["gain_balanced_accuracy"]
    assert np.isclose(gain, gan["balanced_accuracy"] - real["balanced_accuracy"])
    assert not any("accuracy" == key.removeprefix("gain_") for key in gan)


def test_audit_has_a_verdict_per_arm_and_the_leakage_check(smoke):
    audit = json.loads((smoke / "reports/audit.json").read_text())
    for run in RUNS:
        assert audit["leakage"][run]["overlap"] == 0
    # Each arm's training set, per class: real plus what it added.
    train = load_split(smoke / "data/prepared/train.npz").counts()
    assert audit["trained_on"]["real"] == train
    minority = int(np.argmin(train))
    oversampled = audit["trained_on"]["oversample"]
    assert oversampled[minority] == max(train) and sum(oversampled) > sum(train)
    assert audit["trained_on"]["gan:acgan"][minority] == 2 * train[minority]  # ratio 1.0
    for arm, res in audit["arms"].items():
        assert res["verdict"].startswith(arm)


def test_report_is_self_contained(smoke):
    html = (smoke / "reports/report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4
    assert 'src="http' not in html and 'href="http' not in html
    assert (smoke / "reports/report.md").read_text().count("figures/") >= 4
    assert (smoke / "reports/gains.csv").read_text().startswith("label,arm,metric,gain")
    # Both kinds' scores and the constraint violations beside the real floor.
    assert "Generator scores" in html and "real val images (floor)" in html
    for run in RUNS:
        assert f"<td>{run}</td>" in html


def test_same_params_and_seed_give_the_same_metrics(smoke, tmp_path):
    again = run_pipeline(tmp_path)
    first = json.loads((smoke / "metrics/classifier.json").read_text())
    second = json.loads((again / "metrics/classifier.json").read_text())
    assert first == second

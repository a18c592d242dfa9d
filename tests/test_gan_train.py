"""The training loop: both kinds, DiffAugment, the EMA sampler, checkpoint selection, and what
happens on a non-finite loss."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from pipeline import gan_train
from pipeline.diffaugment import FILL, cutout, diff_augment, translation
from pipeline.gan_train import Ema, GanKind, TrainConfig, train_gan

CFG = TrainConfig(
    kind="acgan", latent_dim=8, width=4, steps=12, batch_size=8, lr_g=2e-4, lr_d=2e-4,
    beta1=0.5, beta2=0.999, class_weight=1.0, log_every=2, mixed_precision=False, seed=0,
    d2gan_alpha=0.2, d2gan_beta=0.1, diffaugment=("translation", "cutout"), ema_decay=0.99,
    select_every=4, select_samples=6,
)
CPU = torch.device("cpu")


def tiny_data(n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((n, 1, 8, 8), dtype=np.float32), np.arange(n) % 3


def pixel_features(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.avg_pool2d(x, 4).flatten(1)  # (B, 4): a cheap 'feature space'


@pytest.mark.parametrize("kind, terms", [("acgan", {"d_source"}), ("d2gan", {"d1_source"})])
def test_both_kinds_train_with_every_option(kind, terms):
    cfg = dataclasses.replace(CFG, kind=kind)
    res = train_gan(*tiny_data(), 3, cfg, CPU, select_features=pixel_features)
    assert [row["step"] for row in res.history] == list(range(2, 13, 2))
    assert terms <= set(res.history[0])
    assert all(np.isfinite(v) for row in res.history for v in row.values())
    assert not res.generator.training
    assert len(gan_train.build_models(cfg, 3, 1, 8)[1]) == (2 if kind == "d2gan" else 1)


def test_kept_generator_is_the_best_scored_one_not_the_last():
    res = train_gan(*tiny_data(), 3, CFG, CPU, select_features=pixel_features)
    scores = {row["step"]: row["score"] for row in res.selection}
    assert sorted(scores) == [4, 8, 12]
    assert res.best_step == min(scores, key=scores.get)
    # Re-scoring the returned generator on the selector's fixed noise gives the best score.
    imgs, labels = tiny_data()
    real = torch.from_numpy(imgs)
    selector = gan_train.Selector(
        pixel_features, real, torch.from_numpy(labels), 3, CFG.select_samples, CFG.latent_dim,
        CFG.seed + 2,
    )
    assert selector.score(res.generator) == pytest.approx(scores[res.best_step], rel=1e-6)


def test_training_is_deterministic():
    a = train_gan(*tiny_data(), 3, CFG, CPU)
    b = train_gan(*tiny_data(), 3, CFG, CPU)
    state_b = b.generator.state_dict()
    for key, value in a.generator.state_dict().items():
        assert torch.equal(value, state_b[key]), key


def test_ema_warms_up_then_averages():
    live = nn.Linear(1, 1, bias=False)
    nn.init.constant_(live.weight, 0.0)
    ema = Ema(live, decay=0.9)
    with torch.no_grad():
        live.weight.fill_(1.0)
    ema.update(live)  # decay min(0.9, 2 / 11)
    assert ema.model.weight.item() == pytest.approx(1 - 2 / 11)
    for _ in range(200):
        ema.update(live)
    assert ema.model.weight.item() == pytest.approx(1.0, abs=1e-6)
    assert not ema.model.weight.requires_grad


def test_translation_shifts_and_fills():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    out = translation(x, torch.Generator().manual_seed(0), ratio=0.25)  # shifts in [-1, 1]
    for img in out[:, 0]:
        # Each output equals the input shifted by some (dy, dx), with FILL at the borders.
        matches = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ref = torch.full((4, 4), FILL)
                ys, xs = slice(max(dy, 0), 4 + min(dy, 0)), slice(max(dx, 0), 4 + min(dx, 0))
                yr, xr = slice(max(-dy, 0), 4 + min(-dy, 0)), slice(max(-dx, 0), 4 + min(-dx, 0))
                ref[ys, xs] = x[0, 0][yr, xr]
                matches.append(torch.equal(img, ref))
        assert sum(matches) == 1
    assert len({tuple(img.flatten().tolist()) for img in out[:, 0]}) > 3  # shifts vary


def test_cutout_fills_one_square_and_passes_gradients():
    x = torch.zeros(32, 1, 8, 8, requires_grad=True)
    out = cutout(x, torch.Generator().manual_seed(0), ratio=0.5)
    filled = (out == FILL).flatten(1).sum(1)
    assert (filled > 0).all() and (filled <= 16).all() and (filled == 16).any()
    out.sum().backward()
    assert ((x.grad == 0) | (x.grad == 1)).all() and (x.grad == 1).any()


def test_diff_augment_policy():
    x = torch.rand(2, 1, 8, 8)
    assert diff_augment(x, (), torch.Generator()) is x
    with pytest.raises(ValueError, match="unknown DiffAugment op 'color'.*cutout"):
        diff_augment(x, ("color",), torch.Generator())


def flaky(bad_calls: set[int]) -> GanKind:
    """ACGAN whose discriminator loss is NaN on the given (1-based) calls."""
    base, calls = gan_train.KINDS["acgan"], {"n": 0}

    def d_loss(*args):
        calls["n"] += 1
        loss, parts = base.d_loss(*args)
        if calls["n"] in bad_calls:
            parts = parts | {"d_source": parts["d_source"] * float("nan")}
        return loss + parts["d_source"] * 0, parts

    return GanKind(1, d_loss, base.g_loss)


def test_non_finite_loss_stops_naming_step_and_term(monkeypatch):
    monkeypatch.setitem(gan_train.KINDS, "acgan", flaky({3}))
    with pytest.raises(FloatingPointError, match=r"step 3: loss_d = nan.*rollback"):
        train_gan(*tiny_data(), 3, CFG, CPU)


def test_rollback_restores_the_last_snapshot_and_finishes(monkeypatch):
    monkeypatch.setitem(gan_train.KINDS, "acgan", flaky({7}))
    cfg = dataclasses.replace(CFG, on_nonfinite="rollback")
    res = train_gan(*tiny_data(), 3, cfg, CPU, select_features=pixel_features)
    assert res.rollbacks == [{"step": 7, "term": "loss_d", "restored_to": 4}]
    assert [row["step"] for row in res.history] == list(range(2, 13, 2))
    assert [row["step"] for row in res.selection] == [4, 8, 12]


def test_rollbacks_are_bounded(monkeypatch):
    monkeypatch.setitem(gan_train.KINDS, "acgan", flaky(set(range(1, 100))))
    cfg = dataclasses.replace(CFG, on_nonfinite="rollback", max_rollbacks=2)
    with pytest.raises(FloatingPointError, match="rolled back 2 times"):
        train_gan(*tiny_data(), 3, cfg, CPU)

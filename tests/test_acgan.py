from __future__ import annotations

import math

import torch

from pipeline import acgan


def test_losses_at_zero_logits_are_log2_and_logk():
    # With all logits 0: each BCE is log 2, each K-way cross-entropy is log K.
    k = 3
    src, cls = torch.zeros(4), torch.zeros(4, k)
    labels = torch.tensor([0, 1, 2, 0])
    loss_d, parts_d = acgan.d_loss([(src, cls)], [(src, cls)], labels, labels, class_weight=1.0)
    assert math.isclose(parts_d["d_source"].item(), 2 * math.log(2), rel_tol=1e-6)
    assert math.isclose(parts_d["d_class"].item(), 2 * math.log(k), rel_tol=1e-6)
    assert math.isclose(loss_d.item(), 2 * math.log(2) + 2 * math.log(k), rel_tol=1e-6)

    loss_g, parts_g = acgan.g_loss([(src, cls)], labels, class_weight=0.5)
    assert math.isclose(loss_g.item(), math.log(2) + 0.5 * math.log(k), rel_tol=1e-6)


def test_losses_on_hand_computed_logits():
    # D: real source logit 2, fake source logit -1; class logits favour the right class by 1.
    src_real, src_fake = torch.tensor([2.0]), torch.tensor([-1.0])
    cls = torch.tensor([[1.0, 0.0]])
    label = torch.tensor([0])
    loss_d, parts = acgan.d_loss([(src_real, cls)], [(src_fake, cls)], label, label, 1.0)
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    # -log sigmoid(2) - log(1 - sigmoid(-1)) = softplus(-2) + softplus(-1)
    assert math.isclose(parts["d_source"].item(), softplus(-2) + softplus(-1), rel_tol=1e-6)
    ce = -math.log(math.e / (math.e + 1))
    assert math.isclose(parts["d_class"].item(), 2 * ce, rel_tol=1e-6)

    # G's non-saturating source term: -log sigmoid(-1) = softplus(1).
    _, parts_g = acgan.g_loss([(src_fake, cls)], label, 1.0)
    assert math.isclose(parts_g["g_source"].item(), softplus(1), rel_tol=1e-6)


def test_class_term_takes_logits_not_probabilities():
    # A confident, correct class head must give a near-zero class loss; after a softmax
    # (the known bug) the loss would stay near log K.
    cls = torch.tensor([[20.0, 0.0, 0.0]])
    loss, parts = acgan.g_loss([(torch.tensor([0.0]), cls)], torch.tensor([0]), 1.0)
    assert parts["g_class"].item() < 1e-6

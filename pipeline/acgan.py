"""ACGAN losses (Odena, Olah, Shlens 2017, "Conditional image synthesis with auxiliary
classifier GANs", eqs. 2-3).

With L_S the log-likelihood of the correct source and L_C that of the correct class, D maximises
L_S + L_C and G maximises L_C - L_S. We minimise the negated log-likelihoods, and G uses the
non-saturating form of its source term (maximise log D(G(z)) rather than minimise
log(1 - D(G(z)))), as Odena et al. and every working implementation do.

The class head emits raw logits straight into cross-entropy: a softmax before cross-entropy
(a bug in several public ACGAN codes) squashes the gradients.

Shape letters: B batch, K classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Outputs = list[tuple[torch.Tensor, torch.Tensor]]  # per discriminator: (B,) source, (B, K) class


def d_loss(
    real: Outputs,
    fake: Outputs,
    labels_real: torch.Tensor,
    labels_fake: torch.Tensor,
    class_weight: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Discriminator loss -(L_S + w * L_C) for ACGAN's single discriminator."""
    (src_real, cls_real), (src_fake, cls_fake) = real[0], fake[0]

    # Source term: real images labelled 1, generated images labelled 0.
    loss_src = F.binary_cross_entropy_with_logits(
        src_real, torch.ones_like(src_real)
    ) + F.binary_cross_entropy_with_logits(src_fake, torch.zeros_like(src_fake))

    # Class term on both real and generated images: D learns to classify both.
    loss_cls = F.cross_entropy(cls_real, labels_real) + F.cross_entropy(cls_fake, labels_fake)
    loss = loss_src + class_weight * loss_cls
    return loss, {"d_source": loss_src, "d_class": loss_cls}


def g_loss(
    fake: Outputs, labels_fake: torch.Tensor, class_weight: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Generator loss: non-saturating source term plus the class term (G maximises L_C - L_S)."""
    src_fake, cls_fake = fake[0]
    loss_src = F.binary_cross_entropy_with_logits(src_fake, torch.ones_like(src_fake))
    loss_cls = F.cross_entropy(cls_fake, labels_fake)
    loss = loss_src + class_weight * loss_cls
    return loss, {"g_source": loss_src, "g_class": loss_cls}

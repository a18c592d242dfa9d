"""Class-conditional D2GAN losses (Nguyen, Le, Vu, Phung 2017, "Dual discriminator generative
adversarial nets", eq. 1), with an auxiliary class head on both discriminators.

D2GAN trains G against two discriminators whose outputs are positive, D_j(x) = softplus(a_j(x))
for a raw logit a_j:

    min_G max_{D1,D2}  alpha * E_x[log D1(x)] - E_z[D1(G(z))]
                       - E_x[D2(x)] + beta * E_z[log D2(G(z))],   alpha, beta in (0, 1].

D1 rewards real data and D2 rewards generated data. At the optimal discriminators G minimises
alpha * KL(P_data || P_G) + beta * KL(P_G || P_data): the forward KL covers every mode, the
reverse KL keeps samples on the data, and together they resist mode collapse.

Class conditioning. The authors' code is unconditional; here both discriminators carry an
auxiliary class head exactly as ACGAN's (Odena et al. 2017) does, rather than a projection
head (Miyato & Koyama 2018). Reasons: (1) the source terms stay the paper's unconditional
D2GAN terms, so its KL analysis holds for the source part unchanged, while a projection would
turn D1 and D2 into class-conditional density ratios that the positivity (softplus) must then
hold for every class embedding; (2) the class head learns from every real image of every
class, which matters when the minority class has a hundred images, whereas a projection
embedding of the rare class learns from that class alone; (3) ACGAN and D2GAN then share the
network and the class term, so comparing the two kinds isolates the source objective.
Limitation: an auxiliary classifier pulls G towards easily classified samples, which lowers
within-class diversity; the reverse-KL term and the collapse-aware checkpoint selection work
against that, and the evaluation (1-NN test, recall/coverage) shows whether it happened.

Numerics: log D_j(x) = log softplus(a) underflows for large negative a (softplus(-200) is 0 in
float32, so the naive log is -inf and its gradient NaN); ``log_softplus`` computes it in log
space and is exact to float32 precision everywhere. All terms are computed in float32, also
under bfloat16 autocast.

Shape letters: B batch, K classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Outputs = list[tuple[torch.Tensor, torch.Tensor]]  # per discriminator: (B,) source, (B, K) class

# Below this logit, softplus(a) = e^a (1 - e^a / 2 + O(e^2a)), so log softplus(a) = a - e^a / 2
# to within e^2a < 1e-17: far below float32 resolution. Above it, softplus(a) >= 2e-9 and the
# direct log is accurate.
_TAIL = -20.0


def log_softplus(logits: torch.Tensor) -> torch.Tensor:
    """log(softplus(a)) computed stably in float32 for any finite a; gradients finite too."""
    a = logits.float()
    # Both branches see clamped inputs, so neither produces inf/NaN (torch.where
    # backpropagates through both branches).
    direct = torch.log(F.softplus(a.clamp(min=_TAIL)))
    tail = a - 0.5 * torch.exp(a.clamp(max=_TAIL))
    return torch.where(a < _TAIL, tail, direct)


def d_source_losses(
    a1_real: torch.Tensor,
    a1_fake: torch.Tensor,
    a2_real: torch.Tensor,
    a2_fake: torch.Tensor,
    alpha: float,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The discriminators' source losses (D1's, D2's): the negated D2GAN objective's terms.

    D1 maximises alpha * log D1(x) - D1(G(z)); D2 maximises -D2(x) + beta * log D2(G(z)).
    Arguments are raw logits (B,); D_j = softplus(logit).
    """
    loss_d1 = -alpha * log_softplus(a1_real).mean() + F.softplus(a1_fake.float()).mean()
    loss_d2 = F.softplus(a2_real.float()).mean() - beta * log_softplus(a2_fake).mean()
    return loss_d1, loss_d2


def g_source_loss(a1_fake: torch.Tensor, a2_fake: torch.Tensor, beta: float) -> torch.Tensor:
    """G's source loss -D1(G(z)) + beta * log D2(G(z)) from raw logits (B,)."""
    return -F.softplus(a1_fake.float()).mean() + beta * log_softplus(a2_fake).mean()


def d_loss(
    real: Outputs,
    fake: Outputs,
    labels_real: torch.Tensor,
    labels_fake: torch.Tensor,
    alpha: float,
    beta: float,
    class_weight: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Discriminators' loss: the negated D2GAN objective plus both class heads' cross-entropy.

    ``real`` and ``fake`` hold the outputs of D1 then D2 on the same real and generated batch.
    """
    (a1_real, cls1_real), (a2_real, cls2_real) = real
    (a1_fake, cls1_fake), (a2_fake, cls2_fake) = fake

    loss_d1, loss_d2 = d_source_losses(a1_real, a1_fake, a2_real, a2_fake, alpha, beta)

    # Each discriminator's class head classifies real and generated images, as in ACGAN.
    loss_cls = sum(
        F.cross_entropy(c_real.float(), labels_real) + F.cross_entropy(c_fake.float(), labels_fake)
        for c_real, c_fake in ((cls1_real, cls1_fake), (cls2_real, cls2_fake))
    )
    loss = loss_d1 + loss_d2 + class_weight * loss_cls
    return loss, {"d1_source": loss_d1, "d2_source": loss_d2, "d_class": loss_cls}


def g_loss(
    fake: Outputs, labels_fake: torch.Tensor, beta: float, class_weight: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Generator loss: -D1(G(z)) + beta * log D2(G(z)), plus the mean class cross-entropy."""
    (a1_fake, cls1_fake), (a2_fake, cls2_fake) = fake
    loss_src = g_source_loss(a1_fake, a2_fake, beta)
    loss_cls = 0.5 * (
        F.cross_entropy(cls1_fake.float(), labels_fake)
        + F.cross_entropy(cls2_fake.float(), labels_fake)
    )
    loss = loss_src + class_weight * loss_cls
    return loss, {"g_source": loss_src, "g_class": loss_cls}

"""Class-conditional DCGAN-style networks for small single- or few-channel images.

Shape letters: B batch, C channels, H/W image size (divisible by 4), K classes, Z latent size,
F feature width.
"""

from __future__ import annotations

import torch
from torch import nn


class Generator(nn.Module):
    """Maps noise and a class label to an image, float32 [-1, 1] (B, C, H, W)."""

    def __init__(
        self, latent_dim: int, num_classes: int, channels: int, image_size: int, width: int
    ) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"expected an image size divisible by 4, got {image_size}")
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.base = image_size // 4
        self.embed = nn.Embedding(num_classes, latent_dim)
        self.project = nn.Sequential(
            nn.Linear(latent_dim, 4 * width * self.base * self.base),
            nn.BatchNorm1d(4 * width * self.base * self.base),
            nn.ReLU(inplace=True),
        )
        self.body = nn.Sequential(
            _up_block(4 * width, 2 * width),
            _up_block(2 * width, width),
            nn.Conv2d(width, channels, kernel_size=3, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # Condition by multiplying the noise with a learnt class embedding (ACGAN, Odena 2017).
        h = self.project(z * self.embed(labels))  # (B, 4F * H/4 * W/4)
        h = h.view(len(z), -1, self.base, self.base)  # (B, 4F, H/4, W/4)
        return self.body(h)  # (B, C, H, W) float32 [-1, 1]


def _up_block(c_in: int, c_out: int) -> nn.Sequential:
    # Nearest upsampling then a 3x3 conv avoids the checkerboard of transposed convolutions.
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Discriminator(nn.Module):
    """Scores images as real or fake and predicts their class.

    Returns the source logit (B,) and the class logits (B, K); both are raw logits, so the
    losses apply sigmoid/softmax inside numerically stable cross-entropies.
    """

    def __init__(self, num_classes: int, channels: int, image_size: int, width: int) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"expected an image size divisible by 4, got {image_size}")
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * width, 4 * width, kernel_size=3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
        )
        feat_dim = 4 * width * (image_size // 4) ** 2
        self.source_head = nn.Linear(feat_dim, 1)
        self.class_head = nn.Linear(feat_dim, num_classes)

    def forward(self, imgs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.body(imgs)  # (B, 4F * H/4 * W/4)
        return self.source_head(feats).squeeze(1), self.class_head(feats)  # (B,), (B, K)


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) convolutions and linears, N(1, 0.02) norm scales."""
    if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)

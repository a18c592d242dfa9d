"""Differentiable augmentation for GAN training on little data (Zhao, Liu, Lin, Zhu, Han 2020,
"Differentiable augmentation for data-efficient GAN training").

The same random translation and cutout are drawn for every image fed to a discriminator, real
or generated, and gradients flow through them to G. Because both distributions are augmented
alike, D cannot tell them apart by the augmentation, and it overfits the few real images far
less. Images are in the generator's range [-1, 1]; shifted-in borders and cut-out squares are
filled with -1, the darkest value, which is what background looks like in medical and thermal
images.

Shape letters: B batch, C channels, H/W image size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

FILL = -1.0  # value of shifted-in borders and cut-out squares, in [-1, 1]


def translation(x: torch.Tensor, rng: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size in each direction, filling with FILL."""
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if sy == 0 and sx == 0:
        return x
    dy = torch.randint(-sy, sy + 1, (b, 1, 1), generator=rng).to(x.device)
    dx = torch.randint(-sx, sx + 1, (b, 1, 1), generator=rng).to(x.device)
    # Read output pixel (i, j) from input pixel (i - dy, j - dx) of the padded image.
    padded = F.pad(x, (sx, sx, sy, sy), value=FILL)  # (B, C, H + 2sy, W + 2sx)
    rows = torch.arange(h, device=x.device).view(1, h, 1) - dy + sy  # (B, H, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w) - dx + sx  # (B, 1, W)
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, rng: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Fill one square of ``ratio`` times the image size per image, at a random place."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # Square centres anywhere in the image; the square may hang over the border.
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), generator=rng).to(x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), generator=rng).to(x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (
        (rows >= cy - ch // 2) & (rows < cy - ch // 2 + ch)
        & (cols >= cx - cw // 2) & (cols < cx - cw // 2 + cw)
    )  # (B, H, W)
    return torch.where(inside.unsqueeze(1), torch.full_like(x, FILL), x)


OPS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "translation": translation,
    "cutout": cutout,
}


def diff_augment(x: torch.Tensor, policy: Sequence[str], rng: torch.Generator) -> torch.Tensor:
    """Apply the named ops in order; an empty policy returns ``x`` unchanged."""
    for name in policy:
        if name not in OPS:
            raise ValueError(f"unknown DiffAugment op {name!r}; expected one of {sorted(OPS)}")
        x = OPS[name](x, rng)
    return x

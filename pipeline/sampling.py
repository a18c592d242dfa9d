"""Saving, loading and sampling trained generators: what the stages after train_gan need.

Kept apart from the training loop so that stages which only sample (synthesize, evaluate_gan,
report) do not depend on the training code.

Shape letters: N images, C channels, H/W image size, Z latent size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.io import write_atomic
from pipeline.nets import Generator


def save_generator(path: str | Path, gen: Generator, meta: dict[str, Any]) -> None:
    """Save the generator's weights with everything needed to rebuild it, atomically."""
    arch = {
        "latent_dim": gen.latent_dim,
        "num_classes": gen.num_classes,
        "channels": gen.body[-2].out_channels,
        "image_size": gen.base * 4,
        "width": gen.body[-2].in_channels,
    }
    payload = {"state_dict": gen.state_dict(), "arch": arch, "meta": meta}
    write_atomic(path, lambda tmp: torch.save(payload, tmp))


def load_generator(path: str | Path, device: torch.device) -> tuple[Generator, dict[str, Any]]:
    """Rebuild a saved generator in eval mode; return it with its saved metadata."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"generator checkpoint not found: {path}; run train_gan first")
    payload = torch.load(path, map_location=device, weights_only=True)
    gen = Generator(**payload["arch"]).to(device)
    gen.load_state_dict(payload["state_dict"])
    return gen.eval(), payload["meta"]


@torch.no_grad()
def generate(
    gen: Generator, labels: np.ndarray, seed: int, device: torch.device, batch_size: int = 256
) -> np.ndarray:
    """Generate one image per label; float32 [0, 1] (N, C, H, W)."""
    rng = torch.Generator(device="cpu").manual_seed(seed)
    out = []
    for start in range(0, len(labels), batch_size):
        y = torch.as_tensor(labels[start : start + batch_size], dtype=torch.long, device=device)
        z = torch.randn(len(y), gen.latent_dim, generator=rng).to(device)  # (B, Z)
        out.append(((gen(z, y).float() + 1) / 2).clamp(0, 1).cpu().numpy())
    if not out:
        return np.zeros((0, gen.body[-2].out_channels, gen.base * 4, gen.base * 4), np.float32)
    return np.concatenate(out).astype(np.float32)

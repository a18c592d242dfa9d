"""One training loop for every class-conditional GAN kind.

A kind is a number of discriminators and a pair of loss functions over their outputs; the loop
samples a real batch and a batch of uniform class labels, takes one discriminator step and one
generator step, and records the loss terms. Mixed precision (bfloat16 autocast) is used on CUDA.

Shape letters: B batch, C channels, H/W image size, K classes, Z latent size, N images.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pipeline import acgan
from pipeline.io import write_atomic
from pipeline.nets import Discriminator, Generator, init_weights

log = logging.getLogger(__name__)

LossFn = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass(frozen=True)
class TrainConfig:
    """Everything the loop needs, in plain values (built from ``params.yaml`` by the stage)."""

    kind: str
    latent_dim: int
    width: int
    steps: int
    batch_size: int
    lr_g: float
    lr_d: float
    beta1: float
    beta2: float
    class_weight: float
    log_every: int
    mixed_precision: bool
    seed: int


@dataclass(frozen=True)
class GanKind:
    """A GAN kind: how many discriminators it trains and its two losses."""

    num_discriminators: int
    d_loss: Callable[[list, list, torch.Tensor, torch.Tensor, TrainConfig], tuple]
    g_loss: Callable[[list, torch.Tensor, TrainConfig], tuple]


KINDS: dict[str, GanKind] = {
    "acgan": GanKind(
        num_discriminators=1,
        d_loss=lambda real, fake, y_r, y_f, cfg: acgan.d_loss(
            real, fake, y_r, y_f, cfg.class_weight
        ),
        g_loss=lambda fake, y_f, cfg: acgan.g_loss(fake, y_f, cfg.class_weight),
    ),
}


def get_kind(name: str) -> GanKind:
    """Look up a GAN kind by name; an unknown name lists the valid ones."""
    if name not in KINDS:
        raise ValueError(f"unknown GAN kind {name!r}; expected one of {sorted(KINDS)}")
    return KINDS[name]


@dataclass
class GanResult:
    generator: Generator
    history: list[dict[str, float]]  # one row per logged step


def build_models(
    cfg: TrainConfig, num_classes: int, channels: int, image_size: int
) -> tuple[Generator, list[Discriminator]]:
    """Create the generator and the kind's discriminators, DCGAN-initialised."""
    gen = Generator(cfg.latent_dim, num_classes, channels, image_size, cfg.width)
    discs = [
        Discriminator(num_classes, channels, image_size, cfg.width)
        for _ in range(get_kind(cfg.kind).num_discriminators)
    ]
    for net in [gen, *discs]:
        net.apply(init_weights)
    return gen, discs


def train_gan(
    imgs: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    cfg: TrainConfig,
    device: torch.device,
) -> GanResult:
    """Train a class-conditional GAN on float32 [0, 1] images (N, C, H, W) with int labels (N,)."""
    kind = get_kind(cfg.kind)
    _check_inputs(imgs, labels, num_classes)
    torch.manual_seed(cfg.seed)
    rng = torch.Generator(device="cpu").manual_seed(cfg.seed)

    # Keep the whole (small) training set on the device in the generator's range [-1, 1].
    real_all = torch.from_numpy(imgs).to(device) * 2 - 1  # (N, C, H, W) float32 [-1, 1]
    labels_all = torch.from_numpy(labels).long().to(device)  # (N,)
    gen, discs = build_models(cfg, num_classes, imgs.shape[1], imgs.shape[2])
    gen.to(device).train()
    for d in discs:
        d.to(device).train()

    # Adam as in DCGAN; one optimiser for all discriminators of the kind.
    betas = (cfg.beta1, cfg.beta2)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr_g, betas=betas)
    d_params = [p for d in discs for p in d.parameters()]
    opt_d = torch.optim.Adam(d_params, lr=cfg.lr_d, betas=betas)
    autocast = _autocast(device, cfg.mixed_precision)

    history: list[dict[str, float]] = []
    start = time.perf_counter()
    bar = tqdm(range(1, cfg.steps + 1), desc=f"train {cfg.kind}", unit="step")
    for step in bar:
        # Sample a real batch and a batch of uniformly drawn classes to generate.
        idx = torch.randint(len(real_all), (cfg.batch_size,), generator=rng).to(device)
        real, y_real = real_all[idx], labels_all[idx]  # (B, C, H, W), (B,)
        z = torch.randn(cfg.batch_size, cfg.latent_dim, generator=rng).to(device)  # (B, Z)
        y_fake = torch.randint(num_classes, (cfg.batch_size,), generator=rng).to(device)

        # Discriminator step on detached fakes.
        with autocast:
            fake = gen(z, y_fake)  # (B, C, H, W) [-1, 1]
            out_real = [d(real) for d in discs]
            out_fake = [d(fake.detach()) for d in discs]
            loss_d, parts_d = kind.d_loss(out_real, out_fake, y_real, y_fake, cfg)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        # Generator step through the updated discriminators.
        with autocast:
            loss_g, parts_g = kind.g_loss([d(fake) for d in discs], y_fake, cfg)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

        # Log sparsely: .item() forces a device sync.
        if step % cfg.log_every == 0 or step == cfg.steps:
            row = _history_row(step, loss_d, loss_g, parts_d | parts_g, start)
            history.append(row)
            bar.set_postfix(d=f"{row['loss_d']:.3f}", g=f"{row['loss_g']:.3f}")
    gen.eval()
    return GanResult(generator=gen, history=history)


def _check_inputs(imgs: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
    if imgs.ndim != 4 or imgs.dtype != np.float32:
        raise ValueError(f"expected float32 images (N, C, H, W), got {imgs.dtype} {imgs.shape}")
    if len(imgs) != len(labels):
        raise ValueError(f"expected one label per image, got {len(labels)} for {len(imgs)}")
    missing = sorted(set(range(num_classes)) - set(np.unique(labels).tolist()))
    if missing:
        raise ValueError(
            f"classes {missing} have no training image; a conditional GAN needs every class"
        )


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


def _history_row(
    step: int, loss_d: torch.Tensor, loss_g: torch.Tensor, parts: dict, start: float
) -> dict[str, float]:
    row = {"step": step, "loss_d": loss_d.item(), "loss_g": loss_g.item()}
    row |= {name: value.item() for name, value in parts.items()}
    row["seconds"] = round(time.perf_counter() - start, 3)
    for name, value in row.items():
        if not np.isfinite(value):
            raise FloatingPointError(
                f"non-finite loss at step {step}: {name} = {value}; lower gan.lr_d / gan.lr_g"
            )
    return row


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


def train_config_dict(cfg: TrainConfig) -> dict[str, Any]:
    return asdict(cfg)


def config_from_params(gan: Any, run_name: str, seed: int) -> TrainConfig:
    """Build the loop's config for one entry of ``gan.runs`` (``gan`` is a GanParams)."""
    if run_name not in gan.runs:
        raise ValueError(f"unknown GAN run {run_name!r}; gan.runs defines {sorted(gan.runs)}")
    run = gan.runs[run_name]
    shared = gan.model_dump(exclude={"runs"})
    return TrainConfig(kind=run.kind, seed=seed, **shared)

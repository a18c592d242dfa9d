"""Benchmark: GAN training steps per second, our trainer against a plain ACGAN loop.

Both train the same networks (pipeline.nets, DCGAN init) on the same random 32x32 batch data with
the same batch size and Adam settings; the plain loop is the textbook one written out below.
Prints steps/s of each and the ratio ours / plain (>= 1 means ours is not slower).

    PYTHONPATH=. python bench/bench_gan_train.py [--steps 300] [--width 12] [--batch 32]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

os.environ.setdefault("TQDM_DISABLE", "1")

from pipeline.gan_train import TrainConfig, build_models, train_gan  # noqa: E402
from pipeline.runtime import select_device  # noqa: E402


def plain_acgan(imgs: np.ndarray, labels: np.ndarray, cfg: TrainConfig, device) -> None:
    """The straightforward ACGAN loop: sample, D step, G step, no extras."""
    torch.manual_seed(cfg.seed)
    gen, (disc,) = build_models(cfg, 3, 1, imgs.shape[-1])
    gen.to(device).train()
    disc.to(device).train()
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    real_all = torch.from_numpy(imgs).to(device) * 2 - 1
    labels_all = torch.from_numpy(labels).long().to(device)
    for _ in range(cfg.steps):
        idx = torch.randint(len(real_all), (cfg.batch_size,), device=device)
        real, y_real = real_all[idx], labels_all[idx]
        z = torch.randn(cfg.batch_size, cfg.latent_dim, device=device)
        y_fake = torch.randint(3, (cfg.batch_size,), device=device)
        fake = gen(z, y_fake)

        src_r, cls_r = disc(real)
        src_f, cls_f = disc(fake.detach())
        loss_d = (
            F.binary_cross_entropy_with_logits(src_r, torch.ones_like(src_r))
            + F.binary_cross_entropy_with_logits(src_f, torch.zeros_like(src_f))
            + F.cross_entropy(cls_r, y_real)
            + F.cross_entropy(cls_f, y_fake)
        )
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()

        src_f, cls_f = disc(fake)
        loss_g = F.binary_cross_entropy_with_logits(
            src_f, torch.ones_like(src_f)
        ) + F.cross_entropy(cls_f, y_fake)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--width", type=int, default=12)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    device = select_device(cpu_threads=1)

    rng = np.random.default_rng(0)
    imgs = rng.random((2000, 1, 32, 32), dtype=np.float32)
    labels = rng.integers(0, 3, 2000)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = dict(
        kind="acgan",
        latent_dim=64,
        width=args.width,
        steps=args.steps,
        batch_size=args.batch,
        lr_g=2e-4,
        lr_d=2e-4,
        beta1=0.5,
        beta2=0.999,
        class_weight=1.0,
        log_every=50,
        mixed_precision=True,
        seed=0,
    )
    cfg = TrainConfig(**{k: v for k, v in values.items() if k in fields})

    # Alternate the two so that drifting machine load hits both alike; keep the best of each.
    best = {"ours": float("inf"), "plain": float("inf")}
    for _ in range(args.repeats):
        for name, fn in (("plain", plain_acgan), ("ours", train_gan)):
            start = time.perf_counter()
            if name == "ours":
                fn(imgs, labels, 3, cfg, device)
            else:
                fn(imgs, labels, cfg, device)
            best[name] = min(best[name], time.perf_counter() - start)
    rates = {name: args.steps / seconds for name, seconds in best.items()}
    print(f"device {device}, width {args.width}, batch {args.batch}, {args.steps} steps")
    print(f"plain ACGAN loop: {rates['plain']:.2f} steps/s")
    print(f"our trainer:      {rates['ours']:.2f} steps/s")
    print(f"ratio ours/plain: {rates['ours'] / rates['plain']:.3f}")


if __name__ == "__main__":
    main()

"""One training loop for every class-conditional GAN kind.

A kind is a number of discriminators and a pair of loss functions over their outputs (ACGAN:
one discriminator; D2GAN: two). Each step samples a real batch and a batch of uniform class
labels, takes one discriminator step and one generator step, and records the loss terms.

For small data sets the loop adds, by params:
- DiffAugment (``pipeline.diffaugment``) on real and generated images before every
  discriminator call, in both steps;
- prior-knowledge constraints (``pipeline.constraints``) added to G's loss;
- an exponential moving average (EMA) of G's weights, which is the generator that samples;
- collapse-aware checkpoint selection: every ``select_every`` steps the sampling generator
  makes ``select_samples`` images per class from fixed noise, and their Frechet distance to
  the real TRAINING images of the class, in the frozen reference classifier's feature space,
  is averaged over classes; the generator with the lowest score is kept, not the last one
  (published ACGAN runs reach their best FID and then degrade as G collapses). Val and test
  images are never used here. The score does not punish memorisation (a copy of the training
  set scores 0); the evaluate_gan stage's memorisation check does;
- a finite-loss check every step: a non-finite term stops training naming the step and the
  term, or, with ``on_nonfinite: rollback``, restores the last snapshot (taken every
  ``select_every`` steps) and goes on with fresh batches, at most ``max_rollbacks`` times.

Mixed precision (bfloat16 autocast) is used on CUDA; losses are computed in float32.

Shape letters: B batch, C channels, H/W image size, K classes, Z latent size, N images,
F features.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pipeline import acgan, d2gan
from pipeline.constraints import ConstraintSet
from pipeline.diffaugment import diff_augment
from pipeline.gan_metrics import fid
from pipeline.nets import Discriminator, Generator, init_weights

log = logging.getLogger(__name__)

# Maps float32 [0, 1] images (B, C, H, W) to features (B, F), e.g. the reference classifier's.
FeatureFn = Callable[[torch.Tensor], torch.Tensor]


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
    d2gan_alpha: float = 1.0
    d2gan_beta: float = 1.0
    diffaugment: tuple[str, ...] = ()
    ema_decay: float = 0.0  # 0: sample with G itself
    select_every: int = 250
    select_samples: int = 100
    on_nonfinite: str = "stop"  # stop | rollback
    max_rollbacks: int = 3
    constraints: bool = False


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
    "d2gan": GanKind(
        num_discriminators=2,
        d_loss=lambda real, fake, y_r, y_f, cfg: d2gan.d_loss(
            real, fake, y_r, y_f, cfg.d2gan_alpha, cfg.d2gan_beta, cfg.class_weight
        ),
        g_loss=lambda fake, y_f, cfg: d2gan.g_loss(fake, y_f, cfg.d2gan_beta, cfg.class_weight),
    ),
}


def get_kind(name: str) -> GanKind:
    """Look up a GAN kind by name; an unknown name lists the valid ones."""
    if name not in KINDS:
        raise ValueError(f"unknown GAN kind {name!r}; expected one of {sorted(KINDS)}")
    return KINDS[name]


@dataclass
class GanResult:
    generator: Generator  # the selected sampling generator (EMA when on), eval mode
    history: list[dict[str, float]]  # one row per logged step
    selection: list[dict[str, float]] = field(default_factory=list)  # step, score per check
    best_step: int = 0  # step of the kept generator
    rollbacks: list[dict[str, Any]] = field(default_factory=list)


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


class Ema:
    """Exponential moving average of a generator's weights; its copy is the sampler.

    The decay warms up as min(decay, (1 + t) / (10 + t)) so that the random initial weights
    do not linger in the average of a short run. Buffers (batch-norm statistics) are copied.
    """

    def __init__(self, gen: Generator, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(gen).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, gen: Generator) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for p_avg, p in zip(self.model.parameters(), gen.parameters(), strict=True):
            p_avg.lerp_(p.detach(), 1.0 - d)
        for b_avg, b in zip(self.model.buffers(), gen.buffers(), strict=True):
            b_avg.copy_(b)


class Selector:
    """Class-averaged Frechet distance of generated to real training images, in features.

    Lower is better. The noise is fixed, so successive checkpoints are compared on the same
    draws; real features are computed once.
    """

    def __init__(
        self,
        features: FeatureFn,
        real: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        samples: int,
        latent_dim: int,
        seed: int,
        max_real: int = 2000,
    ) -> None:
        self.features = features
        rng = torch.Generator(device="cpu").manual_seed(seed)
        self.real_feats = []
        for k in range(num_classes):
            idx = torch.nonzero(labels == k).flatten().cpu()
            idx = idx[torch.randperm(len(idx), generator=rng)[:max_real]]
            self.real_feats.append(self._embed(real[idx.to(real.device)]))
        self.labels = torch.arange(num_classes).repeat_interleave(samples).to(real.device)
        self.z = torch.randn(len(self.labels), latent_dim, generator=rng).to(real.device)

    @torch.no_grad()
    def _embed(self, imgs01: torch.Tensor) -> np.ndarray:
        out = [self.features(imgs01[s : s + 512]).float().cpu() for s in range(0, len(imgs01), 512)]
        return torch.cat(out).double().numpy()

    @torch.no_grad()
    def score(self, gen: Generator) -> float:
        was_training = gen.training
        gen.eval()
        fake = torch.cat([
            (gen(self.z[s : s + 512], self.labels[s : s + 512]).float() + 1) / 2
            for s in range(0, len(self.z), 512)
        ])
        gen.train(was_training)
        feats = self._embed(fake.clamp(0, 1))
        y = self.labels.cpu().numpy()
        return float(np.mean([fid(r, feats[y == k]) for k, r in enumerate(self.real_feats)]))


def train_gan(
    imgs: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    cfg: TrainConfig,
    device: torch.device,
    constraints: ConstraintSet | None = None,
    select_features: FeatureFn | None = None,
) -> GanResult:
    """Train a class-conditional GAN on float32 [0, 1] images (N, C, H, W) with int labels (N,).

    Args:
        constraints: fitted constraints added to G's loss (used only when ``cfg.constraints``).
        select_features: features for checkpoint selection; None keeps the last generator.
    """
    kind = get_kind(cfg.kind)
    _check_inputs(imgs, labels, num_classes)
    if cfg.constraints and not constraints:
        raise ValueError("cfg.constraints is set but no fitted constraints were given")
    torch.manual_seed(cfg.seed)
    rng = torch.Generator(device="cpu").manual_seed(cfg.seed)
    aug_rng = torch.Generator(device="cpu").manual_seed(cfg.seed + 1)

    # Keep the whole (small) training set on the device in the generator's range [-1, 1].
    real_all = torch.from_numpy(imgs).to(device) * 2 - 1  # (N, C, H, W) float32 [-1, 1]
    labels_all = torch.from_numpy(labels).long().to(device)  # (N,)
    gen, discs = build_models(cfg, num_classes, imgs.shape[1], imgs.shape[2])
    gen.to(device).train()
    for d in discs:
        d.to(device).train()
    ema = Ema(gen, cfg.ema_decay) if cfg.ema_decay > 0 else None
    selector = None
    if select_features is not None:
        selector = Selector(
            select_features, (real_all + 1) / 2, labels_all, num_classes,
            cfg.select_samples, cfg.latent_dim, cfg.seed + 2,
        )

    # Adam as in DCGAN; one optimiser for all discriminators of the kind.
    betas = (cfg.beta1, cfg.beta2)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr_g, betas=betas)
    d_params = [p for d in discs for p in d.parameters()]
    opt_d = torch.optim.Adam(d_params, lr=cfg.lr_d, betas=betas)
    autocast = _autocast(device, cfg.mixed_precision)
    use_constraints = cfg.constraints and constraints is not None

    def augment(x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, cfg.diffaugment, aug_rng)

    def sampler() -> Generator:
        return ema.model if ema is not None else gen

    nets = {"gen": gen, "opt_g": opt_g, "opt_d": opt_d, **{f"d{i}": d for i, d in enumerate(discs)}}
    if ema is not None:
        nets["ema"] = ema.model
    snapshot = _Snapshot.take(nets, step=0, ema=ema)
    best = {"score": float("inf"), "step": 0, "state": None}

    history: list[dict[str, float]] = []
    selection: list[dict[str, float]] = []
    rollbacks: list[dict[str, Any]] = []
    start = time.perf_counter()
    bar = tqdm(total=cfg.steps, desc=f"train {cfg.kind}", unit="step")
    step = 0
    while step < cfg.steps:
        step += 1
        # Sample a real batch and a batch of uniformly drawn classes to generate.
        idx = torch.randint(len(real_all), (cfg.batch_size,), generator=rng).to(device)
        real, y_real = real_all[idx], labels_all[idx]  # (B, C, H, W), (B,)
        z = torch.randn(cfg.batch_size, cfg.latent_dim, generator=rng).to(device)  # (B, Z)
        y_fake = torch.randint(num_classes, (cfg.batch_size,), generator=rng).to(device)

        # Discriminator step on detached fakes.
        with autocast:
            fake = gen(z, y_fake)  # (B, C, H, W) [-1, 1]
            real_aug, fake_aug = augment(real), augment(fake.detach())
            out_real = [d(real_aug) for d in discs]
            out_fake = [d(fake_aug) for d in discs]
            loss_d, parts_d = kind.d_loss(out_real, out_fake, y_real, y_fake, cfg)
        bad = _first_nonfinite({"loss_d": loss_d, **parts_d})
        if bad is None:
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

            # Generator step through the updated discriminators.
            with autocast:
                loss_g, parts_g = kind.g_loss([d(augment(fake)) for d in discs], y_fake, cfg)
            if use_constraints:
                loss_c, parts_c = constraints.loss((fake.float() + 1) / 2, y_fake)
                loss_g = loss_g + loss_c
                parts_g = parts_g | parts_c
            bad = _first_nonfinite({"loss_g": loss_g, **parts_g})
        if bad is not None:
            if cfg.on_nonfinite != "rollback" or len(rollbacks) >= cfg.max_rollbacks:
                raise FloatingPointError(
                    f"non-finite loss at step {step}: {bad[0]} = {bad[1]}; lower gan.lr_d / "
                    f"gan.lr_g, or set gan.on_nonfinite: rollback"
                    + (f" (rolled back {len(rollbacks)} times already)" if rollbacks else "")
                )
            log.warning(
                "non-finite %s = %s at step %d; rolling back to step %d",
                bad[0], bad[1], step, snapshot.step,
            )
            rollbacks.append({"step": step, "term": bad[0], "restored_to": snapshot.step})
            snapshot.restore(nets, ema)
            step = snapshot.step
            history = [row for row in history if row["step"] <= step]
            selection = [row for row in selection if row["step"] <= step]
            bar.n = step
            bar.refresh()
            continue
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if ema is not None:
            ema.update(gen)
        bar.update(1)

        # Log sparsely: .item() forces a device sync.
        if step % cfg.log_every == 0 or step == cfg.steps:
            row = _history_row(step, loss_d, loss_g, parts_d | parts_g, start)
            history.append(row)
            bar.set_postfix(d=f"{row['loss_d']:.3f}", g=f"{row['loss_g']:.3f}")
        if step % cfg.select_every == 0 or step == cfg.steps:
            snapshot = _Snapshot.take(nets, step, ema)
            if selector is not None:
                score = selector.score(sampler())
                selection.append({"step": step, "score": score})
                if score < best["score"]:
                    best = {"score": score, "step": step, "state": _state(sampler())}
                log.info("step %d: selection score %.4f (best %.4f at step %d)",
                         step, score, best["score"], best["step"])
    bar.close()

    chosen = sampler()
    if best["state"] is not None:
        chosen.load_state_dict(best["state"])
    else:
        best["step"] = cfg.steps
    chosen.eval()
    return GanResult(chosen, history, selection, best["step"], rollbacks)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@dataclass
class _Snapshot:
    """In-memory copy of networks, optimisers and EMA counter at one step, for rollback."""

    step: int
    states: dict[str, Any]
    ema_updates: int

    @classmethod
    def take(cls, nets: dict[str, Any], step: int, ema: Ema | None) -> _Snapshot:
        states = {name: copy.deepcopy(obj.state_dict()) for name, obj in nets.items()}
        return cls(step, states, ema.updates if ema is not None else 0)

    def restore(self, nets: dict[str, Any], ema: Ema | None) -> None:
        for name, obj in nets.items():
            obj.load_state_dict(copy.deepcopy(self.states[name]))
        if ema is not None:
            ema.updates = self.ema_updates


def _first_nonfinite(terms: dict[str, torch.Tensor]) -> tuple[str, float] | None:
    """The first non-finite term as (name, value), or None; one device sync for all terms."""
    values = torch.stack([t.detach().float().reshape(()) for t in terms.values()])
    if bool(torch.isfinite(values).all()):
        return None
    for (name, _), value in zip(terms.items(), values.tolist(), strict=True):
        if not np.isfinite(value):
            return name, value
    return None


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
    return row


def config_from_params(gan: Any, run_name: str, seed: int) -> TrainConfig:
    """Build the loop's config for one entry of ``gan.runs`` (``gan`` is a GanParams)."""
    if run_name not in gan.runs:
        raise ValueError(f"unknown GAN run {run_name!r}; gan.runs defines {sorted(gan.runs)}")
    run = gan.runs[run_name]
    shared = gan.model_dump(exclude={"runs"})
    shared["diffaugment"] = tuple(shared["diffaugment"])
    return TrainConfig(kind=run.kind, seed=seed, constraints=run.constraints, **shared)

"""Seeding, device choice and logging set-up shared by the stage scripts."""

from __future__ import annotations

import logging
import random

import numpy as np
import torch

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> torch.Generator:
    """Seed ``random``, NumPy and torch; return a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def select_device(prefer_gpu: bool = True) -> torch.device:
    """CUDA when present and wanted, else the CPU (with flush-to-zero for denormals)."""
    if prefer_gpu and torch.cuda.is_available():
        return torch.device("cuda")
    # Denormal floats slowed small-CNN training five-fold on these CPUs.
    torch.set_flush_denormal(True)
    return torch.device("cpu")


def configure_logging(level: int = logging.INFO) -> None:
    """Send log records to stderr with timestamps; called by stage scripts only."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )

"""Seeding, device choice and logging set-up shared by the stage scripts."""

from __future__ import annotations

import logging
import random

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from pipeline.config import Params, ParamsError, load_params

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> torch.Generator:
    """Seed ``random``, NumPy and torch; return a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def select_device(prefer_gpu: bool = True, cpu_threads: int = 0) -> torch.device:
    """CUDA when present and wanted, else the CPU (with flush-to-zero for denormals).

    ``cpu_threads`` > 0 fixes torch's intra-op thread count (0 keeps torch's default). On a
    small shared machine one thread beat two by ten-fold for our small networks: the threads
    spin-wait for each other whenever another process holds a core.
    """
    if cpu_threads > 0:
        torch.set_num_threads(cpu_threads)
        threadpool_limits(cpu_threads)  # NumPy's BLAS too: threaded FID was 130x slower here
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


def start_stage(params_path: str, name: str) -> tuple[Params, torch.device]:
    """Common start of every stage: logging, validated params, seeds and the device."""
    configure_logging()
    try:
        params = load_params(params_path)
    except ParamsError as exc:
        # The message names the key and the fix; a traceback would only bury it. The exit
        # status stays non-zero, so DVC sees the stage fail.
        log.error("stage %s: %s", name, exc)
        raise SystemExit(2) from None
    seed_everything(params.seed)
    device = select_device(params.runtime.prefer_gpu, params.runtime.cpu_threads)
    log.info("stage %s on %s (seed %d)", name, device, params.seed)
    return params, device

"""Benchmark: modes of the 8-Gaussian ring covered by D2GAN and by a plain GAN, same budget.

The D2GAN paper's 2-D check (see pipeline/ring.py): a mode is covered when at least 20 of
2,000 samples lie within 3 std of its centre. Prints one row per seed and kind, and the time
each took. Run from the repository root: ``PYTHONPATH=$PWD python bench/bench_ring_modes.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # one table, no progress bars

import torch  # noqa: E402

from pipeline.ring import RingConfig, train_ring  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=RingConfig.steps)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)

    print("| kind | seed | modes covered (of 8) | samples per mode | share near a mode | s |")
    print("|---|---|---|---|---|---|")
    for kind in ("d2gan", "gan"):
        for seed in args.seeds:
            cfg = dataclasses.replace(RingConfig(), steps=args.steps, seed=seed)
            start = time.perf_counter()
            res = train_ring(kind, cfg)
            seconds = time.perf_counter() - start
            counts = " ".join(map(str, res.counts.tolist()))
            print(
                f"| {kind} | {seed} | {res.covered} | {counts} | {res.high_quality:.2f} "
                f"| {seconds:.1f} |"
            )


if __name__ == "__main__":
    main()

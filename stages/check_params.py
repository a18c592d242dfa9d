"""Stage check_params: validate the whole params file whenever any of its keys changes.

Every stage validates params.yaml when it runs, but a typo in a key that no stage tracks would
change nothing DVC watches, so `dvc repro` would run nothing and say nothing. This stage tracks
every key and fails, naming the dotted key, before the mistake can pass unnoticed.
"""

from __future__ import annotations

import argparse
import logging

from pipeline.runtime import start_stage

log = logging.getLogger("stages.check_params")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params, _ = start_stage(args.params, "check_params")
    log.info(
        "%s is valid: %d GAN runs %s, %d audit arms, %d constraints",
        args.params, len(params.gan.runs), sorted(params.gan.runs), len(params.audit.arms),
        len(params.constraints),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

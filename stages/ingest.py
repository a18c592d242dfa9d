"""Stage ingest: build the prepared train/val/test splits and a summary of their counts."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipeline.config import Params
from pipeline.io import Split, save_split, write_json
from pipeline.mni import PatchSpec, build_splits, load_mni152
from pipeline.runtime import start_stage

log = logging.getLogger("stages.ingest")


def mni152_splits(params: Params) -> dict[str, Split]:
    """The embedded default: labelled patches of the MNI152 template, split by slab."""
    mni = params.data.mni
    spec = PatchSpec(
        mni.patch_size,
        mni.slice_step,
        mni.stride,
        mni.slab_slices,
        mni.guard_slices,
        mni.label_threshold,
    )
    data = params.data
    return build_splits(
        load_mni152(),
        spec,
        data.val_fraction,
        data.test_fraction,
        data.minority_train_cap,
        params.seed,
    )


SOURCES = {"mni152": mni152_splits}


def summarize(splits: dict[str, Split]) -> dict:
    """Counts per class and split, and the number of groups (patients or slabs) per split."""
    names = next(iter(splits.values())).class_names
    return {
        "classes": list(names),
        "image_shape": list(next(iter(splits.values())).images.shape[1:]),
        "splits": {
            name: {
                "n": len(s.labels),
                "groups": len(set(s.groups.tolist())),
                "counts": dict(zip(names, s.counts(), strict=True)),
            }
            for name, s in splits.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out-dir", type=Path, default=Path("data/prepared"))
    args = parser.parse_args(argv)
    params, _ = start_stage(args.params, "ingest")

    splits = SOURCES[params.data.source](params)
    for name, split in splits.items():
        save_split(args.out_dir / f"{name}.npz", split)
        log.info("%s: %d images, counts %s", name, len(split.labels), split.counts())
    write_json(args.out_dir / "summary.json", summarize(splits))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

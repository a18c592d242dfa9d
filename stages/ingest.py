"""Stage ingest: build the prepared train/val/test splits and a summary of their counts.

``data.source`` picks the reader: the embedded MNI152 patches or a folder of the user's files
(whose unreadable files are listed in ``ingest_report.json`` beside the splits).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipeline.config import Params
from pipeline.folder_source import build_folder_splits
from pipeline.io import Split, save_split, write_json
from pipeline.mni import PatchSpec, build_splits, load_mni152
from pipeline.patient_split import check_key_outside
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


def folder_splits(params: Params, out_dir: Path) -> tuple[dict[str, Split], dict]:
    """Users' own files (DICOM, NIfTI, PNG/TIFF, .npy, MedMNIST), split by patient."""
    check_key_outside(params.data.folder.key_file, [out_dir, params.data.folder.root])
    data = params.data
    return build_folder_splits(data.folder, data.val_fraction, data.test_fraction, params.seed)


SOURCES = {
    "mni152": lambda params, out_dir: (mni152_splits(params), None),
    "folder": folder_splits,
}


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

    splits, report = SOURCES[params.data.source](params, args.out_dir)
    for name, split in splits.items():
        save_split(args.out_dir / f"{name}.npz", split)
        log.info("%s: %d images, counts %s", name, len(split.labels), split.counts())
    write_json(args.out_dir / "summary.json", summarize(splits))
    if report is not None:
        write_json(args.out_dir / "ingest_report.json", report)
        log.info("set aside %d unreadable files; see ingest_report.json", len(report["set_aside"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

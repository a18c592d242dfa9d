"""Benchmark: Fashion-MNIST in DeepSMOTE's long-tail protocol, through the same pipeline.

One command draws (or reloads) the protocol split, writes it as a MedMNIST-style file that the
folder ingest reads, writes the benchmark's params into a work folder, and runs every stage of
``dvc.yaml`` there, in its order and with its own command lines. Then it scores the same test
predictions on the imbalanced test set (a saved subset of the full balanced 10k test set, which
is the prepared test split), scores each generator against held-out real images, and writes
``results.md`` / ``results.json`` with the published rows beside ours.

    apt-get install dataset-fashion-mnist      # the IDX files, once
    PYTHONPATH=. python bench/bench_fashion_mnist.py [--quick]

``--quick`` applies the ``quick:`` overrides of bench/fashion_mnist/bench.yaml (minutes, not an
hour) and writes its results into the work folder, never over the committed ones.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import logging
import os
import platform
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from pipeline.config import FolderParams, ParamsError, params_from_dict  # noqa: E402
from pipeline.fashion_mnist import (  # noqa: E402
    LongTailSplit,
    check_split_matches,
    draw_longtail_split,
    heldout_pool,
    load_fashion_mnist,
    load_longtail_split,
    save_longtail_split,
    source_digest,
    write_medmnist_npz,
)
from pipeline.folder_source import intensity_policy  # noqa: E402
from pipeline.io import (  # noqa: E402
    Split,
    image_hashes,
    load_split,
    save_split,
    write_atomic,
    write_json,
    write_npz,
)
from pipeline.longtail import (  # noqa: E402
    gan_table,
    longtail_gains,
    longtail_intervals,
    longtail_table,
)
from pipeline.readers import medmnist_to_raw, prepare_image  # noqa: E402
from pipeline.runtime import configure_logging  # noqa: E402

log = logging.getLogger("bench.fashion_mnist")
ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------
# The benchmark's own settings


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Protocol(_Section):
    seed: Annotated[int, Field(ge=0)]
    train_counts: Annotated[list[Annotated[int, Field(ge=2)]], Field(min_length=2)]
    test_counts: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=2)]
    val_fraction: Annotated[float, Field(gt=0.0, lt=0.5)]
    gan_reference_per_class: Annotated[int, Field(ge=10)]


class Published(_Section):
    method: str
    acsa: float
    gm: float
    f1: float


class BenchConfig(_Section):
    data_root: str
    split_file: str
    params_file: str
    work_dir: str
    results_dir: str
    protocol: Protocol
    quick: dict[str, Any]
    quick_gan_reference_per_class: Annotated[int, Field(ge=10)]
    published: list[Published]
    published_source: str


def load_config(path: Path) -> BenchConfig:
    """Read and validate bench.yaml; a bad key is named with its value."""
    try:
        return BenchConfig.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as exc:
        lines = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise ValueError(f"invalid {path}:\n  " + "\n  ".join(lines)) from None


def set_dotted(raw: dict, dotted: str, value: Any) -> None:
    """raw['a']['b'] = value for 'a.b'; a key the params do not have is an error."""
    *parents, leaf = dotted.split(".")
    node = raw
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or leaf not in node:
        raise ValueError(f"quick override {dotted!r}: no such params key; fix bench.yaml")
    node[leaf] = value


# --------------------------------------------------------------------------------------------
# Data


def load_or_draw_split(cfg: BenchConfig, data: dict) -> LongTailSplit:
    """The saved protocol split when it exists (checked against the data and the protocol),
    else a fresh draw from protocol.seed, saved for the next run."""
    p, path = cfg.protocol, ROOT / cfg.split_file
    digest = source_digest(data)
    if not path.is_file():
        split = draw_longtail_split(
            data["train"][1], data["test"][1], p.train_counts, p.test_counts,
            p.val_fraction, p.seed, digest,
        )  # fmt: skip
        save_longtail_split(path, split)
        log.info("drew the protocol split (seed %d) into %s", p.seed, path)
        return split

    split = load_longtail_split(path)
    check_split_matches(split, digest, path)
    drawn_as = (split.seed, split.train_counts, split.test_counts, split.val_fraction)
    if drawn_as != (p.seed, p.train_counts, p.test_counts, p.val_fraction):
        raise ValueError(
            f"{path} was drawn with seed, counts and val fraction {drawn_as}, but bench.yaml's "
            f"protocol asks for {(p.seed, p.train_counts, p.test_counts, p.val_fraction)}; "
            f"delete {path} to redraw"
        )
    log.info("reloaded the protocol split from %s", path)
    return split


def write_gan_reference(path: Path, data: dict, idx: np.ndarray, folder: FolderParams) -> None:
    """Training-file images idx as a prepared split, through the ingest's own image steps."""
    policy = intensity_policy(folder)
    raws = medmnist_to_raw(data["train"][0][idx])
    prepared = [prepare_image(raw, policy, folder.target_size, folder.channels)[0] for raw in raws]
    imgs = np.stack(prepared).astype(np.float32)  # (N, 1, 28, 28) float32 [0, 1]
    groups = np.array([f"ref:{i}" for i in idx])
    names = tuple(folder.class_names)
    save_split(path, Split(imgs, data["train"][1][idx], groups, image_hashes(imgs), names))


def prepare_data(cfg: BenchConfig, work: Path, folder: FolderParams, per_class: int) -> dict:
    """Split, the ingest's MedMNIST file and the GAN reference split, under the work folder."""
    data = load_fashion_mnist(cfg.data_root)
    split = load_or_draw_split(cfg, data)
    write_medmnist_npz(work / folder.root / str(folder.medmnist_file), data, split)

    # Real images the generators are scored against: undrawn training-file images.
    ref_idx = heldout_pool(data["train"][1], split, per_class, cfg.protocol.seed)
    write_gan_reference(work / "data/gan_reference.npz", data, ref_idx, folder)
    return {"split": split, "test_images": data["test"][0], "test_labels": data["test"][1]}


# --------------------------------------------------------------------------------------------
# Stages


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def dvc_commands(runs: list[str]) -> list[tuple[str, list[str]]]:
    """(stage label, argv) of every dvc.yaml stage in file order, foreach expanded over runs."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out = []
    for name, spec in stages.items():
        if "foreach" in spec:
            if spec["foreach"] != "${gan.runs}":
                raise ValueError(f"dvc.yaml stage {name}: only foreach over ${{gan.runs}} is known")
            items = [(f"{name}@{run}", spec["do"]["cmd"].replace("${key}", run)) for run in runs]
        else:
            items = [(name, spec["cmd"])]
        for label, cmd in items:
            if "${" in cmd:
                raise ValueError(f"dvc.yaml stage {label}: unresolved interpolation in {cmd!r}")
            out.append((label, shlex.split(cmd)))
    return out


def run_module(argv: list[str]) -> None:
    """Run 'python -m stages.x ...' in this process; a non-zero return is an error."""
    if argv[:2] != ["python", "-m"] or not argv[2].startswith("stages."):
        raise ValueError(f"expected a 'python -m stages.<stage>' command, got {argv[:3]}")
    code = importlib.import_module(argv[2]).main(argv[3:])
    if code != 0:
        raise RuntimeError(f"{argv[2]} returned {code}")


def timed(timings: dict[str, float], label: str, fn, *args) -> None:
    start = time.perf_counter()
    fn(*args)
    timings[label] = round(time.perf_counter() - start, 1)
    log.info("bench: %s took %.1f s", label, timings[label])


def write_imbalanced_predictions(split_rows: list[int], test: dict) -> None:
    """The imbalanced test set's rows of the prediction file, after checking the row order."""
    prepared = load_split("data/prepared/test.npz")
    # Row i of the prepared test split must be image i of the test file.
    same = np.array_equal(prepared.labels, test["test_labels"]) and np.array_equal(
        np.rint(prepared.images[:, 0] * 255).astype(np.uint8), test["test_images"]
    )
    if not same:
        raise ValueError("the prepared test split is not the test file in order; re-run ingest")
    with np.load("data/predictions/test.npz") as npz:
        preds = dict(npz)
    if not np.array_equal(preds["hashes"], prepared.hashes):
        raise ValueError("data/predictions/test.npz rows do not match data/prepared/test.npz")
    rows = np.asarray(split_rows)
    sub = {k: preds[k][..., rows, :] if k == "probs" else preds[k] for k in preds}
    sub |= {k: preds[k][rows] for k in ("labels", "groups", "hashes")}
    write_npz("data/predictions/test_imbalanced.npz", **sub)


def run_stages(params, rows: list[int], test: dict) -> dict[str, float]:
    """Every dvc.yaml stage, then the extra scoring; returns seconds per step."""
    timings: dict[str, float] = {}
    runs = sorted(params.gan.runs)
    for label, argv in dvc_commands(runs):
        timed(timings, label, run_module, argv)

    # The same evaluate stage on the imbalanced rows of the same predictions.
    timed(timings, "select imbalanced rows", write_imbalanced_predictions, rows, test)
    argv = "python -m stages.evaluate --params params.yaml --predictions "
    argv += "data/predictions/test_imbalanced.npz --train data/prepared/train.npz --gan-dir "
    argv += "models/gan --audit reports/audit_imbalanced.json "
    argv += "--metrics metrics/classifier_imbalanced.json"
    timed(timings, "evaluate (imbalanced test)", run_module, argv.split())

    # The same GAN evaluation stage against held-out real images instead of val.
    for run in runs:
        argv = f"python -m stages.evaluate_gan --params params.yaml --run {run} "
        argv += f"--generator models/gan/{run}/generator.pt --train data/prepared/train.npz "
        argv += "--val data/gan_reference.npz --reference models/reference/classifier.pt "
        argv += f"--out metrics/gan_{run}_heldout.json"
        timed(timings, f"evaluate_gan@{run} (held-out reference)", run_module, argv.split())
    return timings


# --------------------------------------------------------------------------------------------
# Results


def audit_per_class(audit: dict, arm: str, num_classes: int) -> dict:
    """An arm's per-class recall, its paired gain over real and its verdict, from the audit."""
    res = audit["arms"][arm]
    out = {"recall": [res["metrics"][f"recall/{c}"] for c in range(num_classes)]}
    if arm != audit["baseline"]:
        out["recall_vs_real"] = [res["vs_baseline"][f"recall/{c}"] for c in range(num_classes)]
    return out | {"verdict": res["verdict"]}


def score_test_set(preds_npz: dict, rows: np.ndarray, audit_path: str, params) -> dict:
    """Our arms' metrics with intervals and paired gains over real on the given rows."""
    a = params.audit
    y, groups = preds_npz["labels"][rows], preds_npz["groups"][rows]
    k = len(preds_npz["class_names"])
    probs = preds_npz["probs"][:, :, rows]  # (L, S, N, K)
    preds = {str(arm): probs[i].argmax(-1) for i, arm in enumerate(preds_npz["arms"])}  # (S, N)
    audit = json.loads(Path(audit_path).read_text())
    arms = {}
    for arm, p in preds.items():
        ivs = longtail_intervals(y, p, groups, k, a.n_boot, a.bootstrap_seed, a.alpha)
        entry = {"metrics": {m: iv.as_dict() for m, iv in ivs.items()}}
        if arm != "real":
            gains = longtail_gains(
                y, preds["real"], p, groups, k, a.n_boot, a.bootstrap_seed, a.alpha
            )
            entry["vs_real"] = {m: iv.as_dict() for m, iv in gains.items()}
        arms[arm] = entry | audit_per_class(audit, arm, k)
    counts = np.bincount(y, minlength=k).tolist()
    return {"n": int(len(rows)), "counts": counts, "arms": arms}


def gan_scores(runs: list[str]) -> dict:
    out = {}
    for run in runs:
        held = json.loads(Path(f"metrics/gan_{run}_heldout.json").read_text())
        val = json.loads(Path(f"metrics/gan_{run}.json").read_text())
        synth = json.loads(Path(f"reports/samples/{run}/summary.json").read_text())
        out[run] = {"heldout": held["classes"], "val": val["classes"], "synthesized": synth}
    return out


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else the machine type."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.machine()


def machine() -> dict:
    cuda = torch.cuda.is_available()
    return {
        "platform": platform.platform(),
        "processor": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(0) if cuda else "cpu (no GPU)",
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }


def collect(cfg: BenchConfig, params, split, timings: dict, quick: bool, per_class: int) -> dict:
    with np.load("data/predictions/test.npz") as npz:
        preds = dict(npz)
    n_test = len(preds["labels"])
    summary = json.loads(Path("data/prepared/summary.json").read_text())
    return {
        "date": datetime.date.today().isoformat(),
        "mode": "quick" if quick else "full",
        "machine": machine(),
        "seconds": {"total": round(sum(timings.values()), 1), "steps": timings},
        "sizes": {
            "gan_steps": params.gan.steps,
            "gan_width": params.gan.width,
            "gan_batch": params.gan.batch_size,
            "classifier_width": params.classifier.width,
            "classifier_epochs": params.classifier.epochs,
            "seeds": params.audit.seeds,
            "n_boot": params.audit.n_boot,
            "gan_reference_per_class": per_class,
        },
        "protocol": cfg.protocol.model_dump(),
        "prepared_counts": {s: list(v["counts"].values()) for s, v in summary["splits"].items()},
        "class_names": summary["classes"],
        "published": [p.model_dump() for p in cfg.published],
        "published_source": cfg.published_source,
        "test_sets": {
            "imbalanced": score_test_set(
                preds, np.asarray(split.test_imbalanced), "reports/audit_imbalanced.json", params
            ),
            "balanced": score_test_set(preds, np.arange(n_test), "reports/audit.json", params),
        },
        "gan": gan_scores(sorted(params.gan.runs)),
    }


def results_markdown(res: dict) -> str:
    """The results page: both test sets, the GAN scores, and how they were obtained."""
    m, s = res["machine"], res["sizes"]
    minutes = res["seconds"]["total"] / 60
    lines = [
        "# Fashion-MNIST long-tail benchmark (DeepSMOTE protocol)",
        "",
        f"Run {res['date']} ({res['mode']} mode) on {m['processor']}, {m['cpu_count']} CPU cores, "
        f"{m['torch_threads']} torch thread(s), device {m['device']}: "
        f"{minutes:.0f} min in all. Written by `bench/bench_fashion_mnist.py`; do not edit.",
        "",
        f"Sizes: GAN {s['gan_steps']} steps (width {s['gan_width']}, batch {s['gan_batch']}); "
        f"classifier SmallCNN width {s['classifier_width']}, {s['classifier_epochs']} epoch(s), "
        f"best val epoch kept; seeds {s['seeds']}; {s['n_boot']} bootstrap resamples of test "
        "images. Values are percent, mean over seeds, with 95 % percentile-bootstrap intervals; "
        "gains pair each arm with real only on the same resamples and seeds.",
        "",
        f"Training counts {res['prepared_counts']['train']}, val {res['prepared_counts']['val']} "
        f"(val is {100 * res['protocol']['val_fraction']:.0f} % of each class of the protocol's "
        "training draw, so we train on 90 % of the published counts).",
        "",
        f"## Imbalanced test set ({res['test_sets']['imbalanced']['n']} images, "
        f"{res['test_sets']['imbalanced']['counts']})",
        "",
        longtail_table(res["test_sets"]["imbalanced"], res["published"]),
        "",
        f"Published rows: {res['published_source']}; ResNet-18, full training counts; their GM "
        "is compared with our one-vs-rest GM (it exceeds their ACSA, which the GM of recalls "
        "cannot).",
        "",
        f"## Balanced test set (all {res['test_sets']['balanced']['n']} test images)",
        "",
        longtail_table(res["test_sets"]["balanced"], []),
        "",
        "## Did better samples make a better classifier?",
        "",
        "| GAN run | FID (all) | 1-NN accuracy (all) | ACSA gain over real, imbalanced test | "
        "with classic augmentation |",
        "|---|---|---|---|---|",
    ]
    imb = res["test_sets"]["imbalanced"]["arms"]
    for run, g in res["gan"].items():
        al = g["heldout"].get("all", {})
        gain = imb.get(f"gan:{run}", {}).get("vs_real", {}).get("acsa")
        gain_c = imb.get(f"gan_classic:{run}", {}).get("vs_real", {}).get("acsa")
        cells = [run, _num(al, "fid", 2), _num(al, "one_nn_accuracy", 3), _gain(gain)]
        lines.append("| " + " | ".join([*cells, _gain(gain_c)]) + " |")
    for run, g in res["gan"].items():
        n_ref = next(iter(g["heldout"].values()))["n_real"] if g["heldout"] else 0
        lines += [
            "",
            f"### Generator `{run}`: scores per class against {n_ref} held-out real images per "
            "class",
            "",
            "Held-out images are training-file images outside the protocol's draw (never train, "
            "val or test); features are the reference classifier's penultimate layer (domain "
            "features). 1-NN accuracy 0.5 means the samples cannot be told from real ones; FID "
            "and KID fall to 0. Synthetic images per class added to the gan arms: "
            f"{g['synthesized']['kept']}.",
            "",
            gan_table(g["heldout"], res["class_names"]),
            "",
            f"Per class, balanced test set: does the class's sample quality go with the "
            f"`gan:{run}` arm's recall gain (paired, points)?",
            "",
            sample_quality_vs_recall(res, run),
        ]
    lines += ["", "## Verdicts of the audit (imbalanced test set, ACSA)", ""]
    lines += [f"- {a['verdict']}" for a in imb.values()]
    lines += ["", "## Time per step (seconds)", ""]
    lines += [f"- {k}: {v}" for k, v in res["seconds"]["steps"].items()]
    return "\n".join(lines) + "\n"


def sample_quality_vs_recall(res: dict, run: str) -> str:
    """Markdown rows per class: training count, synthetic added, FID, 1-NN accuracy, recall of
    real only and of the gan arm on the balanced test set, and the paired recall gain."""
    arms, g = res["test_sets"]["balanced"]["arms"], res["gan"][run]
    gan = arms.get(f"gan:{run}")
    if gan is None or "recall" not in gan:
        return "(no per-class recalls in these results)"
    head = ["class", "real train", "synthetic added", "FID", "1-NN accuracy", "recall, real"]
    head += [f"recall, gan:{run}", "recall gain, points"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c, name in enumerate(res["class_names"]):
        s = g["heldout"].get(name, {})
        d = gan["recall_vs_real"][c]
        cells = [name, str(res["prepared_counts"]["train"][c]), str(g["synthesized"]["kept"][c])]
        cells += [_num(s, "fid", 1), _num(s, "one_nn_accuracy", 3)]
        recalls = (arms["real"]["recall"][c]["point"], gan["recall"][c]["point"])
        cells += [f"{100 * r:.1f}" for r in recalls]
        cells.append(f"{100 * d['diff']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _num(scores: dict, key: str, digits: int) -> str:
    return f"{scores[key]:.{digits}f}" if key in scores else "—"


def _gain(iv: dict | None) -> str:
    if iv is None:
        return "—"
    return f"{100 * iv['point']:+.1f} [{100 * iv['lo']:+.1f}, {100 * iv['hi']:+.1f}]"


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "bench/fashion_mnist/bench.yaml")
    parser.add_argument("--quick", action="store_true", help="the quick: sizes, a few minutes")
    parser.add_argument(
        "--render", type=Path, help="only rewrite results.md beside this results.json"
    )
    args = parser.parse_args(argv)
    configure_logging()
    if args.render is not None:
        text = results_markdown(json.loads(args.render.read_text()))
        write_atomic(args.render.with_suffix(".md"), lambda tmp: tmp.write_text(text))
        return 0
    cfg = load_config(args.config)
    work = (ROOT / cfg.work_dir / ("quick" if args.quick else "full")).resolve()
    work.mkdir(parents=True, exist_ok=True)

    # The pipeline's params for this run, with the quick overrides, validated before any work.
    raw = yaml.safe_load((ROOT / cfg.params_file).read_text())
    for key, value in (cfg.quick if args.quick else {}).items():
        set_dotted(raw, key, value)
    try:
        params = params_from_dict(raw, origin=str(cfg.params_file))
    except ParamsError as exc:
        raise SystemExit(str(exc)) from None
    text = yaml.safe_dump(raw, sort_keys=False)
    write_atomic(work / "params.yaml", lambda tmp: tmp.write_text(text))

    per_class = (
        cfg.quick_gan_reference_per_class if args.quick else cfg.protocol.gan_reference_per_class
    )
    start = time.perf_counter()
    data = prepare_data(cfg, work, params.data.folder, per_class)
    with working_directory(work):
        timings = {"prepare data": round(time.perf_counter() - start, 1)}
        timings |= run_stages(params, data["split"].test_imbalanced, data)
        results = collect(cfg, params, data["split"], timings, args.quick, per_class)
    results["seconds"]["total"] = round(time.perf_counter() - start, 1)

    out_dir = work if args.quick else ROOT / cfg.results_dir
    write_json(out_dir / "results.json", results)
    text = results_markdown(results)
    write_atomic(out_dir / "results.md", lambda tmp: tmp.write_text(text))
    log.info("wrote %s and %s (%.0f s)", out_dir / "results.json", out_dir / "results.md",
             results["seconds"]["total"])  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

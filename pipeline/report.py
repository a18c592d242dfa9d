"""The audit report: one self-contained HTML page and the same content in Markdown.

Shape letters: N images, C channels (1), H/W image size, K classes.

The HTML embeds every figure as a base64 PNG and links nothing outside itself, so it opens
offline from any copy. The Markdown references the same PNGs under ``figures/`` beside it.
``gains.csv`` holds the gain chart's numbers for ``dvc plots``.

Input ``results`` (JSON-ready dict)::

    {
      "title": str,                                   # optional
      "class_names": [str] * K,
      "counts": {"train": [int] * K, "val": [...], "test": [...]},
      "data": {str: scalar},                          # free-form summary rows, e.g. source,
                                                      # image size, dtype, patients per split
      "settings": {str: scalar or list},              # seeds, ratios, n_boot, ... as shown
      "leakage": {run: {"n_test": int, "n_gan_train": int, "overlap": int}},  # optional
      "generators": {run: <metrics/gan_<run>.json as evaluate_gan writes it>},  # optional
      "audit": <the dict pipeline.audit_stats.audit_arms returns>,
    }

Metric values in ``audit`` are fractions; the report shows them in percent and gains in points.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from pipeline.io import write_atomic

log = logging.getLogger(__name__)

# Synthetic or real samples: (N, C, H, W) float32 [0, 1] images and (N,) int labels.
Samples = tuple[np.ndarray, np.ndarray]

SUMMARY_METRICS = ("balanced_accuracy", "macro_f1", "auroc")
READABLE = {"balanced_accuracy": "balanced accuracy", "macro_f1": "macro-F1", "auroc": "AUROC"}


@dataclass(frozen=True)
class Chart:
    """One rendered figure: its file name under figures/, a caption and its PNG bytes."""

    name: str
    caption: str
    png: bytes


def _metric_label(metric: str, class_names: list[str]) -> str:
    """'recall/2' -> 'recall csf_other'; summary keys get their readable names."""
    kind, _, k = metric.partition("/")
    if not k:
        return READABLE.get(metric, metric)
    return f"{kind} {class_names[int(k)]}"


def _to_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


# ---------------------------------------------------------------- figures


def counts_figure(counts: dict[str, list[int]], class_names: list[str]) -> Chart:
    """Grouped bars of images per class in each split."""
    fig = Figure(figsize=(6, 3), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(counts)
    x = np.arange(len(class_names))
    for i, (split, values) in enumerate(counts.items()):
        bars = ax.bar(x + i * width, values, width, label=split)
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(x + width * (len(counts) - 1) / 2, class_names)
    ax.set_ylabel("images")
    ax.legend(frameon=False)
    return Chart("class_counts.png", "Images per class in each split.", _to_png(fig))


def _montage(imgs: np.ndarray, n: int) -> np.ndarray:
    """(H, n * (W + 1)) float image of the first n images side by side, NaN gaps (blank)."""
    h, w = imgs.shape[-2:]
    out = np.full((h, n * (w + 1)), np.nan)
    for i, img in enumerate(imgs[:n]):
        out[:, i * (w + 1) : i * (w + 1) + w] = img[0]  # channel 0: grayscale
    return out


def samples_figure(
    real: Samples, gans: dict[str, Samples], class_names: list[str], n_show: int
) -> Chart:
    """Per class (rows): real images, then each GAN's generated images (columns)."""
    sources = {"real": real, **gans}
    panel_w = 3.5  # inches per source; a row of n_show images is about panel_w / n_show high
    height = len(class_names) * (panel_w / max(n_show, 1) + 0.25) + 0.4
    fig = Figure(figsize=(panel_w * len(sources), height), layout="constrained")
    axes = fig.subplots(len(class_names), len(sources), squeeze=False)
    for k, name in enumerate(class_names):
        for j, (source, (imgs, labels)) in enumerate(sources.items()):
            ax = axes[k, j]
            ax.imshow(_montage(imgs[labels == k], n_show), cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_title(source, fontsize=9)
            if j == 0:
                ax.set_ylabel(name, fontsize=9)
    caption = "Per class, real images beside each GAN's generated images (grey scale 0 to 1)."
    return Chart("samples.png", caption, _to_png(fig))


def read_loss_csv(path: Path) -> dict[str, np.ndarray]:
    """Numeric columns of a GAN loss CSV (step, loss_d, loss_g, ...) as float arrays."""
    if not path.is_file():
        raise FileNotFoundError(f"GAN loss curve not found: {path}; run the train_gan stage")
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "step" not in rows[0]:
        raise ValueError(f"{path}: expected a CSV with a 'step' column and rows, got {rows[:1]}")

    # numeric columns only; a text column (a timestamp, a tag) is not a curve
    out = {}
    for key in rows[0]:
        try:
            out[key] = np.array([float(r[key]) for r in rows])
        except ValueError:
            log.debug("%s: column %r is not numeric, left out", path, key)
    return out


def loss_figure(loss_csvs: dict[str, Path]) -> Chart:
    """One panel per GAN run: every loss_* column against the step."""
    fig = Figure(figsize=(4 * len(loss_csvs), 3), layout="constrained")
    axes = fig.subplots(1, len(loss_csvs), squeeze=False)[0]
    for ax, (run, path) in zip(axes, loss_csvs.items(), strict=True):
        cols = read_loss_csv(Path(path))
        for key in [c for c in cols if c.startswith("loss")]:
            ax.plot(cols["step"], cols[key], label=key, linewidth=1)
        ax.set_title(run, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(frameon=False, fontsize=7)
    return Chart("gan_losses.png", "GAN training losses per run.", _to_png(fig))


def gain_rows(audit: dict, class_names: list[str]) -> list[dict]:
    """Rows (arm, metric, gain, lo, hi in points) of every arm's gain over the baseline.

    Metrics: the summary ones, then recall per class. The gain chart and gains.csv use them.
    """
    metrics = [m for m in audit["metrics"] if m in SUMMARY_METRICS or m.startswith("recall/")]
    rows = []
    for arm, entry in audit["arms"].items():
        for m in metrics if "vs_baseline" in entry else []:
            g = entry["vs_baseline"][m]
            rows.append(
                {
                    "arm": arm,
                    "metric": _metric_label(m, class_names),
                    "gain": round(100 * g["diff"], 3),
                    "lo": round(100 * g["lo"], 3),
                    "hi": round(100 * g["hi"], 3),
                }
            )
    return rows


def gains_figure(rows: list[dict], baseline: str, alpha: float) -> Chart:
    """One panel per metric: each arm's gain in points with its interval bar."""
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    cols = min(3, len(metrics))
    nrows = -(-len(metrics) // cols)
    fig = Figure(figsize=(4 * cols, (0.35 * len(arms) + 1.2) * nrows), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics, strict=False):
        sub = [r for r in rows if r["metric"] == metric]
        y = np.arange(len(sub))
        gain = np.array([r["gain"] for r in sub])
        err = np.array([[r["gain"] - r["lo"], r["hi"] - r["gain"]] for r in sub]).T  # (2, A)
        color = ["tab:green" if r["lo"] > 0 else "tab:red" if r["hi"] < 0 else "grey" for r in sub]
        ax.barh(y, gain, xerr=np.nan_to_num(err), color=color, capsize=3)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(y, [r["arm"] for r in sub], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel(f"points over {baseline}", fontsize=8)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    caption = (
        f"Gain over {baseline} in points with {100 * (1 - alpha):g} % patient-bootstrap "
        "intervals; green: interval "
        "above zero, red: below zero, grey: not distinguishable."
    )
    return Chart("gains.png", caption, _to_png(fig))


# ---------------------------------------------------------------- tables


def _pct(iv: dict) -> str:
    """'81.2 [76.0, 85.9]' from an interval of fractions; 'n/a' when undefined."""
    if not np.isfinite(iv["point"]):
        return "n/a"
    if not (np.isfinite(iv["lo"]) and np.isfinite(iv["hi"])):
        return f"{100 * iv['point']:.1f}"
    return f"{100 * iv['point']:.1f} [{100 * iv['lo']:.1f}, {100 * iv['hi']:.1f}]"


def summary_table(audit: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows: every arm's summary metrics in percent with intervals, accuracy last."""
    metrics = [m for m in (*SUMMARY_METRICS, "accuracy") if m in audit["metrics"]]
    header = ["arm", *[READABLE.get(m, m) for m in metrics]]
    rows = [[arm, *[_pct(e["metrics"][m]) for m in metrics]] for arm, e in audit["arms"].items()]
    return header, rows


def per_class_table(audit: dict, class_names: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: per arm and class, recall, specificity and AUROC with intervals."""
    kinds = [k for k in ("recall", "specificity", "auroc") if f"{k}/0" in audit["metrics"]]
    header = ["arm", "class", *kinds]
    rows = [
        [arm, name, *[_pct(e["metrics"][f"{kind}/{k}"]) for kind in kinds]]
        for arm, e in audit["arms"].items()
        for k, name in enumerate(class_names)
    ]
    return header, rows


def gain_table(audit: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows: the verdict metric's gain over the baseline and the best classical arm."""
    m = audit["verdict_metric"]

    def cell(g: dict | None) -> str:
        if g is None:
            return ""
        if not np.isfinite(g["diff"]):
            return "n/a"
        return f"{100 * g['diff']:+.1f} [{100 * g['lo']:+.1f}, {100 * g['hi']:+.1f}]"

    def p_values(g: dict | None) -> str:
        return "" if g is None else f"{g['p_bootstrap']:.3g} / {g['p_mcnemar']:.3g}"

    best = audit["best_classic"] or "best classical arm"
    header = [
        "arm",
        f"{audit['verdict_label']}: gain over {audit['baseline']} (points)",
        "p bootstrap / McNemar",
        f"gain over {best} (points)",
        "p bootstrap / McNemar",
    ]
    rows = []
    for arm, entry in audit["arms"].items():
        if arm == audit["baseline"]:
            continue
        vs_base = entry.get("vs_baseline", {}).get(m)
        vs_best = entry.get("vs_best_classic", {}).get(m)
        rows.append([arm, cell(vs_base), p_values(vs_base), cell(vs_best), p_values(vs_best)])
    return header, rows


def _interval(scores: dict, key: str, digits: int = 3, scale: float = 1.0) -> str:
    if key not in scores:
        return "-"
    v, lo, hi = (scale * scores.get(k, float("nan")) for k in (key, f"{key}_lo", f"{key}_hi"))
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def generator_table(generators: dict) -> tuple[list[str], list[list[str]]]:
    """One row per GAN run: its scores over all classes against the val split."""
    header = [
        "run", "kind", "constraints", "kept step", "N gen / val", "FID", "KID x 1000",
        "1-NN accuracy (0.5 ideal)", "precision", "recall", "copy fraction",
    ]
    rows = []
    for run, m in generators.items():
        s = m.get("classes", {}).get("all", {})
        rows.append([
            run, str(m.get("kind", "")), "on" if m.get("trained_with_constraints") else "off",
            str(m.get("best_step", "-")), f"{s.get('n_gen', '-')} / {s.get('n_real', '-')}",
            _interval(s, "fid"), _interval(s, "kid", 2, 1000.0),
            _interval(s, "one_nn_accuracy"), _interval(s, "precision"),
            _interval(s, "recall"), _interval(s, "memo_copy_fraction"),
        ])
    return header, rows


def violation_table(generators: dict) -> tuple[list[str], list[list[str]]]:
    """Per run and constraint: the share of generated images breaking it, in percent."""
    names = sorted({c for m in generators.values() for c in m.get("constraints", {})})
    header = ["run", "constraints", *names]
    rows, floor = [], {}
    for run, m in generators.items():
        cells = []
        for name in names:
            overall = m.get("constraints", {}).get(name, {}).get("all", {})
            cells.append(_interval(overall, "generated", 1, 100.0))
            floor.setdefault(name, overall.get("real_val"))
        rows.append([run, "on" if m.get("trained_with_constraints") else "off", *cells])
    rows.append([
        "real val images (floor)", "",
        *("-" if floor[n] is None else f"{100 * floor[n]:.1f}" for n in names),
    ])
    return header, rows


def _kv_rows(mapping: dict) -> list[list[str]]:
    return [
        [str(k), ", ".join(map(str, v)) if isinstance(v, list) else str(v)]
        for k, v in mapping.items()
    ]


# ---------------------------------------------------------------- document


def build_blocks(
    results: dict, real: Samples, gans: dict[str, Samples], loss_csvs: dict[str, Path], n_show: int
) -> list[tuple]:
    """The report as a list of neutral blocks: ('h', level, text), ('p', text),
    ('table', header, rows), ('chart', Chart), ('list', items)."""
    names, audit = list(results["class_names"]), results["audit"]
    counts = results["counts"]
    rows = gain_rows(audit, names)
    level = int(round(100 * (1 - audit["alpha"])))

    blocks: list[tuple] = [("h", 1, results.get("title", "Downstream audit of GAN augmentation"))]

    # data summary and counts
    blocks += [("h", 2, "Data"), ("table", ["item", "value"], _kv_rows(results.get("data", {})))]
    count_rows = [[s, *map(str, c), str(sum(c))] for s, c in counts.items()]
    blocks += [
        ("table", ["split", *names, "total"], count_rows),
        ("chart", counts_figure(counts, names)),
    ]
    for run, leak in results.get("leakage", {}).items():
        blocks.append(
            (
                "p",
                f"Leakage check, {run}: {leak['overlap']} of {leak['n_test']} test images in "
                f"its {leak['n_gan_train']} training images.",
            )
        )

    # the generators: samples and loss curves
    if gans:
        blocks += [
            ("h", 2, "Generated images"),
            ("chart", samples_figure(real, gans, names, n_show)),
        ]
    if loss_csvs:
        blocks += [("h", 2, "GAN training"), ("chart", loss_figure(loss_csvs))]
    generators = results.get("generators", {})
    if generators:
        blocks += [
            ("h", 2, "Generator scores (against the val split, all classes)"),
            (
                "p",
                "Scores in the reference classifier's feature space, with 95 % bootstrap "
                "intervals; per-class scores are in metrics/gan_<run>.json. 'kept step' is the "
                "checkpoint chosen by the training-set selection score. FID and KID fall to 0 "
                "and the 1-NN accuracy to 0.5 as samples become indistinguishable from real "
                "val images; a high copy fraction means memorisation.",
            ),
            ("table", *generator_table(generators)),
        ]
        if any(m.get("constraints") for m in generators.values()):
            blocks += [
                ("h", 3, "Prior-knowledge constraint violations (percent of generated images)"),
                (
                    "p",
                    "Every run is scored with every constraint of params.yaml, trained with "
                    "them or not; the last row is the rate of real val images, the floor.",
                ),
                ("table", *violation_table(generators)),
            ]

    # verdicts, gains and the full metric table
    blocks += [("h", 2, "Verdicts"), ("list", [e["verdict"] for e in audit["arms"].values()])]
    if audit.get("trained_on"):
        blocks += [
            (
                "p",
                "Training images per class of each arm (real plus added, seed 0): compare "
                "arms knowing how much each added.",
            ),
            (
                "table",
                ["arm", *names, "total"],
                [[arm, *map(str, c), str(sum(c))] for arm, c in audit["trained_on"].items()],
            ),
        ]
    blocks.append(
        (
            "p",
            f"Gains are paired differences on the same {audit['n_test_images']} test images "
            f"({audit['n_test_groups']} patients) and {audit['n_seeds']} seeds, with "
            f"{level} % intervals from {audit['n_boot']} resamples of test patients. A gain "
            "whose interval holds zero is not distinguishable from no gain. Plain accuracy is "
            "shown but never used for a gain. The bootstrap p-value tests the gain shown; "
            "the exact McNemar p-value tests correctness over all classes, pooled over seeds.",
        )
    )
    blocks += [("h", 2, "Gains"), ("table", *gain_table(audit))]
    if rows:
        blocks.append(("chart", gains_figure(rows, audit["baseline"], audit["alpha"])))
    blocks += [
        ("h", 2, f"Metrics (percent, {level} % intervals)"),
        ("table", *summary_table(audit)),
        ("table", *per_class_table(audit, names)),
    ]
    blocks += [
        ("h", 2, "Settings"),
        ("table", ["setting", "value"], _kv_rows(results.get("settings", {}))),
    ]
    return blocks


CSS = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; }
th { background: #f0f0f0; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; }
"""


def blocks_to_html(blocks: list[tuple]) -> str:
    """A self-contained HTML page: inline CSS, figures as data: URIs, no external links."""
    esc = html.escape
    title = next(b[2] for b in blocks if b[0] == "h")
    parts = [
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{esc(title)}</title>',
        f"<style>{CSS}</style></head><body>",
    ]
    for block in blocks:
        kind = block[0]
        if kind == "h":
            parts.append(f"<h{block[1]}>{esc(block[2])}</h{block[1]}>")
        elif kind == "p":
            parts.append(f"<p>{esc(block[1])}</p>")
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{esc(h)}</th>" for h in block[1])
            body = "".join(
                "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in block[2]
            )
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        elif kind == "chart":
            chart = block[1]
            data = base64.b64encode(chart.png).decode("ascii")
            parts.append(
                f'<figure><img alt="{esc(chart.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(chart.caption)}</figcaption></figure>"
            )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def blocks_to_markdown(blocks: list[tuple], figures_dir: str = "figures") -> str:
    """The same report in Markdown, figures referenced as files under figures_dir."""
    lines = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            lines += ["#" * block[1] + " " + block[2], ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "list":
            lines += [f"- {i}" for i in block[1]] + [""]
        elif kind == "table":
            lines.append("| " + " | ".join(map(_md_cell, block[1])) + " |")
            lines.append("|" + "---|" * len(block[1]))
            lines += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in block[2]] + [""]
        elif kind == "chart":
            chart = block[1]
            lines += [
                f"![{chart.caption}]({figures_dir}/{chart.name})",
                "",
                f"*{chart.caption}*",
                "",
            ]
    return "\n".join(lines)


def write_report(
    out_dir: str | Path,
    results: dict,
    real: Samples,
    gans: dict[str, Samples],
    loss_csvs: dict[str, Path],
    n_show: int = 8,
) -> dict[str, Path]:
    """Write report.html, report.md, figures/*.png and gains.csv into out_dir, atomically.

    Args:
        results: the dict the module docstring describes.
        real: real images and labels to show beside the generated ones, e.g. the train split.
        gans: {run: (images, labels)} generated samples per GAN run.
        loss_csvs: {run: path of its loss CSV with columns step, loss_d, loss_g, ...}.
        n_show: images per class and source in the samples figure.
    Returns:
        {"html", "markdown", "gains_csv", "figures"} paths written.
    """
    out_dir = Path(out_dir)
    blocks = build_blocks(results, real, gans, {k: Path(v) for k, v in loss_csvs.items()}, n_show)

    # figures as files for the Markdown, then both documents
    for chart in (b[1] for b in blocks if b[0] == "chart"):
        write_atomic(out_dir / "figures" / chart.name, lambda tmp, c=chart: tmp.write_bytes(c.png))
    html_text, md_text = blocks_to_html(blocks), blocks_to_markdown(blocks)
    write_atomic(out_dir / "report.html", lambda tmp: tmp.write_text(html_text))
    write_atomic(out_dir / "report.md", lambda tmp: tmp.write_text(md_text))

    # the gain chart's numbers, long format, for dvc plots
    rows = gain_rows(results["audit"], list(results["class_names"]))
    write_atomic(out_dir / "gains.csv", lambda tmp: _write_gains_csv(tmp, rows))

    paths = {
        "html": out_dir / "report.html",
        "markdown": out_dir / "report.md",
        "gains_csv": out_dir / "gains.csv",
        "figures": out_dir / "figures",
    }
    log.info("report written: %s (%d kB)", paths["html"], len(html_text) // 1024)
    return paths


def _write_gains_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["label", "arm", "metric", "gain", "lo", "hi"])
        writer.writeheader()
        for r in rows:
            writer.writerow({"label": f"{r['arm']} | {r['metric']}", **r})

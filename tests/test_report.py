"""The report: self-contained HTML, Markdown with figure files, gains CSV, headless render."""

from __future__ import annotations

import csv
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.audit_stats import audit_arms
from pipeline.report import gain_rows, write_report

NAMES = ["grey", "white", "csf_other"]
CHROMIUM = Path("/usr/bin/chromium")


def _results(n_boot: int = 200) -> dict:
    """An audit of three arms on 60 test images of 12 patients, 2 seeds."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [30, 20, 10])
    groups = np.array([f"p{i % 12}" for i in range(60)])

    def arm(skill: float):
        right = rng.random((2, 60)) < skill
        preds = np.where(right, y, (y + 1) % 3)
        probs = np.full((2, 60, 3), 0.1) + 0.7 * np.eye(3)[preds]
        return preds, probs

    arms = {"real": arm(0.6), "oversample": arm(0.7), "gan:acgan": arm(0.8)}
    audit = audit_arms(y, groups, arms, 3, "recall/2", "minority recall", n_boot, seed=0)
    return {
        "title": "Test audit",
        "class_names": NAMES,
        "counts": {"train": [300, 200, 40], "val": [60, 40, 8], "test": [30, 20, 10]},
        "data": {"source": "mni152", "image size": "16 x 16, float32 [0, 1]"},
        "settings": {"seeds": [0, 1], "ratios": [1.0], "n_boot": n_boot},
        "leakage": {"acgan": {"n_test": 60, "n_gan_train": 540, "overlap": 0}},
        "audit": audit,
    }


def _samples(seed: int, n: int = 24):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n // 3)
    return rng.random((n, 1, 16, 16)).astype(np.float32), labels


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("reports")
    loss = out / "acgan.csv"
    loss.write_text("step,loss_d,loss_g,tag\n0,1.4,0.7,a\n10,1.2,0.9,b\n20,1.1,1.0,c\n")
    results = _results()
    paths = write_report(out, results, _samples(0), {"acgan": _samples(1)}, {"acgan": loss})
    return out, {**paths, "results": results}


def test_html_is_self_contained_with_embedded_pngs(report):
    _, paths = report
    text = paths["html"].read_text()

    imgs = re.findall(r'<img [^>]*src="([^"]*)"', text)
    assert len(imgs) == 4  # counts, samples, losses, gains
    assert all(src.startswith("data:image/png;base64,iVBOR") for src in imgs)
    # nothing points outside the page
    refs = re.findall(r"(?:src|href)\s*=\s*['\"]([^'\"]*)", text)
    assert all(r.startswith("data:") for r in refs)
    assert "http" not in text and "<link" not in text and "<script" not in text


def test_html_and_markdown_carry_verdicts_and_tables(report):
    out, paths = report
    audit = paths["results"]["audit"]
    html_text, md = paths["html"].read_text(), paths["markdown"].read_text()

    for entry in audit["arms"].values():
        assert entry["verdict"] in md
    assert "gan:acgan: " in audit["arms"]["gan:acgan"]["verdict"]
    assert "over real only" in audit["arms"]["gan:acgan"]["verdict"]
    assert "<th>specificity</th>" in html_text and "<td>csf_other</td>" in html_text
    assert "| test | 30 | 20 | 10 | 60 |" in md

    # every figure the Markdown references exists beside it
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(figures) == 4 and all((out / f).is_file() for f in figures)


def test_gains_csv_matches_the_audit(report):
    _, paths = report
    audit = paths["results"]["audit"]
    with paths["gains_csv"].open() as fh:
        rows = list(csv.DictReader(fh))

    # 2 non-baseline arms x (3 summary metrics + 3 recalls)
    assert len(rows) == 2 * 6
    row = next(r for r in rows if r["arm"] == "gan:acgan" and r["metric"] == "recall csf_other")
    gain = audit["arms"]["gan:acgan"]["vs_baseline"]["recall/2"]
    assert float(row["gain"]) == pytest.approx(100 * gain["diff"], abs=1e-3)
    assert float(row["lo"]) <= float(row["gain"]) <= float(row["hi"])
    assert rows == [
        {**{k: str(v) for k, v in r.items()}, "label": f"{r['arm']} | {r['metric']}"}
        for r in gain_rows(audit, NAMES)
    ]


def test_missing_loss_csv_is_named(report, tmp_path):
    results, missing = report[1]["results"], tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match="nope.csv; run the train_gan stage"):
        write_report(tmp_path, results, _samples(0), {"a": _samples(1)}, {"a": missing})


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="chromium absent: apt-get install -y chromium to run this test"
)
def test_chromium_renders_the_charts(report, tmp_path):
    from PIL import Image

    _, paths = report
    shot = tmp_path / "shot.png"
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--screenshot={shot}", "--window-size=1200,3000",
        paths["html"].resolve().as_uri(),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, timeout=60, capture_output=True)

    # text and tables are grey; only the charts' coloured bars and lines are saturated, so a
    # blank page or broken images leave no saturated pixel (a blank page: 0.0, this one ~0.02)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)  # (H, W, 3)
    assert pixels.shape[:2] == (3000, 1200)
    assert (pixels.min(axis=2) < 200).mean() > 0.02
    saturated = (pixels.max(axis=2) - pixels.min(axis=2)) > 60
    assert saturated.mean() > 0.005

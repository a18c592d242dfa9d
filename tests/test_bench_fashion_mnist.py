"""The Fashion-MNIST benchmark end to end on tiny fake IDX files: every dvc.yaml stage, both
test sets, the GAN scores and the results files (no Debian package needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench import bench_fashion_mnist as bench
from pipeline.fashion_mnist import FILES, load_longtail_split
from tests.test_fashion_mnist import _write_idx

TRAIN_COUNTS = [20, 12, 8, 6, 5, 4, 4, 3, 3, 3]
TEST_COUNTS = [10, 8, 6, 5, 4, 3, 3, 2, 2, 1]
TINY = {
    "gan.steps": 4,
    "gan.log_every": 2,
    "gan.width": 4,
    "gan.batch_size": 16,
    "classifier.width": 4,
    "classifier.epochs": 1,
    "synth.grid_per_class": 2,
    "audit.seeds": [0],
    "audit.n_boot": 100,
    "evaluate_gan.samples_per_class": 10,
    "evaluate_gan.bootstrap": 10,
    "evaluate_gan.kid_subsets": 2,
}


def _fake_fashion_mnist(root: Path) -> None:
    """40 training and 12 test images per class, 28 x 28, a bright stripe per class."""
    root.mkdir()
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 40), ("test", 12)):
        labels = np.tile(np.arange(10, dtype=np.uint8), per_class)
        imgs = rng.integers(0, 60, (len(labels), 28, 28), dtype=np.uint8)
        for i, k in enumerate(labels):
            imgs[i, 2 * k : 2 * k + 3] = 250
        _write_idx(root / FILES[split, "images"], imgs)
        _write_idx(root / FILES[split, "labels"], labels)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("bench")
    _fake_fashion_mnist(tmp / "idx")
    config = yaml.safe_load((bench.ROOT / "bench/fashion_mnist/bench.yaml").read_text())
    config |= {
        "data_root": str(tmp / "idx"),
        "split_file": str(tmp / "split.json"),
        "work_dir": str(tmp / "work"),
        "results_dir": str(tmp / "results"),
        "quick": TINY,
        "quick_gan_reference_per_class": 10,
    }
    config["protocol"] |= {"train_counts": TRAIN_COUNTS, "test_counts": TEST_COUNTS}
    (tmp / "bench.yaml").write_text(yaml.safe_dump(config))
    assert bench.main(["--config", str(tmp / "bench.yaml"), "--quick"]) == 0
    return tmp


def test_results_hold_both_test_sets_and_the_published_rows(quick_run):
    res = json.loads((quick_run / "work/quick/results.json").read_text())
    imb, bal = res["test_sets"]["imbalanced"], res["test_sets"]["balanced"]
    assert imb["counts"] == TEST_COUNTS and bal["n"] == 120
    assert (
        list(imb["arms"])
        == bench.params_from_dict(
            yaml.safe_load((quick_run / "work/quick/params.yaml").read_text())
        ).audit.arms
    )
    for arm in imb["arms"].values():
        acsa = arm["metrics"]["acsa"]
        assert 0 <= acsa["lo"] <= acsa["point"] <= acsa["hi"] <= 1
    assert [p["method"] for p in res["published"]][-1] == "DeepSMOTE"
    assert res["gan"]["acgan"]["heldout"]["all"]["n_real"] == 100
    # a quick run never writes over the committed results
    assert not (quick_run / "results").exists()


def test_imbalanced_audit_scores_exactly_the_saved_rows(quick_run):
    work = quick_run / "work/quick"
    split = load_longtail_split(quick_run / "split.json")
    with (
        np.load(work / "data/predictions/test.npz") as full,
        np.load(work / "data/predictions/test_imbalanced.npz") as sub,
    ):
        rows = np.asarray(split.test_imbalanced)
        assert np.array_equal(sub["hashes"], full["hashes"][rows])
        assert np.array_equal(sub["probs"], full["probs"][:, :, rows])
    audit = json.loads((work / "reports/audit_imbalanced.json").read_text())
    assert audit["n_test_images"] == sum(TEST_COUNTS)
    assert audit["leakage"]["acgan"]["overlap"] == 0


def test_markdown_places_ours_beside_the_published_rows(quick_run):
    text = (quick_run / "work/quick/results.md").read_text()
    assert "| DeepSMOTE (published) | 84.88 | 91.63 | — | 83.79 | — |" in text
    assert "| ours: gan:acgan |" in text and "### Generator `acgan`" in text
    # 3 drawn, 1 to val; filled up to class 0's 18; too few to score its samples
    assert "| ankle_boot | 2 | 16 | — | — |" in text


def test_dvc_commands_follow_dvc_yaml():
    labels = [label for label, _ in bench.dvc_commands(["acgan", "d2gan"])]
    assert labels[:4] == ["check_params", "ingest", "train_reference", "train_gan@acgan"]
    assert labels.index("evaluate_gan@d2gan") < labels.index("train_classifier")
    assert labels[-1] == "report"


def test_unknown_quick_override_is_named():
    with pytest.raises(ValueError, match="'gan.stepz': no such params key"):
        bench.set_dotted({"gan": {"steps": 1}}, "gan.stepz", 3)

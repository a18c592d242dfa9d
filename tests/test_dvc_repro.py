"""`dvc repro` on a fresh copy of the project with the smoke params: everything runs once, a
second repro runs nothing, and `dvc exp run -S` on one GAN run's kind reruns that run's stages
and those after them only."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA, ROOT

BIN = Path(sys.executable).parent


def sh(cwd: Path, *cmd: str) -> str:
    env = os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "TQDM_DISABLE": "1"}
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    tail = f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{tail}"
    return res.stdout + res.stderr


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    if shutil.which("git") is None:
        pytest.fail("git is needed for dvc; install it")
    root = tmp_path_factory.mktemp("project")
    files = sh(ROOT, "git", "ls-files").split()
    for rel in files:
        if (ROOT / rel).is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, root / rel)
    shutil.copy(DATA / "params_smoke.yaml", root / "params.yaml")
    (root / "dvc.lock").unlink(missing_ok=True)
    sh(root, "git", "init", "-q")
    sh(root, "git", "add", "-A")
    sh(root, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "smoke")
    return root


def test_repro_runs_every_stage_once_then_nothing(project):
    first = sh(project, "dvc", "repro")
    stages = {"check_params", "ingest", "train_reference", "train_classifier", "evaluate", "report"}
    for run in ("acgan", "d2gan_prior"):
        stages |= {f"train_gan@{run}", f"synthesize@{run}", f"evaluate_gan@{run}"}
    assert ran(first) == stages
    assert ran(sh(project, "dvc", "repro")) == set()
    shown = sh(project, "dvc", "metrics", "show")
    for key in ("gan:d2gan_prior", "balanced_accuracy", "gain_minority_recall", "fid_lo"):
        assert key in shown


def test_exp_run_on_a_gan_kind_reruns_only_that_run_and_after(project):
    sh(project, "git", "add", "-A")
    sh(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "lock")
    out = sh(project, "dvc", "exp", "run", "-S", "gan.runs.acgan.kind=d2gan")
    assert ran(out) == {
        "check_params", "train_gan@acgan", "synthesize@acgan", "evaluate_gan@acgan",
        "train_classifier", "evaluate", "report",
    }
    assert '"kind": "d2gan"' in (project / "metrics/gan_acgan.json").read_text()


def test_a_typo_in_an_untracked_key_fails_the_repro(project):
    params = project / "params.yaml"
    original = params.read_text()
    params.write_text(original.replace("  steps: 100 ", "  stepz: 3000\n  steps: 100 "))
    try:
        env = os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        res = subprocess.run(
            ["dvc", "repro"], cwd=project, env=env, capture_output=True, text=True, timeout=600
        )
        assert res.returncode != 0
        assert "gan.stepz: unknown key" in res.stdout + res.stderr
        assert "Traceback" not in res.stdout + res.stderr
    finally:
        params.write_text(original)

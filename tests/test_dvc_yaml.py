"""dvc.yaml declares exactly the pipeline/ modules each stage imports, and only real params.

A module a stage imports but does not declare would let `dvc repro` skip a stage whose code
changed; one declared but not imported reruns a stage for nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT


def pipeline_imports(path: Path, seen: set[str] | None = None) -> set[str]:
    """Every pipeline/ module ``path`` imports, transitively, as repo-relative paths."""
    seen = set() if seen is None else seen
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            module = ROOT / (name.replace(".", "/") + ".py")
            if name.startswith("pipeline.") and module.is_file():
                rel = module.relative_to(ROOT).as_posix()
                if rel not in seen:
                    seen.add(rel)
                    pipeline_imports(module, seen)
    return seen


def stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("name", sorted(stages()))
def test_stage_declares_exactly_its_modules(name):
    stage = stages()[name]
    spec = stage.get("do", stage)
    script = next(d for d in spec["deps"] if d.startswith("stages/"))
    declared = {d for d in spec["deps"] if d.startswith("pipeline/")}
    imported = pipeline_imports(ROOT / script)
    assert declared == imported, (
        f"{name}: missing {sorted(imported - declared)}, not imported {sorted(declared - imported)}"
    )


@pytest.mark.parametrize("name", sorted(stages()))
def test_declared_params_exist(name):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    stage = stages()[name]
    spec = stage.get("do", stage)
    for key in spec.get("params", []):
        if isinstance(key, dict):  # `- params.yaml:` tracks every key of the file
            assert list(key) == ["params.yaml"], f"{name}: unexpected params entry {key}"
            continue
        if "${key}" in key:
            key = key.replace("${key}", next(iter(params["gan"]["runs"])))
        node = params
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{name}: no param {key}"
            node = node[part]


def declared(stage: str) -> set[str]:
    spec = stages()[stage].get("do", stages()[stage])
    return {k for k in spec.get("params", []) if isinstance(k, str)}


def test_every_gan_key_is_declared_by_train_gan():
    from pipeline.config import GanParams

    keys = declared("train_gan")
    assert "gan.runs.${key}" in keys
    missing = {f"gan.{f}" for f in GanParams.model_fields if f != "runs"} - keys
    assert not missing, f"train_gan reads but does not declare {sorted(missing)}"


def test_every_audit_key_is_declared_by_the_stage_that_reads_it():
    from pipeline.config import AuditParams

    statistics = {"verdict_metric", "n_boot", "alpha", "bootstrap_seed"}  # the evaluate stage
    for stage, fields in (
        ("train_classifier", set(AuditParams.model_fields) - statistics),
        ("evaluate", statistics),
    ):
        missing = {f"audit.{f}" for f in fields} - declared(stage)
        assert not missing, f"{stage} does not declare {sorted(missing)}"


def test_check_params_tracks_the_whole_file():
    assert {"params.yaml": None} in stages()["check_params"]["params"]

"""Atomic writes: nothing half-written is left behind, and outputs get ordinary permissions."""

from __future__ import annotations

import os

import pytest

from pipeline.io import atomic_path, write_json


def test_finished_output_gets_the_umask_mode(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "b.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []

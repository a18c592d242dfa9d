from __future__ import annotations

import copy

import pytest
import yaml

from pipeline.config import ParamsError, load_params, params_from_dict
from tests.conftest import DATA, ROOT


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_repository_params_and_smoke_params_load():
    assert (
        load_params(ROOT / "params.yaml").gan.steps
        > load_params(DATA / "params_smoke.yaml").gan.steps
    )


def test_unknown_key_is_named(raw):
    raw["gan"]["stepz"] = 3
    with pytest.raises(ParamsError, match=r"gan\.stepz: unknown key"):
        params_from_dict(raw)


def test_missing_key_is_named(raw):
    del raw["data"]["mni"]["stride"]
    with pytest.raises(ParamsError, match=r"data\.mni\.stride: missing"):
        params_from_dict(raw)


def test_out_of_range_value_is_named(raw):
    raw["data"]["val_fraction"] = 1.5
    with pytest.raises(ParamsError, match=r"data\.val_fraction: .*less than 1"):
        params_from_dict(raw)


def test_wrong_type_is_named(raw):
    bad = copy.deepcopy(raw)
    bad["classifier"]["epochs"] = "many"
    with pytest.raises(ParamsError, match=r"classifier\.epochs"):
        params_from_dict(bad)


def test_unknown_gan_kind_lists_valid_kinds(raw):
    run = next(iter(raw["gan"]["runs"]))
    raw["gan"]["runs"][run]["kind"] = "stylegan"
    with pytest.raises(ParamsError, match=r"gan\.runs\..*\.kind: .*'acgan'"):
        params_from_dict(raw)


def test_arm_must_name_a_gan_run(raw):
    raw["audit"]["arms"] = ["real", "gan:nope"]
    with pytest.raises(ParamsError, match="names GAN run 'nope'"):
        params_from_dict(raw)


def test_missing_file_says_so(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "absent.yaml")

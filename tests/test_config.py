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


def test_a_key_given_twice_is_refused(tmp_path):
    text = (ROOT / "params.yaml").read_text().replace("  steps: 1500", "  steps: 1500\n  steps: 10")
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ParamsError, match="'steps' appears twice"):
        load_params(tmp_path / "p.yaml")


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    (tmp_path / "p.yaml").write_text("seed: 0\ngan:\n\tsteps: 3\n")
    with pytest.raises(ParamsError, match=r"(?s)p\.yaml: not valid YAML.*line 3"):
        load_params(tmp_path / "p.yaml")


def test_switches_take_yaml_booleans_only(raw):
    raw["gan"]["mixed_precision"] = "yes"
    with pytest.raises(ParamsError, match=r"gan\.mixed_precision: Input should be a valid boolean"):
        params_from_dict(raw)


def test_run_names_must_be_usable_as_file_names(raw):
    raw["gan"]["runs"]["my run"] = raw["gan"]["runs"]["acgan"]
    with pytest.raises(ParamsError, match=r"gan\.runs\.my run.*pattern"):
        params_from_dict(raw)


def test_section_errors_do_not_dump_the_section(raw):
    raw["audit"]["arms"] = ["real", "gan:wgan"]
    with pytest.raises(ParamsError) as info:
        params_from_dict(raw)
    text = str(info.value)
    assert "names GAN run 'wgan'" in text and "got {" not in text and len(text) < 400


def test_constraint_setting_errors_name_the_real_key_path(raw):
    raw["constraints"][0]["settings"]["tolerence"] = 0.1
    with pytest.raises(ParamsError, match=r"constraints\.0\.settings\.tolerence: unknown key"):
        params_from_dict(raw)


def test_a_stage_with_bad_params_fails_with_the_message_only(tmp_path, capsys):
    from stages import ingest

    text = (ROOT / "params.yaml").read_text().replace("  steps: 1500", "  stepz: 1500")
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(SystemExit) as info:
        ingest.main(["--params", str(tmp_path / "p.yaml"), "--out-dir", str(tmp_path / "out")])
    assert info.value.code == 2
    assert "gan.stepz: unknown key" in capsys.readouterr().err

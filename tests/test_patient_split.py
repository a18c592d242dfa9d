"""Patient split: grouped, test holds every class, deterministic when patients are added;
pseudonyms are HMAC-SHA256 under a key that never comes from or goes to the outputs."""

from __future__ import annotations

import csv
import hashlib
import hmac
import stat
from pathlib import Path

import numpy as np
import pytest

from pipeline.patient_split import (
    KEY_ENV,
    SplitError,
    assign_patients,
    check_key_outside,
    load_pseudonym_key,
    patient_position,
    pseudonym_table,
    pseudonymise,
)

DATA = Path(__file__).parent / "data"


def _manifest():
    with (DATA / "manifest_patients_imbalanced.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    return [r["patient_id"] for r in rows], np.array([int(r["label"]) for r in rows])


@pytest.mark.parametrize("seed", range(8))
def test_fixture_manifest_split_is_grouped_and_test_holds_the_minority(seed):
    pids, labels = _manifest()
    assert len(pids) == 20 and len(set(pids)) == 6
    result = assign_patients(pids, labels, 2, 0.2, 0.2, seed)
    splits = result.sample_splits(pids)

    # No patient in two splits, every patient assigned.
    for pid in set(pids):
        assert len({s for p, s in zip(pids, splits, strict=True) if p == pid}) == 1
    # Test and train each hold both classes; the minority patients are P4 and P5.
    for name in ("test", "train"):
        assert set(labels[splits == name]) == {0, 1}
    assert {"P4", "P5"} & {p for p, s in result.split_of.items() if s == "test"}


def _random_cohort(n, seed):
    rng = np.random.default_rng(seed)
    pids = [f"patient-{seed}-{i:03d}" for i in range(n)]
    classes = rng.integers(0, 3, n)
    return pids, classes


def test_adding_patients_does_not_move_existing_ones():
    pids, labels = _random_cohort(80, 0)
    before = assign_patients(pids, labels, 3, 0.15, 0.2, seed=7)
    more, more_labels = _random_cohort(40, 1)
    after = assign_patients(pids + more, np.concatenate([labels, more_labels]), 3, 0.15, 0.2, 7)
    stable = [p for p in pids if p not in before.repaired and p not in after.repaired]
    assert len(stable) >= 75
    assert all(before.split_of[p] == after.split_of[p] for p in stable)
    # Adding more files of existing patients changes nothing at all.
    again = assign_patients(
        pids + pids[:10], np.concatenate([labels, labels[:10]]), 3, 0.15, 0.2, 7
    )
    assert again.split_of == before.split_of


def test_split_follows_the_seeded_hash_and_fractions():
    pids, labels = _random_cohort(400, 3)
    result = assign_patients(pids, labels, 3, 0.2, 0.25, seed=1)
    for pid in pids:
        if pid in result.repaired:
            continue
        pos = patient_position(pid, 1)
        expected = "test" if pos < 0.25 else "val" if pos < 0.45 else "train"
        assert result.split_of[pid] == expected
    share = np.mean([s == "test" for s in result.split_of.values()])
    assert 0.18 < share < 0.32
    digest = hashlib.sha256(b"1\x00" + pids[0].encode()).digest()
    assert patient_position(pids[0], 1) == int.from_bytes(digest[:8], "big") / 2.0**64


def test_a_class_with_one_patient_fails_and_says_why():
    pids = ["a", "a", "b", "c", "d"]
    labels = np.array([0, 0, 0, 0, 1])
    with pytest.raises(SplitError, match="class 'rare' has 1 patient"):
        assign_patients(pids, labels, 2, 0.2, 0.2, 0, class_names=["common", "rare"])


def test_two_patients_per_class_still_fill_test_and_train():
    pids = ["a", "b", "c", "d"]
    labels = np.array([0, 0, 1, 1])
    for seed in range(10):
        result = assign_patients(pids, labels, 2, 0.2, 0.2, seed)
        for name in ("train", "test"):
            held = {labels[pids.index(p)] for p, s in result.split_of.items() if s == name}
            assert held == {0, 1}
        assert set(result.val_missing) == {0, 1}


def test_pseudonym_is_hmac_sha256_and_depends_on_the_key():
    key = b"k" * 32
    expected = hmac.new(key, b"SYNTH001", hashlib.sha256).hexdigest()[:16]
    assert pseudonymise("SYNTH001", key) == f"pt-{expected}"
    assert pseudonymise("SYNTH001", b"j" * 32) != pseudonymise("SYNTH001", key)
    table = pseudonym_table(["x", "y", "x"], key)
    assert set(table) == {"x", "y"} and "x" not in "".join(table.values())


def test_key_from_env_or_created_file(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ValueError, match=KEY_ENV):
        load_pseudonym_key(None)

    key_file = tmp_path / "secret" / "pseudonym.key"
    key = load_pseudonym_key(key_file)
    assert len(key) == 64 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_pseudonym_key(key_file) == key

    monkeypatch.setenv(KEY_ENV, "e" * 40)
    assert load_pseudonym_key(key_file) == b"e" * 40
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(ValueError, match="at least 32"):
        load_pseudonym_key(None)


def test_key_file_inside_outputs_is_refused(tmp_path):
    with pytest.raises(ValueError, match="outside the data and output folders"):
        check_key_outside(tmp_path / "out" / "k.key", [tmp_path / "out"])
    check_key_outside(tmp_path / "k.key", [tmp_path / "out"])

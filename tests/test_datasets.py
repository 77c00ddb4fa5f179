"""Locating reference data: explicit root, DSPHNF_DATA, clean absence, and the file-or-mock loader."""
from __future__ import annotations

import numpy as np
import pytest

import dsphnf.datasets as datasets
from dsphnf.datasets import data_root, gaia_challenge_file, reference_or_mock, walker_file
from dsphnf.errors import DsphnfError
from dsphnf.mocks import TRUTH_COLUMNS, get_model

GAIA_NAME = "gs100_bs050_rcrs025_rarcinf_cusp_0064mpc3_df_1000_0.dat"


@pytest.fixture
def no_data_anywhere(tmp_path, monkeypatch):
    """No candidate folder holds data: the environment, the working directory and the checkout are empty."""
    monkeypatch.delenv("DSPHNF_DATA", raising=False)
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b")
    monkeypatch.setattr(datasets, "CHECKOUT", tmp_path / "checkout")
    return tmp_path


def _gaia_copy(folder, rows: np.ndarray):
    path = folder / "gaia_challenge" / "NonPlumCuspIso" / GAIA_NAME
    path.parent.mkdir(parents=True)
    np.savetxt(path, rows)
    return path


def test_folders_without_data_are_skipped(no_data_anywhere, monkeypatch) -> None:
    empty = no_data_anywhere / "empty"
    empty.mkdir()
    monkeypatch.setenv("DSPHNF_DATA", str(empty))
    assert data_root(empty) is None
    assert gaia_challenge_file("NonPlumCuspIso", root=empty) is None
    # an empty explicit root is passed over in favour of a folder that holds data
    full = no_data_anywhere / "full"
    _gaia_copy(full, np.zeros((3, 6)))
    monkeypatch.setenv("DSPHNF_DATA", str(full))
    assert data_root(empty) == full.resolve()


def test_env_variable_points_to_a_copy(tmp_path, monkeypatch) -> None:
    f = _gaia_copy(tmp_path, np.zeros((3, 6)))
    monkeypatch.setenv("DSPHNF_DATA", str(tmp_path))
    assert gaia_challenge_file("NonPlumCuspIso") == f
    assert gaia_challenge_file("NonPlumCuspIso", n=100) is None


def test_unknown_names_are_one_line_errors() -> None:
    with pytest.raises(DsphnfError, match="choose one of"):
        gaia_challenge_file("Spherical")
    with pytest.raises(DsphnfError, match="choose one of"):
        walker_file("Andromeda")


def test_reference_or_mock_reads_the_file_when_present(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(40, 6))
    _gaia_copy(tmp_path, rows)
    monkeypatch.setenv("DSPHNF_DATA", str(tmp_path))
    cat, truth, text = reference_or_mock("NonPlumCuspIso", n=1000)
    np.testing.assert_allclose(cat.x, rows[:, 0])
    np.testing.assert_allclose(cat.vz, rows[:, 5])
    assert text.startswith("Gaia Challenge NonPlumCuspIso") and str(tmp_path) not in text + cat.source
    assert set(truth) == set(TRUTH_COLUMNS)
    model = get_model("NonPlumCuspIso")
    np.testing.assert_allclose(truth["rho"], model.halo.density(truth["r"]), rtol=1e-12)


def test_reference_or_mock_draws_a_seeded_mock_when_absent(no_data_anywhere) -> None:
    a, truth, text = reference_or_mock("PlumCoreOm", n=60, seed=4)
    b, _, _ = reference_or_mock("PlumCoreOm", n=60, seed=4)
    c, _, _ = reference_or_mock("PlumCoreOm", n=60, seed=5)
    assert text.startswith("mock PlumCoreOm") and "seed 4" in text
    assert a.n == 60 and np.array_equal(a.vz, b.vz) and not np.array_equal(a.vz, c.vz)
    np.testing.assert_allclose(truth["beta"], get_model("PlumCoreOm").anisotropy.beta(truth["r"]), rtol=1e-12)


def test_shared_data_found_when_present(reference_data) -> None:
    path, distance = walker_file("Draco")
    assert path.name == "dra_spec.dat" and distance == 76.0
    assert path.parent.parent == reference_data
    assert gaia_challenge_file("PlumCoreOm", n=10000).exists()

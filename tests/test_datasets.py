"""Locating reference data: explicit root, DSPHNF_DATA, and clean absence."""
from __future__ import annotations

import numpy as np
import pytest

from dsphnf.datasets import data_root, gaia_challenge_file, walker_file
from dsphnf.errors import DsphnfError


def test_folders_without_data_are_skipped(tmp_path, monkeypatch) -> None:
    (tmp_path / "nowhere").mkdir()
    monkeypatch.setenv("DSPHNF_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    found = data_root(tmp_path / "nowhere")
    # empty candidates are passed over: either nothing or the checkout's real data folder
    assert found is None or (found / "gaia_challenge").is_dir() or (found / "walker_dwarfs").is_dir()
    assert found != (tmp_path / "nowhere").resolve()


def test_env_variable_points_to_a_copy(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "gaia_challenge" / "NonPlumCuspIso"
    folder.mkdir(parents=True)
    f = folder / "gs100_bs050_rcrs025_rarcinf_cusp_0064mpc3_df_1000_0.dat"
    np.savetxt(f, np.zeros((3, 6)))
    monkeypatch.setenv("DSPHNF_DATA", str(tmp_path))
    assert gaia_challenge_file("NonPlumCuspIso") == f
    assert gaia_challenge_file("NonPlumCuspIso", n=100) is None


def test_unknown_names_are_one_line_errors() -> None:
    with pytest.raises(DsphnfError, match="choose one of"):
        gaia_challenge_file("Spherical")
    with pytest.raises(DsphnfError, match="choose one of"):
        walker_file("Andromeda")


def test_shared_data_found_when_present() -> None:
    if data_root() is None:
        pytest.skip("../shared/data is absent")
    path, distance = walker_file("Draco")
    assert path.name == "dra_spec.dat" and distance == 76.0
    assert gaia_challenge_file("PlumCoreOm", n=10000).exists()

"""The galaxy table of the survey and the elliptical radius."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from dsphnf.catalog import Catalog, elliptical_radius
from dsphnf.datasets import WALKER_DWARFS
from dsphnf.errors import DsphnfError
from dsphnf.galaxies import GALAXIES, get_galaxy

from conftest import find_reference

ROOT = Path(__file__).resolve().parents[1]


def test_nine_galaxies_with_positive_distances_and_shapes() -> None:
    assert len(GALAXIES) == 9
    for g in GALAXIES.values():
        assert g.distance_kpc > 0 and 0 < g.distance_err_kpc < 0.2 * g.distance_kpc, g.key
        assert 0 <= g.ellipticity < 1 and 0 <= g.position_angle_deg < 180, g.key
        assert 0 <= g.ra_deg < 360 and -90 <= g.dec_deg <= 90 and g.half_light_arcmin > 0, g.key


def test_distances_agree_with_the_catalogue_papers() -> None:
    """Every table distance lies within one sigma of the distance the catalogue's own paper used."""
    for g in GALAXIES.values():
        file, peer = WALKER_DWARFS[g.key]
        assert file == g.file
        assert abs(g.distance_kpc - peer) < g.distance_err_kpc, (g.key, g.distance_kpc, peer)


def test_citations_are_in_the_bibliography() -> None:
    keys = set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text(), flags=re.M))
    assert {g.source for g in GALAXIES.values()} <= keys


def test_every_catalogue_is_found_and_centred() -> None:
    """Each file exists; the stars' RA/Dec projected about the table centre give the file's offsets."""
    find_reference("walker_dwarfs")
    for g in GALAXIES.values():
        t = np.loadtxt(g.catalogue_path(), usecols=(0, 1, 2, 3))
        a0, d0, a, d = np.deg2rad(g.ra_deg), np.deg2rad(g.dec_deg), np.deg2rad(t[:, 0]), np.deg2rad(t[:, 1])
        den = np.sin(d) * np.sin(d0) + np.cos(d) * np.cos(d0) * np.cos(a - a0)
        xi = np.rad2deg(np.cos(d) * np.sin(a - a0) / den) * 60.0  # arcmin, east positive
        assert np.median(np.abs(t[:, 2] - xi)) < 1.5, g.key  # the files' centres are within ~1 arcmin of the table's


def test_elliptical_radius_against_a_hand_computation() -> None:
    """e = 0.5, PA = 30 deg, the point (x, y) = (1, 2).

    x_maj = 1 sin 30 + 2 cos 30 = 0.5 + 1.7320508 = 2.2320508,
    x_min = 1 cos 30 - 2 sin 30 = 0.8660254 - 1 = -0.1339746,
    R_ell^2 = 0.5 x_maj^2 + x_min^2 / 0.5 = 2.4910254 + 0.0358984 = 2.5269238, R_ell = 1.5896301.
    """
    r = elliptical_radius(np.array([1.0]), np.array([2.0]), 0.5, 30.0)
    assert r[0] == pytest.approx(1.5896301, abs=1e-6)
    assert elliptical_radius(np.array([3.0]), np.array([4.0]), 0.0, 77.0)[0] == pytest.approx(5.0)


def test_elliptical_catalogue_keeps_angles_and_area() -> None:
    """Stars on one ellipse of semi-axes a, a(1-e) all get R = a sqrt(1-e); their angles are kept."""
    e, pa, a = 0.4, 120.0, 0.3
    t = np.linspace(0, 2 * np.pi, 50, endpoint=False)
    u, v = a * np.cos(t), a * (1 - e) * np.sin(t)  # along major, minor
    p = np.deg2rad(pa)
    x, y = u * np.sin(p) + v * np.cos(p), u * np.cos(p) - v * np.sin(p)
    cat = Catalog(x, y, np.zeros(50)).with_elliptical_radius(e, pa)
    assert np.allclose(cat.R, a * np.sqrt(1 - e))
    assert np.allclose(np.arctan2(cat.y, cat.x), np.arctan2(y, x))
    assert cat.meta["radius"] == "elliptical"


def test_unknown_galaxy_is_one_line() -> None:
    with pytest.raises(DsphnfError, match="unknown galaxy 'Andromeda'; choose from carina"):
        get_galaxy("Andromeda")
    assert get_galaxy("Canes Venatici I").key == "cvn1"

"""Locating the reference data sets (Gaia Challenge mocks, real dSph catalogues).

The files are third-party public data and are not shipped with dsphnf. They
are looked up, in order, in

1. an explicit ``root`` argument,
2. the folder named by the environment variable ``DSPHNF_DATA``,
3. ``../shared/data`` relative to the current directory and to the source
   checkout (the layout used by this project's tests and book).

Gaia Challenge spherical mocks: Walker & Penarrubia 2011 (ApJ 742, 20);
Walker-format spectroscopic catalogues: Walker et al. 2009 (AJ 137, 3100),
2015 (MNRAS 448, 2717), Spencer et al. 2017, 2018, Mateo et al. 2008.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DsphnfError

if TYPE_CHECKING:  # pragma: no cover
    from .catalog import Catalog
    from .mocks import GaiaModel

__all__ = ["data_root", "gaia_challenge_file", "walker_file", "reference_or_mock", "WALKER_DWARFS"]

#: Walker-format catalogues: galaxy -> (file name, distance used by peers [kpc]).
WALKER_DWARFS: dict[str, tuple[str, float]] = {
    "draco": ("dra_spec.dat", 76.0),
    "fornax": ("for_spec.dat", 138.0),
    "sculptor": ("scl_spec.dat", 86.0),
    "carina": ("car_spec.dat", 105.0),
    "sextans": ("sex_spec.dat", 86.0),
    "ursaminor": ("umi_spec.dat", 76.0),
    "leo1": ("leo1_spec.dat", 254.0),
    "leo2": ("leo2_spec.dat", 233.0),
    "cvn1": ("cvn1_spec.dat", 218.0),
}

#: The source checkout holding this package (its sibling ``shared/data`` is the last place looked in).
CHECKOUT = Path(__file__).resolve().parents[1]

_GAIA_FILES = {
    "NonPlumCuspIso": "gs100_bs050_rcrs025_rarcinf_cusp_0064mpc3_df_{n}_{k}{err}.dat",
    "PlumCuspIso": "gs010_bs050_rcrs025_rarcinf_cusp_0064mpc3_df_{n}_{k}{err}.dat",
    "PlumCoreOm": "gs010_bs050_rcrs025_rarc100_core_0400mpc3_df_{n}_{k}{err}.dat",
    "PlumCuspOm": "gs010_bs050_rcrs010_rarc100_cusp_0064mpc3_df_{n}_{k}{err}.dat",
}


def data_root(root: str | os.PathLike | None = None) -> Path | None:
    """The reference-data folder, or None when it cannot be found.

    A candidate counts only if it holds ``gaia_challenge/`` or
    ``walker_dwarfs/``; empty or missing folders are passed over.
    """
    candidates = []
    if root is not None:
        candidates.append(Path(root))
    if os.environ.get("DSPHNF_DATA"):
        candidates.append(Path(os.environ["DSPHNF_DATA"]))
    candidates += [Path.cwd() / ".." / "shared" / "data", Path.cwd().parent / ".." / "shared" / "data",
                   CHECKOUT.parent / "shared" / "data"]
    for c in candidates:
        if (c / "gaia_challenge").is_dir() or (c / "walker_dwarfs").is_dir():
            return c.resolve()
    return None


def gaia_challenge_file(model: str, n: int = 1000, realisation: int = 0, errors: bool = False,
                        root: str | os.PathLike | None = None) -> Path | None:
    """Path of a Gaia Challenge mock (x y z vx vy vz per line), or None if absent.

    Parameters
    ----------
    model : str
        One of NonPlumCuspIso, PlumCuspIso, PlumCoreOm, PlumCuspOm.
    n : int
        Number of stars in the file (100, 1000 or 10000 where available).
    realisation : int
        Realisation index k of ``df_N_k``.
    errors : bool
        The ``_err`` variant with 2 km/s velocity errors.
    """
    if model not in _GAIA_FILES:
        raise DsphnfError(f"no Gaia Challenge files known for {model!r}; choose one of {', '.join(_GAIA_FILES)}")
    base = data_root(root)
    if base is None:
        return None
    path = base / "gaia_challenge" / model / _GAIA_FILES[model].format(n=n, k=realisation, err="_err" if errors else "")
    return path if path.exists() else None


def walker_file(galaxy: str, root: str | os.PathLike | None = None) -> tuple[Path, float] | None:
    """(path, distance [kpc]) of a real dSph catalogue, or None if absent.

    ``galaxy`` is a key of :data:`WALKER_DWARFS` (case and spaces ignored).
    """
    key = galaxy.lower().replace(" ", "").replace("_", "")
    if key not in WALKER_DWARFS:
        raise DsphnfError(f"unknown galaxy {galaxy!r}; choose one of {', '.join(WALKER_DWARFS)}")
    base = data_root(root)
    if base is None:
        return None
    name, distance = WALKER_DWARFS[key]
    path = base / "walker_dwarfs" / name
    return (path, distance) if path.exists() else None


def reference_or_mock(model: "str | GaiaModel", n: int = 1000, seed: int = 0, *, realisation: int = 0,
                      root: str | os.PathLike | None = None) -> tuple["Catalog", dict, str]:
    """The Gaia Challenge catalogue of a model when the data are present, else a mock of it.

    Reads ``gaia_challenge/<model>/..._df_<n>_<realisation>.dat`` from the
    reference-data folder (:func:`data_root`: ``root``, ``DSPHNF_DATA`` or
    ``../shared/data``); without it, draws ``n`` stars of the same model with
    :func:`dsphnf.mocks.draw_mock` and ``seed``. Either way the stars are
    projected along z (``x, y`` [kpc], ``vz`` [km/s]).

    Parameters
    ----------
    model : str or GaiaModel
        NonPlumCuspIso, PlumCuspIso, PlumCoreOm or PlumCuspOm (the models with
        reference files; any model of :data:`dsphnf.mocks.MODELS` is drawn).
    n : int
        Number of stars (100, 1000 or 10000 for the files).
    seed : int
        Random seed of the mock drawn when the file is absent.
    realisation : int
        Realisation index of the Gaia Challenge file.
    root : path, optional
        Reference-data folder to look in first.

    Returns
    -------
    (Catalog, dict, str)
        The stars; the true profiles (columns :data:`dsphnf.mocks.TRUTH_COLUMNS`
        on :func:`dsphnf.mocks.truth_grid`: ``r`` [kpc], ``nu`` [kpc^-3, one
        star], ``sigma_r`` [km/s], ``beta``, ``M`` [Msun], ``rho``
        [Msun/kpc^3]); and a one-line description of where the stars came
        from, naming no folder.

    Examples
    --------
    >>> cat, truth, text = reference_or_mock("PlumCuspIso", n=100, seed=3, root="/nonexistent")
    >>> cat.n, truth["rho"].shape == truth["r"].shape
    (100, True)
    >>> text.startswith(("Gaia Challenge", "mock"))
    True
    """
    from dataclasses import replace

    from .catalog import read_catalog
    from .mocks import TRUTH_COLUMNS, draw_mock, get_model, truth_grid, truth_profiles

    gaia_model = get_model(model) if isinstance(model, str) else model
    path = gaia_challenge_file(gaia_model.name, n=n, realisation=realisation, root=root) \
        if gaia_model.name in _GAIA_FILES else None
    if path is None:
        mock = draw_mock(gaia_model, n=n, seed=seed)
        return mock.catalog, mock.truth, (f"mock {gaia_model.name}: {n} stars drawn by dsphnf.mocks (seed {seed}); "
                                          "the Gaia Challenge file was not found")
    text = f"Gaia Challenge {gaia_model.name}: {n} stars (realisation {realisation}, file {path.name})"
    cat = replace(read_catalog(path), source=f"Gaia Challenge {gaia_model.name} ({path.name})")
    truth = truth_profiles(gaia_model, truth_grid(gaia_model))
    return cat, {k: truth[k] for k in TRUTH_COLUMNS}, text

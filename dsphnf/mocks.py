"""The Gaia Challenge spherical mock dwarf galaxies, as equilibrium models.

Walker & Penarrubia (2011, ApJ 742, 20) models: a Zhao (2, 5, gamma*) stellar
tracer of scale r* in a Zhao (1, 3, gamma) dark-matter halo with
r_DM = 1 kpc, either a cusp (gamma = 1, rho0 = 6.4e7 Msun/kpc^3) or a core
(gamma = 0, rho0 = 4.0e8 Msun/kpc^3), isotropic or Osipkov-Merritt with
r_a = r*.  :func:`sample_stars` draws (x, y, z, vx, vy, vz) catalogues in the
Gaia Challenge file layout from the exact distribution function
(:class:`dsphnf.df.EddingtonDF`); :func:`truth_profiles` returns the true
nu, sigma_r, beta, M and rho.  Units: kpc, km/s, Msun.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .anisotropy import Anisotropy, Isotropic, OsipkovMerritt
from .catalog import Catalog
from .df import EddingtonDF
from .dwarf import DwarfModel, build_model, model_truth, sample_model
from .errors import DsphnfError
from .profiles import Zhao, tracer_zhao

__all__ = [
    "GaiaModel",
    "MODELS",
    "R_DM",
    "distribution_function",
    "get_model",
    "make_model",
    "sample_stars",
    "truth_profiles",
    "model_from_filename",
    "Mock",
    "draw_mock",
    "truth_grid",
    "TRUTH_COLUMNS",
    "TRUTH_POINTS",
    "TRUTH_SPAN",
    "J_THETA_DEG",
    "DwarfModel",
]

#: Columns of a truth table, in order, with units.
TRUTH_COLUMNS = ("r", "nu", "sigma_r", "beta", "M", "rho")
#: Points of the logarithmic truth grid, and its span in tracer scale radii.
TRUTH_POINTS = 200
TRUTH_SPAN = (0.01, 10.0)

#: Dark-matter scale radius of every Gaia Challenge spherical model [kpc].
R_DM: float = 1.0
_HALO_RHO0 = {"cusp": 6.4e7, "core": 4.0e8}  # Msun/kpc^3
_HALO_GAMMA = {"cusp": 1.0, "core": 0.0}


@dataclass(frozen=True)
class GaiaModel:
    """One spherical Gaia Challenge model.

    Attributes
    ----------
    name : str
        E.g. ``"NonPlumCuspIso"``.
    tracer : Zhao
        Stellar number density [kpc^-3], normalised to one star.
    halo : Zhao
        Dark-matter density [Msun/kpc^3].
    anisotropy : Anisotropy
        ``Isotropic()`` or ``OsipkovMerritt(r_a)`` (r_a in kpc).
    """

    name: str
    tracer: Zhao
    halo: Zhao
    anisotropy: Anisotropy

    @property
    def r_star(self) -> float:
        """Stellar scale radius r* [kpc]."""
        return self.tracer.rs


def make_model(name: str, gamma_star: float, r_star: float, dm: str, om: bool,
               ra_over_rstar: float = 1.0) -> GaiaModel:
    """Build a Gaia Challenge model from its parameters.

    Parameters
    ----------
    name : str
        Label.
    gamma_star : float
        Inner slope of the stars (alpha* = 2, beta* = 5).
    r_star : float
        Stellar scale radius [kpc].
    dm : {"cusp", "core"}
        Dark-matter halo.
    om : bool
        Osipkov-Merritt (r_a = ra_over_rstar * r*) if True, else isotropic.
    """
    halo = Zhao(_HALO_RHO0[dm], R_DM, 1.0, 3.0, _HALO_GAMMA[dm])
    aniso: Anisotropy = OsipkovMerritt(ra_over_rstar * r_star) if om else Isotropic()
    return GaiaModel(name, tracer_zhao(r_star, gamma_star, 5.0, 2.0), halo, aniso)


_TABLE = [  # name, gamma*, r* [kpc], dm, om
    ("PlumCoreIso", 0.1, 1.0, "core", False),
    ("NonPlumCoreIso", 1.0, 1.0, "core", False),
    ("PlumCuspIso", 0.1, 0.25, "cusp", False),
    ("NonPlumCuspIso", 1.0, 0.25, "cusp", False),
    ("PlumCoreOm", 0.1, 0.25, "core", True),
    ("NonPlumCoreOm", 1.0, 0.25, "core", True),
    ("PlumCuspOm", 0.1, 0.10, "cusp", True),
    ("NonPlumCuspOm", 1.0, 0.10, "cusp", True),
]

#: The eight spherical Gaia Challenge models, by name.
MODELS: dict[str, GaiaModel] = {row[0]: make_model(*row) for row in _TABLE}


def get_model(name: str) -> GaiaModel:
    """The model called ``name`` (case-insensitive).

    Raises
    ------
    DsphnfError
        For an unknown name (the message lists the valid ones).
    """
    for key, model in MODELS.items():
        if key.lower() == str(name).strip().lower():
            return model
    raise DsphnfError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")


@functools.lru_cache(maxsize=16)
def _df(tracer: Zhao, halo: Zhao, anisotropy: Anisotropy) -> EddingtonDF:
    return EddingtonDF(tracer, halo, anisotropy)


def distribution_function(model: GaiaModel) -> EddingtonDF:
    """The (cached) equilibrium distribution function of ``model``."""
    return _df(model.tracer, model.halo, model.anisotropy)


def sample_stars(model: GaiaModel | str, n: int, seed: int = 0, verr: float = 0.0) -> np.ndarray:
    """Draw a mock catalogue in the Gaia Challenge layout.

    Parameters
    ----------
    model : GaiaModel or str
        The model (or its name).
    n : int
        Number of stars.
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives the same stars.
    verr : float
        Gaussian error [km/s] added to each velocity component (the Gaia
        Challenge ``*_err.dat`` files use 2 km/s).

    Returns
    -------
    ndarray, shape (n, 6)
        x, y, z [kpc], vx, vy, vz [km/s].
    """
    if isinstance(model, str):
        model = get_model(model)
    if n < 1:
        raise DsphnfError(f"number of stars must be positive, got {n}")
    if verr < 0:
        raise DsphnfError(f"velocity error must be >= 0 km/s, got {verr}")
    rng = np.random.default_rng(seed)
    stars = distribution_function(model).sample(n, rng)
    if verr > 0:
        stars[:, 3:] += rng.normal(0.0, verr, size=(n, 3))
    return stars


def truth_profiles(model: GaiaModel | str, r: np.ndarray) -> dict[str, np.ndarray]:
    """True profiles of ``model`` at radii ``r`` [kpc].

    Returns
    -------
    dict
        ``r`` [kpc], ``nu`` [kpc^-3, one star], ``sigma_r`` [km/s], ``beta``,
        ``M`` [Msun] and ``rho`` [Msun/kpc^3] (dark matter; the stars are massless).
    """
    from .jeans import jeans_profiles

    if isinstance(model, str):
        model = get_model(model)
    r = np.asarray(r, dtype=float)
    return jeans_profiles(r, model.tracer.density, model.halo.mass, model.anisotropy)


_NAME_RE = re.compile(
    r"gs(?P<gs>\d+)_bs(?P<bs>\d+)_rcrs(?P<rc>\d+)_rarc(?P<ra>inf|\d+)_(?P<dm>cusp|core)_(?P<rho>\d+)mpc3"
)


def model_from_filename(path: str | Path) -> GaiaModel | None:
    """The model encoded in a Gaia Challenge file name, or None if it has no such code.

    ``gs100_bs050_rcrs025_rarcinf_cusp_0064mpc3_df_1000_0.dat`` means
    gamma* = 1.00, beta* = 5.0, r*/r_DM = 0.25, isotropic (``rarc100``:
    Osipkov-Merritt with r_a = 1.00 r*), cusp halo with
    rho0 = 0.064 Msun/pc^3 = 6.4e7 Msun/kpc^3.  Returns the matching entry of
    :data:`MODELS` when there is one, else a model named after the file.
    """
    m = _NAME_RE.search(Path(path).name)
    if m is None:
        return None
    gamma_star = int(m["gs"]) / 100.0
    beta_star = int(m["bs"]) / 10.0
    r_star = int(m["rc"]) / 100.0 * R_DM
    om = m["ra"] != "inf"
    ra_ratio = int(m["ra"]) / 100.0 if om else 1.0
    dm = m["dm"]
    rho0 = int(m["rho"]) * 1e6  # 1e-3 Msun/pc^3 = 1e6 Msun/kpc^3
    halo = Zhao(rho0, R_DM, 1.0, 3.0, _HALO_GAMMA[dm])
    aniso: Anisotropy = OsipkovMerritt(ra_ratio * r_star) if om else Isotropic()
    tracer = tracer_zhao(r_star, gamma_star, beta_star, 2.0)
    for model in MODELS.values():
        if model.tracer == tracer and model.halo == halo and model.anisotropy == aniso:
            return model
    return GaiaModel(Path(path).stem, tracer, halo, aniso)


class Mock(NamedTuple):
    """A drawn mock: the projected catalogue, the true profiles and the model they came from.

    For a named model ``truth`` has the columns :data:`TRUTH_COLUMNS` on
    :func:`truth_grid`: ``r`` [kpc], ``nu`` [kpc^-3, one star], ``sigma_r``
    [km/s], ``beta``, ``M`` [Msun], ``rho`` [Msun/kpc^3]; a general model adds
    ``sigma_t`` [km/s, one component] and, for a mixture, ``nu_K``/``beta_K``
    per population (:func:`dsphnf.dwarf.model_truth`).  A general model's
    catalogue carries ``meta["population"]`` (int per star) and, with a
    distance, ``meta["jfactor"]`` (``log10_J`` within ``theta_deg`` = 0.5 deg
    [log10 GeV^2 cm^-5], ``distance_kpc``).
    """

    catalog: Catalog
    truth: dict
    model: "GaiaModel | DwarfModel"


def truth_grid(model: "GaiaModel | DwarfModel") -> np.ndarray:
    """Logarithmic radial grid [kpc] of a truth table: 0.01 to 10 tracer scale radii, 200 points.

    For a multi-population tracer: 0.01 of the smallest to 10 of the largest scale radius.
    """
    lo = getattr(model, "r_star_min", model.r_star)
    return np.geomspace(TRUTH_SPAN[0] * lo, TRUTH_SPAN[1] * model.r_star, TRUTH_POINTS)


#: Half-angle [deg] of the true J-factor written with a distance.
J_THETA_DEG = 0.5


def draw_mock(model: "str | GaiaModel | DwarfModel | None" = None, n: int = 1000, seed: int = 0,
              verr: float | None = None, *, halo=None, tracer=None, anisotropy=None,
              distance: float | None = None) -> Mock:
    """Draw ``n`` stars of an equilibrium model, projected along z, with the true profiles.

    Either a named Gaia Challenge model, or a general one from ``halo``,
    ``tracer`` and ``anisotropy`` (spellings of ``dsphnf mock`` or parsed
    objects, see :func:`dsphnf.dwarf.build_model`).

    Parameters
    ----------
    model : str, GaiaModel or DwarfModel, optional
        A model or the name of one (:data:`MODELS`, case-insensitive).
    n : int
        Number of stars (>= 1).
    seed : int
        Random seed; the same seed gives the same stars.
    verr : float, optional
        Gaussian velocity error [km/s] added to vz and recorded as ``vz_err``.
    halo, tracer, anisotropy
        The general model (``anisotropy`` None: isotropic; one per population with ';').
    distance : float, optional
        Distance [kpc]; adds the true log10 J(0.5 deg) to ``catalog.meta["jfactor"]``.

    Returns
    -------
    Mock
        ``(catalog, truth, model)``.

    Raises
    ------
    DsphnfError
        A malformed spelling, or a model whose distribution function is negative
        somewhere (one line naming the reason and the limit; nothing is sampled).

    Examples
    --------
    >>> cat, truth, model = draw_mock("PlumCuspIso", n=50, seed=1)
    >>> cat.n, model.name, sorted(truth)[:3]
    (50, 'PlumCuspIso', ['M', 'beta', 'nu'])
    >>> cat, truth, model = draw_mock(halo="burkert:4e8,1", tracer="0.5*zhao:0.1,2,5,1+0.5*plummer:0.3",
    ...                               anisotropy="constant:0.25;isotropic", n=40, seed=2)
    >>> np.unique(cat.meta["population"]).tolist(), "sigma_t" in truth, "beta_1" in truth
    ([0, 1], True, True)
    """
    if verr is not None and not (np.isfinite(verr) and verr >= 0):
        raise DsphnfError(f"velocity error must be a non-negative number of km/s, got {verr:g}")
    if distance is not None and not (np.isfinite(distance) and distance > 0):
        raise DsphnfError(f"distance must be a positive number of kpc, got {distance:g}")
    general = halo is not None or tracer is not None or isinstance(model, DwarfModel)
    if not general:
        if anisotropy is not None:
            raise DsphnfError("anisotropy goes with halo and tracer; a named model has its own")
        return _draw_named(model, n, seed, verr, distance)
    if model is not None and (not isinstance(model, DwarfModel) or halo is not None or tracer is not None
                              or anisotropy is not None):
        raise DsphnfError("give either a model or halo and tracer (and anisotropy), not both")
    if not isinstance(model, DwarfModel):
        if halo is None or tracer is None:
            raise DsphnfError("a general mock needs both halo and tracer")
        model = build_model(halo, tracer, anisotropy)
    if int(n) < 1:
        raise DsphnfError(f"number of stars must be positive, got {n}")
    rng = np.random.default_rng(seed)
    xv, pop = sample_model(model, int(n), rng)
    if verr:
        xv[:, 3:] += rng.normal(0.0, float(verr), size=(len(xv), 3))
    cat = Catalog.from_phase_space(xv, verr, source=f"mock:{model.name}", model=model.name, seed=seed,
                                   population=pop)
    _add_jfactor(cat, model, distance)
    truth = model_truth(model, truth_grid(model))
    return Mock(cat, truth, model)


def _draw_named(model, n, seed, verr, distance) -> Mock:
    if model is None:
        raise DsphnfError(f"give a model name ({', '.join(MODELS)}) or halo and tracer")
    if isinstance(model, str):
        model = get_model(model)
    xv = sample_stars(model, n, seed=seed, verr=0.0 if verr is None else float(verr))
    cat = Catalog.from_phase_space(xv, verr, source=f"mock:{model.name}", model=model.name, seed=seed)
    _add_jfactor(cat, model, distance)
    truth = truth_profiles(model, truth_grid(model))
    return Mock(cat, {k: np.asarray(truth[k], dtype=float) for k in TRUTH_COLUMNS}, model)


def _add_jfactor(cat: Catalog, model, distance: float | None) -> None:
    """Record the true log10 J(0.5 deg) [log10 GeV^2 cm^-5] of the halo at ``distance`` [kpc]."""
    if distance is None:
        return
    from .jfactor import log10_j_factor

    cat.meta["distance_kpc"] = float(distance)
    cat.meta["jfactor"] = {"log10_J": log10_j_factor(model.halo.density, float(distance), J_THETA_DEG),
                           "distance_kpc": float(distance), "theta_deg": J_THETA_DEG}

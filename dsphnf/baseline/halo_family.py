"""The baseline's halo families: their parameters, and rho(r), M(<r) and halo objects of posterior draws.

Two kinds of family (:data:`HALOS`):

- **Zhao** ``zhao-alpha`` (default, :data:`DEFAULT_HALO`), ``zhao``, ``nfw``,
  ``cored``: rho = rho0 x^-gamma (1 + x^alpha_dm)^((gamma - beta_dm)/alpha_dm),
  x = r / r_s, with the parameters each family fixes.  Its transition between
  the inner and outer slope is smooth; on the Gaia Challenge mocks the data
  often prefer the sharpest one the box allows (alpha_dm = 3, a broken power
  law in the limit), and the posterior has no volume beyond it.
- **Broken power law** ``broken``: ln rho piecewise linear in ln r with nodes at
  :data:`BROKEN_NODES` x R_half (R_half/4 to 4 R_half, R_half the stars'
  median projected radius), the density at R_half (``log10_rho_half``) and
  the four slopes between nodes (``gamma_1`` ... ``gamma_4``; U(0, 2) for
  the first, which also holds inwards, as for the Zhao inner slope, U(0, 3)
  for the others) free; inwards of R_half/4 the first slope goes on,
  outwards of 4 R_half the last one or r^-2 if that is shallower (haloes
  steepen outwards; a J-factor of a shallower continuation diverges).  A prior
  flat in the slopes is flat in ln rho at the nodes, and the family holds
  cusps, sharp turns and the broken power law inside it, where the Zhao
  family has its edge (:mod:`dsphnf.broken`); its own edge is a flat core,
  gamma_1 = 0.  Over 20 mocks of each model (benchmarks/RESULTS.md) its
  posterior bands covered nominally on the three Gaia Challenge models, an
  Einasto halo and 300 stars, where ``zhao-alpha``'s are too narrow, but its
  density scattered 2-3 times as much, and on Burkert cores its centre came
  out too dense (+0.2 dex at R_half/4): an option, not the default.

Every function takes the parameters as :meth:`BaselineModel.unpack` returns
them (arrays over posterior draws) and reads the family from their keys.

Examples
--------
>>> p = unpack_halo("broken", lambda n: np.array([8.0 if n == "log10_rho_half" else 1.0]), 0.2)
>>> np.round(np.log10(halo_density(p, np.array([0.05, 0.2, 0.8]))), 6)
array([[8.60206, 8.     , 7.39794]])
>>> [round(r, 6) for r in halo_object(p, 0).nodes]
[0.05, 0.1, 0.2, 0.4, 0.8]
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from ..broken import BrokenPowerLaw, broken_log_density, broken_log_slope, broken_mass
from ..errors import FitError
from ..profiles import zhao_mass_inner
from .projector import zhao_log_density

__all__ = ["HALOS", "DEFAULT_HALO", "BROKEN_NODES", "BROKEN_OUTER_MIN", "halo_family", "halo_parameters",
           "normalisation", "unpack_halo", "halo_log10_density", "halo_density", "halo_log_slope", "halo_mass",
           "halo_object"]

#: Named halo families: the halo parameters each one fixes, and their values.  ``zhao`` is the gNFW
#: (alpha_dm = 1); ``zhao-alpha`` frees the transition sharpness alpha_dm; ``broken`` is the broken
#: power law (its own parameters, none fixed).
HALOS: dict[str, dict[str, float]] = {"zhao-alpha": {}, "zhao": {"alpha_dm": 1.0},
                                      "nfw": {"gamma": 1.0, "alpha_dm": 1.0}, "cored": {"gamma": 0.0, "alpha_dm": 1.0},
                                      "broken": {}}
#: The default halo family (``dsphnf baseline --halo``, ``dsphnf calibrate --fit-halo``): over 20 mocks of
#: each of four haloes its bands covered as often as or more often than the gNFW's on three of them
#: (a Burkert core 0.58 / 0.86 against 0.25 / 0.55), losing 0.05 / 0.04 on a gNFW cusp.
DEFAULT_HALO = "zhao-alpha"

#: Nodes of the ``broken`` family in units of R_half (the density at the middle one is ``log10_rho_half``).
BROKEN_NODES = (0.25, 0.5, 1.0, 2.0, 4.0)
#: Shallowest slope -d ln rho / d ln r of the ``broken`` family outwards of its last node (isothermal).
BROKEN_OUTER_MIN = 2.0

_ZHAO = ("log10_rho0", "log10_rs", "gamma", "alpha_dm", "beta_dm")
_BROKEN = ("log10_rho_half", *(f"gamma_{k}" for k in range(1, len(BROKEN_NODES))))
#: Every halo parameter of any family.
HALO_PARAMETER_NAMES = frozenset(_ZHAO + _BROKEN)


def halo_family(name: str, flag: str = "halo", error: type[Exception] = FitError) -> str:
    """``name`` if it is a family of :data:`HALOS`, else ``error`` in one line naming ``flag``.

    Examples
    --------
    >>> halo_family("zhao")
    'zhao'
    >>> halo_family("burkert", "--fit-halo")
    Traceback (most recent call last):
    ...
    dsphnf.errors.FitError: unknown --fit-halo 'burkert': use one of zhao-alpha, zhao, nfw, cored, broken
    """
    if name not in HALOS:
        raise error(f"unknown {flag} {name!r}: use one of {', '.join(HALOS)}")
    return name


def halo_parameters(halo: str) -> tuple[str, ...]:
    """Names (:data:`~dsphnf.baseline.priors.PARAMETERS`) of the halo parameters of family ``halo``."""
    return _BROKEN if halo == "broken" else _ZHAO


def normalisation(halo: str) -> str:
    """The parameter that scales the density at every radius alike (log10 rho0 or log10 rho(R_half))."""
    return halo_parameters(halo)[0]


def unpack_halo(halo: str, get: Callable[[str], np.ndarray], r_half: float | None) -> dict[str, np.ndarray]:
    """Physical halo parameters of family ``halo`` from ``get(name)`` (arrays (B,)); key ``valid_halo``.

    Zhao: ``rho0`` [Msun/kpc^3], ``rs`` [kpc], ``gamma``, ``alpha_dm``, ``beta_dm``.  Broken:
    ``ln_nodes`` (B, K) [ln kpc], ``ln_rho_nodes`` (B, K) [ln Msun/kpc^3], ``inner`` and ``outer`` (B,).
    """
    if halo != "broken":
        p = {"rho0": 10.0 ** get("log10_rho0"), "rs": 10.0 ** get("log10_rs"), "gamma": get("gamma"),
             "alpha_dm": get("alpha_dm"), "beta_dm": get("beta_dm")}
        p["valid_halo"] = (p["gamma"] < 3) & (p["alpha_dm"] > 0) & (p["beta_dm"] > p["gamma"])
        return p
    if r_half is None:
        raise FitError(f"the {halo} halo family needs the data's R_half for its nodes")
    gammas = np.stack([get(n) for n in halo_parameters(halo)[1:]], axis=1)  # (B, K - 1)
    ln_step = np.diff(np.log(BROKEN_NODES))  # ln of the ratios of neighbouring nodes
    drop = np.concatenate([np.zeros((len(gammas), 1)), np.cumsum(gammas * ln_step, axis=1)], axis=1)
    mid = BROKEN_NODES.index(1.0)
    ln_rho = get("log10_rho_half")[:, None] * np.log(10.0) - (drop - drop[:, mid:mid + 1])
    ln_nodes = np.broadcast_to(np.log(r_half * np.asarray(BROKEN_NODES)), ln_rho.shape)
    return {"ln_nodes": ln_nodes, "ln_rho_nodes": ln_rho, "inner": gammas[:, 0],
            "outer": np.maximum(gammas[:, -1], BROKEN_OUTER_MIN),
            "valid_halo": (gammas[:, 0] < 3.0) & np.all(gammas >= 0.0, axis=1)}


def _broken(p: Mapping[str, np.ndarray], s: np.ndarray | float = 1.0) -> tuple[np.ndarray, ...]:
    """The broken family's arrays for a halo seen at s times the distance (radii x s, density / s^2)."""
    s = np.asarray(s, dtype=float).reshape(-1, 1)
    return p["ln_nodes"] + np.log(s), p["ln_rho_nodes"] - 2.0 * np.log(s), p["inner"], p["outer"]


def halo_log10_density(p: Mapping[str, np.ndarray], r: np.ndarray) -> np.ndarray:
    """log10 rho [Msun/kpc^3] of B draws at radii ``r`` [kpc] ((n,) shared, or (B, n)) -> (B, n)."""
    if "ln_nodes" in p:
        return broken_log_density(r, *_broken(p)) / np.log(10.0)
    r = np.asarray(r, dtype=float)
    if r.ndim == 1:
        ln_shape = zhao_log_density(r, p["rs"], p["alpha_dm"], p["beta_dm"], p["gamma"])
    else:  # radii of their own per row
        lx = np.log(r / p["rs"][:, None])
        a, g, b = (p[k][:, None] for k in ("alpha_dm", "gamma", "beta_dm"))
        ln_shape = -g * lx + (g - b) / a * np.logaddexp(0.0, a * lx)
    return np.log10(p["rho0"])[:, None] + ln_shape / np.log(10.0)


def halo_density(p: Mapping[str, np.ndarray], r: np.ndarray) -> np.ndarray:
    """rho [Msun/kpc^3] of B draws at radii ``r`` [kpc] ((n,) or (B, n)) -> (B, n)."""
    return 10.0 ** halo_log10_density(p, r)


def halo_log_slope(p: Mapping[str, np.ndarray], r: np.ndarray) -> np.ndarray:
    """d ln rho / d ln r of B draws at radii ``r`` [kpc] ((n,) or (B, n)) -> (B, n)."""
    if "ln_nodes" in p:
        return broken_log_slope(r, *_broken(p))
    xa = (np.asarray(r, dtype=float) / p["rs"][:, None]) ** p["alpha_dm"][:, None]
    g, b = p["gamma"][:, None], p["beta_dm"][:, None]
    return -g + (g - b) * xa / (1.0 + xa)


def halo_mass(p: Mapping[str, np.ndarray], r: np.ndarray) -> np.ndarray:
    """M(<r) [Msun] of B draws at radii ``r`` [kpc] ((n,) or (B, n)) -> (B, n), closed forms."""
    if "ln_nodes" in p:
        return broken_mass(r, *_broken(p))
    r = np.asarray(r, dtype=float)
    rr = np.broadcast_to(r, (len(p["rs"]), r.shape[-1]))
    col = lambda k: p[k][:, None]  # noqa: E731
    inner = zhao_mass_inner(rr / col("rs"), col("alpha_dm"), col("beta_dm"), col("gamma"))
    return 4.0 * np.pi * col("rho0") * col("rs") ** 3 * inner


def halo_object(p: Mapping[str, np.ndarray], i: int, s: float = 1.0):
    """Draw ``i`` as a :class:`~dsphnf.halos.Halo`, seen at ``s`` times the distance (radii x s, rho / s^2)."""
    if "ln_nodes" in p:
        row = {k: p[k][i:i + 1] for k in ("ln_nodes", "ln_rho_nodes", "inner", "outer")}
        ln_nodes, ln_rho, inner, outer = _broken(row, s)
        return BrokenPowerLaw(tuple(map(float, np.exp(ln_nodes[0]))), tuple(map(float, np.exp(ln_rho[0]))),
                              float(inner[0]), float(outer[0]))
    from ..profiles import Zhao

    return Zhao(p["rho0"][i] / s**2, p["rs"][i] * s, p["alpha_dm"][i], p["beta_dm"][i], p["gamma"][i])

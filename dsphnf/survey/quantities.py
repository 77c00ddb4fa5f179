"""The numbers a survey reports for one fit, with 68 % bands.

Per galaxy and method (units in :data:`COLUMNS`):

- ``rho150``: dark-matter density at r = 150 pc [Msun/kpc^3];
- ``slope150``: d ln rho / d ln r at 150 pc;
- ``M_half``: mass inside the circularised half-light radius R_half of the
  galaxy table [Msun] (3-D radius r = R_half);
- ``beta_half``: anisotropy at R_half (NaN for an isotropic fit, where it is
  not measured);
- ``log10_J05``: log10 J(0.5 deg) [GeV^2 cm^-5]; and, when the catalogue's
  largest radius subtends less than 0.5 deg, ``log10_Jmax`` within that angle
  ``theta_max_deg`` (flag ``j_beyond_data``: J(0.5 deg) extrapolates the halo
  beyond the stars).

The baseline's numbers come from its posterior draws (:func:`baseline_draws`):
the halo of its family in closed form (:mod:`dsphnf.baseline.halo_family`), so that a distance drawn per draw (the
``per-draw`` switch) is propagated exactly by the homology of the Jeans
equations: at distance s D every length scales by s, rho by s^-2, M by s.
The flow's come from its profile bands and its ensemble members
(:func:`flow_quantities`); with a distance drawn per member (``per-draw``)
each member's read-out is already at its own distance D_k (its length unit
scaled by D_k / D, :func:`dsphnf.flows.member.member_distance`), so rho
at 150 pc is read off the profile bands as before, and M(<R_half) at each
member's own half-light radius R_half D_k / D, as for the baseline. A learned
foreground fraction is ``f_fg`` (:func:`flow_foreground`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..result import Result

__all__ = ["R_RHO_KPC", "J_THETA_DEG", "QUANTITIES", "baseline_draws", "band", "baseline_quantities",
           "flow_quantities", "flow_foreground", "flow_diagnostics", "flow_j_edge_deg"]

#: Radius of the density and slope [kpc].
R_RHO_KPC = 0.15
#: Integration angle of J [deg].
J_THETA_DEG = 0.5
#: Banded quantities and their units.
QUANTITIES = {"rho150": "Msun / kpc3", "slope150": "", "M_half": "Msun", "beta_half": "",
              "log10_J05": "dex(GeV2 / cm5)", "log10_Jmax": "dex(GeV2 / cm5)"}


def band(values: np.ndarray) -> dict[str, float]:
    """Median and 16/84 % percentiles of finite ``values`` ('', '_lo', '_hi'); NaN when none is finite.

    >>> band(np.arange(101.0))
    {'': 50.0, '_lo': 16.0, '_hi': 84.0}
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"": np.nan, "_lo": np.nan, "_hi": np.nan}
    lo, mid, hi = np.percentile(v, [16.0, 50.0, 84.0])
    return {"": float(mid), "_lo": float(lo), "_hi": float(hi)}


def baseline_draws(result: Result, r_half: float, distance: float, distance_err: float, per_draw: bool,
                   n_draws: int, seed: int) -> dict[str, np.ndarray]:
    """Per-draw quantities of a baseline fit (arrays of n_draws); ``s`` the distance ratio of each draw.

    Parameters
    ----------
    r_half : float
        Half-light radius [kpc] at the table ``distance`` [kpc].
    per_draw : bool
        Draw a distance N(distance, distance_err) [kpc] per draw (else s = 1).
    """
    from ..anisotropy import Isotropic
    from ..baseline.halo_family import halo_density, halo_log_slope, halo_mass
    from ..baseline.projector import anisotropy_grid

    art = result.artefacts
    samples = art.sampler.samples
    rng = np.random.default_rng(seed)
    theta = samples[rng.choice(len(samples), min(n_draws, len(samples)), replace=False)]
    p = art.model.unpack(theta)
    s = np.ones(len(theta))
    if per_draw:
        s = np.clip(rng.normal(distance, distance_err, len(theta)), 0.5 * distance, None) / distance
    r150 = (R_RHO_KPC / s)[:, None]  # the fit's halo at the radius that is 150 pc at distance s D
    rho, slope = halo_density(p, r150)[:, 0], halo_log_slope(p, r150)[:, 0]
    mass = halo_mass(p, np.array([r_half]))[:, 0]
    out = {"s": s, "theta": theta, "rho150": rho / s**2, "slope150": slope, "M_half": mass * s}
    if isinstance(art.model.anisotropy, Isotropic):
        out["beta_half"] = np.full(len(theta), np.nan)
    else:
        r = np.array([r_half])
        out["beta_half"] = np.broadcast_to(anisotropy_grid(art.model.anisotropy, p, r, np.log(r))[1][:, 0],
                                           (len(theta),)).copy()
    return out


def _log10_j(p: dict[str, np.ndarray], s: np.ndarray, distance: float, theta_deg: float, n: int) -> np.ndarray:
    """log10 J(theta_deg) of the first n draws, each at distance s D (NaN where J diverges)."""
    from ..baseline.halo_family import halo_object
    from ..jfactor import log10_j_factor

    out = np.full(n, np.nan)
    for i in range(n):
        halo = halo_object(p, i, float(s[i]))
        try:
            out[i] = log10_j_factor(halo.density, distance * s[i], theta_deg)
        except ValueError:  # inner slope >= 1.5: J diverges
            continue
    return out


def baseline_quantities(result: Result, r_half: float, distance: float, distance_err: float, per_draw: bool,
                        theta_max_deg: float, n_draws: int, seed: int, n_j: int = 200) -> dict[str, Any]:
    """Banded survey quantities of a baseline fit (keys ``rho150``, ``rho150_lo``, ...; see the module)."""
    d = baseline_draws(result, r_half, distance, distance_err, per_draw, n_draws, seed)
    p = result.artefacts.model.unpack(d["theta"])
    n_j = min(n_j, len(d["s"]))
    d["log10_J05"] = _log10_j(p, d["s"], distance, J_THETA_DEG, n_j)
    d["log10_Jmax"] = (_log10_j(p, d["s"], distance, theta_max_deg, n_j) if theta_max_deg < J_THETA_DEG
                       else np.full(n_j, np.nan))
    out: dict[str, Any] = {}
    for key in QUANTITIES:
        out.update({key + k: v for k, v in band(d[key]).items()})
    out["n_j_left_out"] = int(np.count_nonzero(~np.isfinite(d["log10_J05"])))
    names = result.artefacts.sampler.names
    if "f_fg" in names:
        out.update({"f_fg" + k: v for k, v in band(d["theta"][:, names.index("f_fg")]).items()})
    return out


def _at(profile: dict[str, np.ndarray], key: str, r: float) -> float:
    """A profile column at radius r [kpc], interpolated in log-log (NaN outside the grid or when absent)."""
    if key not in profile:
        return float("nan")
    grid, v = np.log(profile["r"]), np.asarray(profile[key], dtype=float)
    if not grid[0] <= np.log(r) <= grid[-1]:
        return float("nan")
    if key.startswith("beta"):
        return float(np.interp(np.log(r), grid, v))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.exp(np.interp(np.log(r), grid, np.log(v))))


def _slope(profile: dict[str, np.ndarray], r: float) -> float:
    """d ln rho / d ln r of a profile at r [kpc] (finite differences on its grid)."""
    lr = np.log(profile["r"])
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.gradient(np.log(profile["rho"]), lr)
    return float(np.interp(np.log(r), lr, g)) if lr[0] <= np.log(r) <= lr[-1] else float("nan")


def flow_quantities(result: Result, r_half: float, isotropic: bool, distance: float,
                    theta_max_deg: float) -> dict[str, Any]:
    """Banded survey quantities of a flow fit: the profile's bands; the slope's and J's from the ensemble members.

    Every band is the ensemble's Student-t bootstrap interval
    (:func:`dsphnf.flows.student_t.t_interval`; NaN for a single flow) around
    its centre: rho and M from the profile, the slope at 150 pc from the
    members' slopes (mean and Student-t band, the same estimator).  J(0.5
    deg) is the fit's own band; when the data's largest angle
    ``theta_max_deg`` is below 0.5 deg, J within it (``log10_Jmax``) from the
    members' densities at their own distances
    (:func:`dsphnf.flows.member_j.ensemble_j_band`), ``distance`` [kpc] the
    galaxy's.
    """
    from ..flows.student_t import t_centre, t_interval

    prof = result.profile
    members = getattr(result.artefacts, "members", None) or []
    ratios = _distance_ratios(result)
    if ratios is not None and members:  # each member's half-light radius at its own distance
        prof = {**prof, **_at_own_radius(members, r_half, ratios)}
    out: dict[str, Any] = {}
    for key, col, r in (("rho150", "rho", R_RHO_KPC), ("M_half", "M", r_half), ("beta_half", "beta", r_half)):
        for k in ("", "_lo", "_hi"):
            value = prof[f"{col}{k}_half"] if f"{col}{k}_half" in prof else _at(prof, col + k, r)
            out[key + k] = np.nan if key == "beta_half" and isotropic else value
    slopes = np.array([_slope(m, R_RHO_KPC) for m in members if "rho" in m], dtype=float)
    out["slope150"] = float(t_centre(slopes)) if slopes.size else float("nan")
    bands = t_interval(slopes) if slopes.size else {}
    out.update({"slope150" + k: float(bands.get(k, np.nan)) for k in ("_lo", "_hi")})
    j = result.summary.get("jfactor") or {}
    jmax = _flow_j_within(members, distance, ratios, theta_max_deg) if theta_max_deg < J_THETA_DEG else {}
    for k in ("", "_lo", "_hi"):
        out["log10_J05" + k] = float(j.get("log10_J" + k, np.nan))
        out["log10_Jmax" + k] = float(jmax.get("log10_J" + k, np.nan))
    out["n_j_left_out"] = int(j.get("n_left_out", 0))
    return out


def _flow_j_within(members: list[dict[str, np.ndarray]], distance: float, ratios: np.ndarray | None,
                   theta_deg: float) -> dict[str, Any]:
    """The J band within ``theta_deg`` of a flow ensemble, each member at its own distance [kpc]."""
    from ..flows.member_j import ensemble_j_band

    if not members:
        return {}
    own = None if ratios is None else [float(distance * s) for s in ratios]
    return ensemble_j_band(members, distance, theta_deg, own)[0]


def _distance_ratios(result: Result) -> np.ndarray | None:
    """D_k / D of every member of a flow fit with a distance drawn per member (None: one distance)."""
    d = (result.summary.get("diagnostics") or {}).get("distance")
    if not d:
        return None
    return np.asarray(d["member_distances_kpc"], dtype=float) / float(d["distance_kpc"])


def _at_own_radius(members: list[dict[str, np.ndarray]], r_half: float, ratios: np.ndarray) -> dict[str, float]:
    """``M_half``, ``beta_half`` (and ``_lo``, ``_hi``) of an ensemble, member k at r_half D_k / D [kpc].

    The members' values there, banded as the profiles are (:func:`dsphnf.flows.ensemble.band_profiles`).
    """
    from ..flows.ensemble import band_profiles

    keys = ("nu", "sigma_r", "beta", "M", "rho")
    points = [{"r": np.array([r_half]), **{key: np.array([_at(m, key, r_half * s)]) for key in keys if key in m}}
              for m, s in zip(members, ratios)]
    bands = band_profiles(points, ["M", "beta"])
    return {f"{col}{k}_half": float(bands[col + k][0]) for col in ("M", "beta") for k in ("", "_lo", "_hi")
            if col + k in bands}


def flow_foreground(result: Result) -> dict[str, float]:
    """``f_fg`` (and ``_lo``, ``_hi``) of a flow fit with a foreground mixture: the members' mean fraction and
    Student-t band; empty without a foreground."""
    fg = (result.summary.get("diagnostics") or {}).get("foreground")
    if not fg:
        return {}
    return {"f_fg" + k: float(fg.get("fraction" + k, np.nan)) for k in ("", "_lo", "_hi")}


def flow_diagnostics(result: Result) -> dict[str, Any]:
    """How a flow fit's members trained and read out (JSON-ready), for the survey's summary.

    ``converged``: every member's L-BFGS met its stop rule; ``stop_reasons``
    counts the members by stop reason; ``steps`` lists each member's steps;
    ``log10_J`` each member's J (None: left out), ``j_inner_slope`` and
    ``j_outer_slope`` the slopes its density is continued with inwards of the
    grid (no steeper than the NFW cusp) and outwards of it (no shallower than
    r^-2, :func:`dsphnf.jfactor.j_factor_tabulated`); ``unphysical_members``: the
    members whose read-out is unphysical somewhere (left out there);
    ``threads``: the torch threads the members trained with (None when not recorded).
    """
    diag = result.summary.get("diagnostics", {})
    info = diag.get("members", [])
    reasons = [str((m.get("convergence") or {}).get("stop_reason")) for m in info]
    readout = diag.get("readout") or {}
    out = {"converged": bool(info) and all(r == "converged" for r in reasons),
           "stop_reasons": {r: reasons.count(r) for r in sorted(set(reasons))},
           "steps": [int(m.get("steps", 0)) for m in info], "log10_J": [m.get("log10_J") for m in info],
           "j_inner_slope": [m.get("j_inner_slope") for m in info],
           "j_outer_slope": [m.get("j_outer_slope") for m in info],
           "threads": (diag.get("grid") or {}).get("threads", result.summary.get("settings", {}).get("threads")),
           "unphysical_members": list(readout.get("members_unphysical_somewhere", []))}
    if diag.get("distance"):
        out["member_distances_kpc"] = list(diag["distance"]["member_distances_kpc"])
    if diag.get("foreground"):
        out["foreground_fractions"] = list(diag["foreground"]["member_fractions"])
    return out


def flow_j_edge_deg(result: Result, distance: float) -> float:
    """Angle [deg] of the outer edge of a flow's output grid at ``distance`` [kpc].

    Beyond that radius the flow's J continues each member's density with
    its fitted outer slope, no shallower than r^-2
    (:func:`dsphnf.jfactor.j_factor_tabulated`): the part of J from outside
    this angle is extrapolated.

    >>> from types import SimpleNamespace
    >>> round(flow_j_edge_deg(SimpleNamespace(profile={"r": np.array([0.01, 0.2])}), 100.0), 4)
    0.1146
    """
    return float(np.rad2deg(float(np.max(result.profile["r"])) / distance))

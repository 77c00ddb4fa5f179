"""J-factors of an ensemble's members and their band.

Each member's tabulated rho(r) gives its own J (:func:`member_log10_j`,
:func:`dsphnf.jfactor.j_factor_tabulated`): interpolated between the grid
radii, continued inwards with its fitted inner slope (no steeper than the NFW
cusp) and outwards with its fitted outer slope (no shallower than r^-2); the
slopes are recorded per member (:func:`member_inner_slope`,
:func:`member_outer_slope`). The band is the ensemble's Student-t interval
around the members' mean (:func:`ensemble_j_band`), as for the profiles;
members without a positive density are left out and counted.
"""
from __future__ import annotations

import math

import numpy as np

from .student_t import t_bands, t_centre, t_interval, t_moments

__all__ = ["member_log10_j", "member_inner_slope", "member_outer_slope", "ensemble_j_band"]


def _positive_rho(member: dict[str, np.ndarray]) -> np.ndarray | None:
    """A member's rho(r) [Msun/kpc^3] when it is tabulated at two or more radii, finite and > 0 everywhere; else None."""
    rho = np.asarray(member.get("rho", []), dtype=float)
    if rho.size < 2 or not np.all(np.isfinite(rho)) or np.any(rho <= 0):
        return None
    return rho


def member_log10_j(member: dict[str, np.ndarray], distance: float, theta_deg: float = 0.5) -> float | None:
    """log10 J(theta) [GeV^2 cm^-5] of one member's rho(r), or None when it has none.

    A member whose rho(r) is missing, non-finite or non-positive anywhere on the
    grid gives None (the caller counts it as left out). The density is
    continued inwards of the grid as a power law no steeper than the NFW cusp
    and outwards as one no shallower than r^-2 (see
    :func:`dsphnf.jfactor.j_factor_tabulated`); ``distance`` in kpc.
    """
    from ..jfactor import j_factor_tabulated

    rho = _positive_rho(member)
    if rho is None:
        return None
    try:
        return math.log10(j_factor_tabulated(np.asarray(member["r"]), rho, distance, theta_deg))
    except ValueError:
        return None


def member_inner_slope(member: dict[str, np.ndarray]) -> float | None:
    """The inner slope gamma fitted to one member's rho(r) (:func:`dsphnf.jfactor.inner_slope`), None without one.

    Its J continues the density inwards of the grid with this slope, clipped to
    [0, :data:`dsphnf.jfactor.INNER_GAMMA_MAX`] (the NFW cusp).

    >>> r = np.geomspace(0.01, 1.0, 50)
    >>> [round(member_inner_slope({"r": r, "rho": 1e8 * r**-g}), 6) for g in (0.5, 2.0)], member_inner_slope({"r": r})
    ([0.5, 2.0], None)
    """
    from ..jfactor import inner_slope

    rho = _positive_rho(member)
    return None if rho is None else inner_slope(np.asarray(member["r"]), rho)


def member_outer_slope(member: dict[str, np.ndarray]) -> float | None:
    """The outer slope fitted to one member's rho(r) (:func:`dsphnf.jfactor.outer_slope`), None without one.

    Its J continues the density outwards of the grid with this slope, or as
    r^-:data:`dsphnf.jfactor.OUTER_GAMMA_MIN` (r^-2) where it is shallower.

    >>> r = np.geomspace(0.01, 1.0, 50)
    >>> round(member_outer_slope({"r": r, "rho": 1e8 * r**-2.5}), 6), member_outer_slope({"r": r})
    (2.5, None)
    """
    from ..jfactor import outer_slope

    rho = _positive_rho(member)
    return None if rho is None else outer_slope(np.asarray(member["r"]), rho)


def ensemble_j_band(members: list[dict[str, np.ndarray]], distance: float,
                    theta_deg: float = 0.5,
                    member_distances: list[float] | None = None,
                    centre: dict[str, np.ndarray] | None = None) -> tuple[dict, list[float | None]]:
    """The J-factor band of an ensemble (:func:`dsphnf.result.j_band` schema) and every member's log10 J.

    The value is the mean over the members with a J (:func:`member_log10_j`),
    the centre of the Student-t bands (:func:`t_interval`), as for the
    profiles; members without a J are counted in ``n_left_out``. With
    ``member_distances`` [kpc] each member's J is taken at its own distance
    (a distance drawn per member), ``distance`` is the nominal one recorded.
    With ``centre`` (an all-star flow's profile, at ``distance``) the value is
    its J and the bands are that -+ t_{K-1}(q) s, s the members' spread, as
    for the profiles (:func:`~dsphnf.flows.ensemble.band_profiles`); the
    record's ``centre`` says which (``"all-stars"``, or ``"members"`` where that
    flow has no J).

    >>> r = np.geomspace(0.01, 1.0, 50)
    >>> band, each = ensemble_j_band([{"r": r, "rho": 1e8 / r}, {"r": r, "rho": -r}], 76.0)
    >>> band["n_used"], band["n_left_out"], each[1], band["log10_J"] == each[0]
    (1, 1, None, True)
    """
    from ..result import j_band

    dist = member_distances if member_distances is not None else [distance] * len(members)
    each = [member_log10_j(m, d, theta_deg) for m, d in zip(members, dist)]
    values = [v for v in each if v is not None]
    own = None if centre is None else member_log10_j(centre, distance, theta_deg)
    if own is None:
        band = j_band(values, distance, theta_deg, len(members), t_interval, centre=t_centre)
    else:
        def around(v: np.ndarray) -> dict[str, float]:
            _, var, k = t_moments(v)
            return {sfx: float(b) for sfx, b in t_bands(own, np.sqrt(var), k).items()}

        band = j_band(values, distance, theta_deg, len(members), around, centre=lambda v: own)
    if centre is not None:
        band["centre"] = "members" if own is None else "all-stars"
    return band, each

"""Bands from an ensemble of flows: bootstrap intervals of profiles (J-factors: :mod:`~dsphnf.flows.member_j`).

Each ensemble member is a flow trained on its own bootstrap resample of the
stars, with its own seed, so the spread of the members estimates the sampling
distribution of the fitted profile (finite sample and training noise together).

The reported value and the bands come from one estimator: at each radius,
with m and s the mean and standard deviation of the members (of ln x for
positive quantities, of x for signed ones such as beta), the value is m
(exp m, the geometric mean, for positive quantities) and the bands are
Student-t bootstrap intervals around it, not percentiles of the members: with
K members (K = 8 by default) the 2.5/97.5 percentiles are the extreme members,
and even for an ideal estimator the truth falls outside the range of K draws
with probability 2/(K+1) (22 % for K = 8), so percentile "95 %" bands cover
~78 %. Instead

    band = m -+ t_{K-1}(q) s sqrt(1 + 1/K),

which covers the truth with probability q when the members scatter around the
estimate as the estimate scatters around the truth (the sqrt(1 + 1/K) and the
t quantile account for the K-member mean and standard deviation):
``_lo``/``_hi`` for q = 68 %, ``_lo95``/``_hi95`` for q = 95 %. One flow has
no band (NaN). With ``FitOptions(centre="all-stars")``, the default
(``"auto"``) with velocities, a given anisotropy and members trained from
scratch, the value is instead the read-out c of one more flow trained on all
stars, and band = c -+ t_{K-1}(q) s: the members then estimate only that
flow's sampling spread
(:func:`band_profiles`; the arithmetic in :mod:`~dsphnf.flows.student_t`).

Physical read-out: a member is *used* at a radius when its read-out there is
finite and physical, M > 0 and rho > 0 (rho = (dM/d ln r)/(4 pi r^3) >= 0 is
M(r) non-decreasing), for nu, sigma_r, beta, M and rho alike (positions only:
nu > 0). The training prior makes this so by construction, and keeps rho
from rising outwards too (:func:`~dsphnf.flows.prior.positivity_penalty`); members that still
fail are not dropped silently: the column ``n_used`` counts the members used
at every radius, :func:`readout_accounting` summarises it for the summary,
and :func:`check_survival` stops a fit where fewer than half of the members
survive at a radius inside the data's range.
"""
from __future__ import annotations

import numpy as np

from ..errors import FitError
from .student_t import t_bands, t_centre, t_interval, t_moments

__all__ = ["readout_note", "centre_note", "UnphysicalReadout", "LOG_KEYS", "bootstrap_indices", "physical_mask",
           "band_profiles", "readout_accounting", "check_survival"]

#: quantities whose bands are taken in ln x (positive by nature)
LOG_KEYS = ("nu", "sigma_r", "sigma_t", "M", "rho")


def bootstrap_indices(n: int, seed: int, member: int, ensemble: int) -> np.ndarray:
    """Star indices of one member: all stars for a single flow, else a bootstrap resample."""
    if ensemble <= 1:
        return np.arange(n)
    rng = np.random.default_rng([int(seed), int(member), 1299709])
    return rng.integers(0, n, n)


class UnphysicalReadout(FitError):
    """Fewer than half of the members have a physical read-out at a radius inside the data's range.

    Training the same members again would give the same read-out, so there is
    nothing to resume: ``dsphnf fit`` removes its checkpoints on this error.
    """


def physical_mask(member: dict[str, np.ndarray]) -> np.ndarray:
    """Radii where a member's read-out is finite and physical (bool array on its grid ``r``).

    Kinematic: nu, sigma_r, beta, M, rho finite, nu, M and rho > 0 (rho >= 0 is
    M(r) non-decreasing); positions only: nu finite and > 0.

    >>> r = np.array([0.1, 0.2, 0.3])
    >>> physical_mask({"r": r, "nu": np.ones(3), "sigma_r": np.ones(3), "beta": np.zeros(3),
    ...                "M": np.array([1.0, 2.0, 1.5]), "rho": np.array([1.0, 1.0, -1.0])})
    array([ True,  True, False])
    """
    ok = np.ones(len(member["r"]), dtype=bool)
    with np.errstate(all="ignore"):
        for key in ("nu", "sigma_r", "beta", "M", "rho"):
            if key in member:
                v = np.asarray(member[key], dtype=float)
                ok &= np.isfinite(v) & ((v > 0) if key in LOG_KEYS else True)
    return ok


def band_profiles(members: list[dict[str, np.ndarray]], keys: list[str],
                  centre: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Value and bootstrap bands of ``keys`` over member profiles (same grid ``r``) and ``n_used`` per radius.

    At every radius only the members whose read-out is physical there
    (:func:`physical_mask`) are used; ``n_used`` counts them. Positive
    quantities (:data:`LOG_KEYS`) are averaged and banded in ln x (the value is
    the geometric mean), the others in x; NaN where no member is used.

    ``centre``: the read-out of a flow trained on all stars (``FitOptions(centre="all-stars")``).
    Where it is physical the value is its read-out and the bands are
    value -+ t_{K-1}(q) s, s the members' standard deviation (the members
    estimate the all-star flow's sampling spread; no sqrt(1 + 1/K): the value
    is not their mean); elsewhere the members' own value and bands, and
    ``from_members`` (1.0) marks those radii.

    >>> r = np.array([0.1, 1.0])
    >>> m = [{"r": r, "rho": np.array([1.0, 1.0]) * f, "M": r} for f in (1.0, np.e)]
    >>> out = band_profiles(m, ["rho"], centre={"r": r, "rho": np.array([2.0, -1.0]), "M": r})
    >>> out["rho"].round(3).tolist(), out["from_members"].tolist()  # 2 (the centre), then the geometric mean
    ([2.0, 1.649], [0.0, 1.0])
    """
    out = {"r": np.asarray(members[0]["r"])}
    used = np.array([physical_mask(m) for m in members])
    own = None if centre is None else physical_mask(centre)
    for key in keys:
        if not all(key in m for m in members):
            continue
        log = key in LOG_KEYS
        vals = _member_values(np.array([m[key] for m in members], dtype=float), used, log)
        value, bands = t_centre(vals), t_interval(vals)
        if own is not None and key in centre:
            c = _member_values(np.asarray(centre[key], dtype=float)[None], own[None], log)[0]
            _, var, k = t_moments(vals)
            with np.errstate(all="ignore"):
                around = t_bands(c, np.sqrt(var), k)
            value = np.where(own, c, value)
            bands = {sfx: np.where(own, around[sfx], band) for sfx, band in bands.items()}
        out[key] = np.exp(value) if log else value
        for suffix, band in bands.items():
            out[key + suffix] = np.exp(band) if log else band
    out["n_used"] = used.sum(axis=0).astype(float)
    if own is not None:
        out["from_members"] = (~own).astype(float)
    return out


def _member_values(stack: np.ndarray, used: np.ndarray, log: bool) -> np.ndarray:
    """Members' values (ln x for positive quantities), NaN where a member is not used or the value not valid."""
    with np.errstate(all="ignore"):
        good = used & np.isfinite(stack) & ((stack > 0) if log else True)
        return np.where(good, np.log(np.where(good, stack, 1.0)) if log else stack, np.nan)


def readout_accounting(members: list[dict[str, np.ndarray]], data_range: tuple[float, float]) -> dict:
    """JSON-ready count of the members whose read-out is physical, per radius and in all.

    ``data_range`` [kpc]: the radii where the stars constrain the flow (the
    survival rule of :func:`check_survival` applies there).

    >>> r = np.array([0.1, 1.0])
    >>> good, bad = {"r": r, "nu": np.ones(2)}, {"r": r, "nu": np.array([1.0, -1.0])}
    >>> a = readout_accounting([good, bad], (0.1, 1.0))
    >>> a["n_used"], a["members_unphysical_somewhere"], a["fewest_used"], a["fewest_used_at_r_kpc"]
    ([2, 1], [1], 1, 1.0)
    """
    r = np.asarray(members[0]["r"], dtype=float)
    used = np.array([physical_mask(m) for m in members])
    n_used = used.sum(axis=0)
    lo, hi = data_range
    inside = (r >= lo * (1 - 1e-9)) & (r <= hi * (1 + 1e-9))
    where = int(np.argmin(np.where(inside, n_used, len(members) + 1))) if inside.any() else None
    return {
        "n_members": len(members),
        "rule": "a member is used at a radius where its nu, sigma_r, beta, M, rho are finite and nu, M, rho > 0",
        "n_used": n_used.astype(int).tolist(),
        "members_unphysical_somewhere": [k for k in range(len(members)) if not used[k].all()],
        "data_range_kpc": [float(lo), float(hi)],
        "fewest_used": None if where is None else int(n_used[where]),
        "fewest_used_at_r_kpc": None if where is None else float(r[where]),
    }


def check_survival(accounting: dict) -> None:
    """Stop (FitError, one line) where fewer than half of the members survive inside the data's range.

    >>> check_survival({"n_members": 4, "fewest_used": 2, "fewest_used_at_r_kpc": 0.1})
    >>> check_survival({"n_members": 4, "fewest_used": 1, "fewest_used_at_r_kpc": 0.1})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dsphnf.flows.ensemble.UnphysicalReadout: the Jeans read-out is unphysical ... for 3 of 4 flow(s) at r = 0.1 kpc, ...
    """
    k, fewest = accounting["n_members"], accounting["fewest_used"]
    if fewest is None or 2 * fewest >= k:
        return
    raise UnphysicalReadout(f"the Jeans read-out is unphysical (M <= 0, rho < 0 or not finite) for {k - fewest} of {k} "
                   f"flow(s) at r = {accounting['fewest_used_at_r_kpc']:.3g} kpc, inside the data's radii: "
                   "fewer than half survive; train longer (--steps) or with a larger ensemble")


def readout_note(acc: dict | None) -> str:
    """One line on the bands and on how many flows are physical at every radius.

    ``acc`` is ``summary["diagnostics"]["readout"]`` of a flow fit (None: no bands).

    >>> readout_note({"n_members": 1, "members_unphysical_somewhere": []})
    'bands: none (one flow; the band columns are NaN; use --ensemble 2 or more); read-out physical (M > 0, rho > 0) for all 1 flow(s) at every radius'
    """
    if not acc:
        return "bands: none"
    k = acc["n_members"]
    bands = ("bands: 68 % and 95 % Student-t bootstrap intervals over the flows" if k > 1 else
             "bands: none (one flow; the band columns are NaN; use --ensemble 2 or more)")
    bad = acc["members_unphysical_somewhere"]
    if not bad:
        return f"{bands}; read-out physical (M > 0, rho > 0) for all {k} flow(s) at every radius"
    return (f"{bands}; {len(bad)} of {k} flow(s) unphysical at some radii and left out there "
            f"(fewest used: {acc['fewest_used']} at r = {acc['fewest_used_at_r_kpc']:.3g} kpc; "
            "column n_used of profile_bands.csv)")


def centre_note(centre: dict | None) -> str | None:
    """One line saying that the value and bands are centred on the all-star flow (None: on the members' mean).

    ``centre`` is ``summary["diagnostics"]["centre"]`` of a flow fit (absent when centred on the members).

    >>> centre_note({"kind": "all-stars", "n_radii_from_members": 0, "radii_from_members_kpc": []})
    "value and bands centred on the flow trained on all stars (bands: -+ t s, s the flows' spread)"
    >>> centre_note(None) is None
    True
    """
    if not centre:
        return None
    n = centre["n_radii_from_members"]
    return ("value and bands centred on the flow trained on all stars (bands: -+ t s, s the flows' spread)"
            + (f"; at {n} radii where its read-out is not physical, the flows' own" if n else ""))

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
           "band_profiles",
           "readout_accounting", "check_survival", "BETA_MAX_Y_WIDTH", "BETA_MIN_STARS", "stars_near",
           "symmetrised_width", "beta_constraint", "beta_constraint_note", "bound_note", "BETA_BOUND_Y_MARGIN"]

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


# ---------------------------------------------------------------------------- where beta is constrained
#: beta(r) counts as constrained only where the 68 % band of y = beta / (2 - beta) is at most this wide
#: (a third of the range y in (-0.6, 0.905) that a learned beta can take; y = 0 is isotropy,
#: y = 0.33 is beta = 0.5, y = -0.2 is beta = -0.5) ...
BETA_MAX_Y_WIDTH = 0.5
#: ... and at least this many stars (summed membership weights) have projected radii within a factor
#: BETA_STAR_FACTOR of r: the standard error of a kurtosis from n stars is sqrt(24 / n), 0.49 for
#: n = 100, as large as the change of the line-of-sight kurtosis between isotropic and strongly
#: radial or tangential orbits, the shape information that constrains a learned beta.
BETA_MIN_STARS = 100.0
BETA_STAR_FACTOR = 2.0
#: A learned beta is *at its bound* where its central value's y = beta / (2 - beta) lies within this of
#: the lowest y its parametrisation allows (:data:`~dsphnf.flows.beta.BETA_MIN` = -3, y = -0.6): below
#: beta = -2.44 the bound, not the stars, stops it (a free beta run tangential on a mock: -2.2 to -3.0).
BETA_BOUND_Y_MARGIN = 0.05


def stars_near(r: np.ndarray, R: np.ndarray, weights: np.ndarray | None = None,
               factor: float = BETA_STAR_FACTOR) -> np.ndarray:
    """Stars (summed weights) with projected radius R in [r / factor, r * factor], at every r [kpc].

    >>> stars_near(np.array([0.1, 1.0]), np.array([0.06, 0.1, 0.3, 1.5]))
    array([2., 1.])
    """
    r, R = np.asarray(r, dtype=float), np.asarray(R, dtype=float)
    w = np.ones_like(R) if weights is None else np.asarray(weights, dtype=float)
    inside = (R[None, :] >= r[:, None] / factor) & (R[None, :] <= r[:, None] * factor)
    return (inside * w[None, :]).sum(axis=1)


def _symmetrised(beta: np.ndarray) -> np.ndarray:
    """y = beta / (2 - beta), with beta at or above 1 counted as y = 1 (NaN stays NaN)."""
    b = np.asarray(beta, dtype=float)
    with np.errstate(all="ignore"):
        return np.where(b >= 1.0, 1.0, b / (2.0 - b))


def symmetrised_width(beta_lo: np.ndarray, beta_hi: np.ndarray) -> np.ndarray:
    """Width of a band of beta in y = beta / (2 - beta) (in (-1, 1); limits at or above beta = 1 count as y = 1).

    >>> symmetrised_width(np.array([-2.0, np.nan]), np.array([5.0, 0.0]))
    array([1.5, nan])
    """
    return _symmetrised(beta_hi) - _symmetrised(beta_lo)


def _span(lo: float, hi: float) -> str:
    """'lo kpc' or 'lo-hi kpc' (3 significant digits)."""
    return f"{lo:.3g} kpc" if lo == hi else f"{lo:.3g}-{hi:.3g} kpc"


def _runs(r: np.ndarray, ok: np.ndarray) -> list[list[float]]:
    """[first, last] radius [kpc] of every run of consecutive True in ``ok``."""
    out, start = [], None
    for i, flag in enumerate(ok):
        if flag and start is None:
            start = i
        if start is not None and (not flag or i == len(ok) - 1):
            end = i if flag else i - 1
            out.append([float(r[start]), float(r[end])])
            start = None
    return out


def beta_constraint(profile: dict[str, np.ndarray], R: np.ndarray, weights: np.ndarray | None = None, *,
                    max_width: float = BETA_MAX_Y_WIDTH, min_stars: float = BETA_MIN_STARS) -> dict:
    """Where the data constrain an inferred beta(r): ``summary["diagnostics"]["beta_constrained"]``.

    beta(r) is *constrained* at a grid radius r when both

    - its 68 % band (``beta_lo``, ``beta_hi``), in y = beta / (2 - beta), is at
      most ``max_width`` wide (:data:`BETA_MAX_Y_WIDTH`), and
    - at least ``min_stars`` stars (summed ``weights``) have projected radii R
      [kpc] within a factor 2 of r (:data:`BETA_MIN_STARS`).

    Both are needed: the bands are bootstrap bands, and where few stars are,
    the members' beta is set by its prior and its isotropic start rather than
    by the stars, so that their spread, narrow or wide, says nothing about the
    data (members that barely trained agree everywhere). One flow has no band
    (NaN), so nowhere counts as constrained.

    Returns a JSON-ready dict: the rule and its thresholds, per radius
    ``constrained`` (bool), ``y_width68`` (None without a band),
    ``n_stars_near`` and ``at_bound`` (the central beta within
    :data:`BETA_BOUND_Y_MARGIN` in y of the lower bound of its
    parametrisation, where stars are: not a measurement but the family's
    edge), and ``ranges_kpc``, the [first, last] grid radius of every run of
    constrained radii (empty when none).

    >>> r = np.array([0.01, 0.1, 1.0, 10.0])
    >>> prof = {"r": r, "beta_lo": np.array([-0.1, -0.1, 0.0, -2.0]), "beta_hi": np.array([0.1, 0.3, 0.4, 0.9])}
    >>> R = np.r_[np.full(200, 0.1), np.full(200, 1.0)]
    >>> c = beta_constraint(prof, R)
    >>> c["constrained"], c["ranges_kpc"]
    ([False, True, True, False], [[0.1, 1.0]])
    """
    r = np.asarray(profile["r"], dtype=float)
    width = symmetrised_width(profile.get("beta_lo", np.full(r.size, np.nan)),
                              profile.get("beta_hi", np.full(r.size, np.nan)))
    near = stars_near(r, R, weights)
    enough = near >= min_stars
    ok = np.isfinite(width) & (width <= max_width) & enough
    at_bound = _at_lower_bound(profile.get("beta", np.full(r.size, np.nan))) & enough
    return {
        "rule": (f"constrained where the 68 % band of y = beta/(2 - beta) is at most {max_width:g} wide and "
                 f">= {min_stars:g} stars have projected radii within a factor {BETA_STAR_FACTOR:g} of r"),
        "max_y_width68": float(max_width), "min_stars": float(min_stars),
        "r_kpc": r.tolist(), "constrained": ok.tolist(),
        "y_width68": [None if not np.isfinite(v) else float(v) for v in width],
        "n_stars_near": near.tolist(), "at_bound": at_bound.tolist(), "ranges_kpc": _runs(r, ok),
    }


def _at_lower_bound(beta: np.ndarray) -> np.ndarray:
    """Where beta's y = beta / (2 - beta) is within :data:`BETA_BOUND_Y_MARGIN` of its parametrisation's lowest.

    >>> _at_lower_bound(np.array([-0.5, -2.3, -2.6, np.nan])).tolist()
    [False, False, True, False]
    """
    from .beta import Y_MIN

    with np.errstate(invalid="ignore"):
        return _symmetrised(beta) < Y_MIN + BETA_BOUND_Y_MARGIN


def bound_note(c: dict) -> str:
    """A clause on where the central beta sits at its lower bound ('' where it does not).

    ``c``: :func:`beta_constraint`'s dict (one written before ``at_bound`` existed gives '').

    >>> bound_note({"r_kpc": [0.1, 0.5, 1.0], "at_bound": [False, True, True]})  # doctest: +NORMALIZE_WHITESPACE
    '; at 0.5-1 kpc beta sits at the lower bound of its parametrisation (-3): the bound, not the stars,
     stops it there, and rho there moves with it; a strongly tangential free beta is a known bias of the
     velocity family of the flow (the README, "How far to trust a fit"): compare with a given or parametric
     anisotropy'
    """
    from .beta import BETA_MIN

    r = np.asarray(c["r_kpc"], dtype=float)
    runs = _runs(r, np.asarray(c.get("at_bound", [False] * r.size), dtype=bool))
    if not runs:
        return ""
    where = " and ".join(_span(lo, hi) for lo, hi in runs)
    return (f"; at {where} beta sits at the lower bound of its parametrisation ({BETA_MIN:g}): the bound, not "
            "the stars, stops it there, and rho there moves with it; a strongly tangential free beta is a known "
            "bias of the velocity family of the flow (the README, \"How far to trust a fit\"): compare with a "
            "given or parametric anisotropy")


def beta_constraint_note(c: dict | None) -> str:
    """One line, in plain words, on where beta is constrained (``c``: :func:`beta_constraint`'s dict).

    >>> c = {"r_kpc": [0.01, 0.1, 1.0, 10.0], "constrained": [False, True, True, False],
    ...      "y_width68": [0.2, 0.4, 0.4, 1.4], "n_stars_near": [5, 300, 300, 0],
    ...      "ranges_kpc": [[0.1, 1.0]], "max_y_width68": 0.5, "min_stars": 100}
    >>> beta_constraint_note(c)  # doctest: +NORMALIZE_WHITESPACE
    'beta is constrained only between 0.1 and 1 kpc (68 % band of beta/(2 - beta) narrower than 0.5 and >= 100
     stars within a factor 2 in projected radius); outside (few stars at 0.01 kpc; few stars, wide band at 10 kpc)
     the data do not constrain it; where few stars are, its value and band come from its prior and its isotropic
     start, not from the data'
    """
    if not c:
        return ""
    return _constraint_sentence(c) + bound_note(c)


def _constraint_sentence(c: dict) -> str:
    """:func:`beta_constraint_note` without the bound's clause."""
    r = np.asarray(c["r_kpc"], dtype=float)
    ok = np.asarray(c["constrained"], dtype=bool)
    rule = (f"68 % band of beta/(2 - beta) narrower than {c['max_y_width68']:g} and >= {c['min_stars']:g} "
            f"stars within a factor {BETA_STAR_FACTOR:g} in projected radius")
    if all(v is None for v in c["y_width68"]):
        return "where beta is constrained is not assessed: one flow has no band (use --ensemble 2 or more)"
    few = bool(np.any(np.asarray(c["n_stars_near"], dtype=float)[~ok] < c["min_stars"]))
    tail = "; where few stars are, its value and band come from its prior and its isotropic start, not from the data"
    if not ok.any():
        return f"beta is constrained nowhere on the grid ({_why_not(c)}; {rule})" + (tail if few else "")
    spans = " and ".join(f"{lo:.3g} and {hi:.3g} kpc" for lo, hi in c["ranges_kpc"])
    if ok.all():
        return f"beta is constrained over the whole grid, between {spans} ({rule})"
    return (f"beta is constrained only between {spans} ({rule}); outside ({_why_not(c)}) the data do not "
            "constrain it" + (tail if few else ""))


def _why_not(c: dict) -> str:
    """The unconstrained radii, grouped into runs that fail the same criteria, and which they fail."""
    r = np.asarray(c["r_kpc"], dtype=float)
    few = np.asarray(c["n_stars_near"], dtype=float) < c["min_stars"]
    wide = np.array([w is None or w > c["max_y_width68"] for w in c["y_width68"]])
    reason = [", ".join(x for x, f in (("few stars", a), ("wide band", b)) if f) for a, b in zip(few, wide)]
    parts, j = [], 0
    while j < len(r):
        if c["constrained"][j]:
            j += 1
            continue
        k = j
        while k + 1 < len(r) and not c["constrained"][k + 1] and reason[k + 1] == reason[j]:
            k += 1
        parts.append(f"{reason[j]} at " + _span(r[j], r[k]))
        j = k + 1
    return "; ".join(parts)

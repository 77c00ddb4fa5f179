"""Where the data constrain a learned beta(r): the statement ``dsphnf fit`` prints and keeps in its summary.

An ensemble's bands on an inferred anisotropy (:func:`~dsphnf.flows.ensemble.band_profiles`)
are read against two conditions at every grid radius: the 68 % band of the bounded variable
y = beta / (2 - beta) is narrow (:data:`BETA_MAX_Y_WIDTH`), and enough stars lie nearby
(:data:`BETA_MIN_STARS` within a factor :data:`BETA_STAR_FACTOR` in projected radius) for the
line-of-sight velocity distribution's shape, which carries the information on beta, to be measured.
Radii where the central beta sits at the parametrisation's lower bound are flagged too
(:data:`BETA_BOUND_Y_MARGIN`): there the bound, not the stars, stops it.
"""
from __future__ import annotations

import numpy as np

__all__ = ["BETA_MAX_Y_WIDTH", "BETA_MIN_STARS", "BETA_STAR_FACTOR", "BETA_BOUND_Y_MARGIN", "stars_near",
           "symmetrised_width", "beta_constraint", "beta_constraint_note", "bound_note"]

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

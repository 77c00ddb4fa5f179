"""One result type for every method: profiles with bands, a summary, and the files they are saved as.

Both ``fit_flow`` (the equivariant-flow analysis) and ``fit_baseline`` (the
parametric Jeans fit) return a :class:`Result`.  Its schema:

``profile``
    Columns on a radial grid: ``r`` [kpc], ``nu`` [kpc^-3, one star],
    ``sigma_r`` [km/s], ``beta``, ``M`` [Msun], ``rho`` [Msun/kpc^3]; every
    quantity ``q`` may carry 68 % (``q_lo``, ``q_hi``) and 95 % (``q_lo95``,
    ``q_hi95``) bands.  ``profile.csv`` holds :data:`PROFILE_COLUMNS`
    (positions-only fits: :data:`NU_COLUMNS`), ``profile_bands.csv`` every column.
``summary``
    JSON-ready: ``method`` (``"flow"`` or ``"baseline"``), ``source``,
    ``n_stars``, ``settings`` (``anisotropy`` in the grammar of
    :mod:`dsphnf.anisotropy`), ``timings_s``, ``diagnostics`` (method
    specific), ``versions`` and ``machine`` (:mod:`dsphnf.provenance`: a
    trained flow repeats bit for bit on one CPU only) and, with a distance,
    ``jfactor`` in the :func:`j_band` schema.

:func:`load_result` reads a saved folder back (profiles and summary; the
method-specific artefacts stay on disk).

Examples
--------
>>> import numpy as np, tempfile
>>> r = np.geomspace(0.1, 1.0, 4)
>>> res = Result("flow", {"r": r, "nu": 1 / r**3}, {"method": "flow", "n_stars": 10})
>>> folder = res.save(tempfile.mkdtemp() + "/out", plots=False)
>>> np.allclose(load_result(folder).profile["nu"], 1 / r**3)
True
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from .errors import DsphnfError
from .outputs import atomic_dir, write_csv, write_json

__all__ = ["Result", "Artefacts", "load_result", "j_band", "band_columns", "PROFILE_COLUMNS", "NU_COLUMNS",
           "MIN_STARS", "METHODS"]

#: Columns of profile.csv for kinematic fits, shared by every method.
PROFILE_COLUMNS = ["r", "nu", "sigma_r", "beta", "M", "M_lo", "M_hi", "rho", "rho_lo", "rho_hi",
                   "rho_lo95", "rho_hi95", "beta_lo", "beta_hi", "beta_lo95", "beta_hi95",
                   "sigma_r_lo", "sigma_r_hi", "sigma_t", "sigma_t_lo", "sigma_t_hi"]
#: Columns of profile.csv for positions-only fits.
NU_COLUMNS = ["r", "nu", "nu_lo", "nu_hi", "nu_lo95", "nu_hi95"]
#: Fewest stars any method accepts.
MIN_STARS = 20
#: The methods that produce a :class:`Result`.
METHODS = ("flow", "baseline")
#: Band suffixes: 68 % and 95 % lower/upper limits.
BAND_SUFFIXES = ("_lo", "_hi", "_lo95", "_hi95")


class Artefacts(Protocol):
    """Method-specific outputs (trained flows, an emcee chain) that a result saves beside its tables."""

    def write_into(self, folder: Path) -> list[str]:
        """Write the artefacts into ``folder``; return the names written."""

    def plot_into(self, result: "Result", folder: Path) -> list[str]:
        """Draw the method's figures into ``folder``; return the names written."""


@dataclass
class Result:
    """Outcome of a fit: profiles with bands and a summary (see the module docstring).

    Attributes
    ----------
    method : {"flow", "baseline"}
    profile : dict of ndarray
        Columns on the radial grid ``r`` [kpc].
    summary : dict
        JSON-ready summary in the common schema.
    artefacts : Artefacts or None
        Method-specific outputs (e.g. :class:`dsphnf.flows.FlowArtefacts`).
    """

    method: str
    profile: dict[str, np.ndarray]
    summary: dict[str, Any]
    artefacts: Artefacts | None = field(default=None, repr=False)

    @property
    def kinematic(self) -> bool:
        """True when the profile has a mass model (rho, M), not only nu."""
        return "rho" in self.profile

    def table(self) -> dict[str, np.ndarray]:
        """The columns of ``profile.csv`` in their order (missing bands as NaN)."""
        cols = PROFILE_COLUMNS if self.kinematic else NU_COLUMNS
        n = len(self.profile["r"])
        return {c: np.asarray(self.profile.get(c, np.full(n, np.nan)), dtype=float) for c in cols}

    def save(self, out_dir: str | os.PathLike, plots: bool = True) -> Path:
        """Write profile.csv, profile_bands.csv, summary.json and the artefacts into ``out_dir`` atomically."""
        out_dir = Path(out_dir)
        with atomic_dir(out_dir) as tmp:
            self.write_into(tmp, plots=plots)
        return out_dir

    def write_into(self, folder: Path, plots: bool = True) -> list[str]:
        """Write every output file into an existing ``folder``; return their names."""
        folder = Path(folder)
        write_csv(folder / "profile.csv", self.table())
        write_csv(folder / "profile_bands.csv", self.profile)
        write_json(folder / "summary.json", self.summary)
        names = ["profile.csv", "profile_bands.csv", "summary.json"]
        if self.artefacts is not None:
            names += self.artefacts.write_into(folder)
            if plots:
                names += self.artefacts.plot_into(self, folder)
        return names


def band_columns(name: str) -> list[str]:
    """``name`` and its four band columns.

    >>> band_columns("rho")
    ['rho', 'rho_lo', 'rho_hi', 'rho_lo95', 'rho_hi95']
    """
    return [name] + [name + s for s in BAND_SUFFIXES]


def j_band(values: Sequence[float], distance: float, theta_deg: float, n_total: int,
           interval: Callable[[np.ndarray], dict[str, float]],
           centre: Callable[[np.ndarray], float] = np.median) -> dict[str, Any]:
    """The common J-factor schema from log10 J values [GeV^2 cm^-5] of members or posterior draws.

    Parameters
    ----------
    values : sequence of float
        log10 J(theta) of every member / draw with a finite J.
    distance : float
        Distance [kpc].
    theta_deg : float
        Integration angle [deg].
    n_total : int
        Members or draws tried (``n_total - len(values)`` were left out, e.g.
        a divergent J for a cusp steeper than 1.5).
    interval : callable
        Maps the values to ``{"_lo", "_hi", "_lo95", "_hi95"}`` limits
        (percentiles for a posterior, Student-t intervals for an ensemble).
    centre : callable
        Maps the values to the reported ``log10_J``: the median for a
        posterior, the centre of the Student-t bands (the mean) for an ensemble,
        so that the value and its band come from one estimator.

    Returns
    -------
    dict
        ``distance_kpc``, ``theta_deg``, ``n_used``, ``n_left_out``,
        ``log10_J`` (``centre``, default the median) and ``log10_J_lo/_hi/_lo95/_hi95`` (NaN when no
        value is finite).

    >>> b = j_band([18.0, 18.2], 76.0, 0.5, 3, lambda v: {"_lo": 18.0, "_hi": 18.2, "_lo95": 17.9, "_hi95": 18.3})
    >>> b["log10_J"], b["n_left_out"]
    (18.1, 1)
    """
    v = np.asarray(values, dtype=float)
    out: dict[str, Any] = {"distance_kpc": float(distance), "theta_deg": float(theta_deg),
                           "n_used": int(v.size), "n_left_out": int(n_total - v.size)}
    if v.size == 0:
        out.update({"log10_J" + k: float("nan") for k in ("",) + BAND_SUFFIXES})
        return out
    out["log10_J"] = float(centre(v))
    out.update({"log10_J" + k: float(b) for k, b in interval(v).items()})
    return out


def load_result(folder: str | os.PathLike) -> Result:
    """Read a folder written by :meth:`Result.save` (``profile_bands.csv`` and ``summary.json``).

    Raises
    ------
    DsphnfError
        One line naming the folder when a file is missing or malformed.
    """
    folder = Path(folder)
    try:
        summary = json.loads((folder / "summary.json").read_text())
        table = folder / "profile_bands.csv"
        if not table.exists():
            table = folder / "profile.csv"
        data = np.genfromtxt(table, delimiter=",", names=True)
    except (OSError, ValueError) as exc:
        raise DsphnfError(f"{folder}: not a dsphnf result folder ({exc.__class__.__name__}: {exc})") from None
    profile = {name: np.atleast_1d(np.asarray(data[name], dtype=float)) for name in data.dtype.names}
    return Result(str(summary.get("method", "unknown")), profile, summary)

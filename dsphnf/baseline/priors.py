"""Priors of the parametric Jeans baseline: the parameters, their default boxes, and priors files.

Default priors (all uniform; the parameter vector sampled by emcee holds the
free parameters in the order of :data:`PARAMETERS`):

========== ==================== =============================================
name        default prior        meaning
========== ==================== =============================================
log10_rstar U(-2, 1)             stellar scale radius r* [kpc]
gamma_star  U(0, 2)              stellar inner slope gamma*
beta_star   U(3.2, 8)            stellar outer slope beta*
alpha_star  fixed 2              stellar transition sharpness
log10_rho0  U(4, 11)             halo density scale rho0 [Msun/kpc^3]
log10_rs    U(-1.5, 1.5)         halo scale radius r_s [kpc]
gamma       U(0, 2)              halo inner slope (zhao; 1 nfw, 0 cored)
alpha_dm    U(0.5, 3)            halo transition sharpness (``zhao-alpha``;
                                 the other Zhao families fix it to 1)
beta_dm     fixed 3              halo outer slope
log10_rho_half U(4, 11)          halo density at R_half [Msun/kpc^3]
                                 (``broken``, instead of the five above)
gamma_1     U(0, 2)              slopes -d ln rho / d ln r of the ``broken``
gamma_2 ... U(0, 3)              halo between its nodes at 1/4, 1/2, 1, 2
gamma_4                          and 4 R_half (:mod:`dsphnf.baseline.halo_family`);
                                 gamma_1 also inwards (as gamma, the Zhao inner slope)
beta_sym    U(-1, 1)             beta/(2-beta), anisotropy ``constant``
b0_sym      U(-1, 1)             b0/(2-b0), ``cuddeford`` and ``baes``
binf_sym    U(-1, 1)             binf/(2-binf), ``baes``
log10_ra    U(-1.5, 1.5)         anisotropy radius r_a [kpc], ``om``,
                                 ``cuddeford`` and ``baes``
eta         U(1, 3)              Baes transition sharpness, ``baes``
kurtosis    U(3, 12)             line-of-sight velocity kurtosis
                                 <v^4>/<v^2>^2, with ``losvd = "kurtosis"``
                                 only (:mod:`dsphnf.baseline.losvd`)
kurtosis_inner U(3, 12)          the kurtosis at R_half/4 and at 4 R_half,
kurtosis_outer                   with ``losvd = "kurtosis-radial"`` only
v_sys       U(-50, 50)           systemic velocity [km/s]
========== ==================== =============================================

On top of these boxes the halo gets a default *measure* (``halo_measure =
"density"``): the prior is flat in the log dark-matter density at radii
spread over the data (R_half/4, R_half, 4 R_half, R_half the stars' median
projected radius) rather than in log10 r_s and gamma themselves, i.e. the
boxes above are multiplied by the Jacobian of
:func:`dsphnf.baseline.halo_measure.log_halo_measure`.  Flat priors in
log10 r_s and gamma put most of their volume on scale radii far beyond the
stars, where every r_s gives the same power law inside the data; that volume
made the bands of rho too narrow (benchmarks/calibration_baseline.md).
``halo_measure = "flat"`` in a priors file restores priors flat in the
parameters themselves.

A priors file (JSON or TOML, ``--priors FILE``) overrides any of these.
Each entry is a number (fix the parameter), a two-element list
``[lo, hi]`` (uniform) or a table ``{"uniform": [lo, hi]}`` or
``{"normal": [mean, sd]}``.  Example (JSON)::

    {"gamma_star": 1.0, "log10_rs": [-1, 1], "gamma": {"normal": [1.0, 0.5]}}

and the same in TOML::

    gamma_star = 1.0
    log10_rs = [-1, 1]
    gamma = {normal = [1.0, 0.5]}
    halo_measure = "flat"

User priors on log10_rs or gamma are multiplied by the density measure unless
``halo_measure = "flat"``.
"""
from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import FitError

__all__ = ["PARAMETERS", "HALO_MEASURES", "Prior", "parse_prior", "parse_measure", "read_priors", "default_prior"]

#: All parameter names, their default prior and a description with units.
PARAMETERS: dict[str, tuple[object, str]] = {
    "log10_rstar": ((-2.0, 1.0), "log10 stellar scale radius r* [kpc]"),
    "gamma_star": ((0.0, 2.0), "stellar inner slope gamma*"),
    "beta_star": ((3.2, 8.0), "stellar outer slope beta*"),
    "alpha_star": (2.0, "stellar transition sharpness alpha*"),
    "log10_rho0": ((4.0, 11.0), "log10 halo density scale rho0 [Msun/kpc^3]"),
    "log10_rs": ((-1.5, 1.5), "log10 halo scale radius r_s [kpc]"),
    "gamma": ((0.0, 2.0), "halo inner slope gamma"),
    "alpha_dm": ((0.5, 3.0), "halo transition sharpness alpha"),
    "beta_dm": (3.0, "halo outer slope"),
    "log10_rho_half": ((4.0, 11.0), "log10 halo density at R_half [Msun/kpc^3] (broken)"),
    "gamma_1": ((0.0, 2.0), "halo slope -dln rho/dln r inside R_half/2 (broken)"),
    "gamma_2": ((0.0, 3.0), "halo slope -dln rho/dln r from R_half/2 to R_half (broken)"),
    "gamma_3": ((0.0, 3.0), "halo slope -dln rho/dln r from R_half to 2 R_half (broken)"),
    "gamma_4": ((0.0, 3.0), "halo slope -dln rho/dln r beyond 2 R_half (broken; at least 2 beyond 4 R_half)"),
    "beta_sym": ((-1.0, 1.0), "symmetrised constant anisotropy beta/(2-beta)"),
    "b0_sym": ((-1.0, 1.0), "symmetrised central anisotropy b0/(2-b0) (cuddeford, baes)"),
    "binf_sym": ((-1.0, 1.0), "symmetrised outer anisotropy binf/(2-binf) (baes)"),
    "log10_ra": ((-1.5, 1.5), "log10 anisotropy radius r_a [kpc] (om, cuddeford, baes)"),
    "eta": ((1.0, 3.0), "Baes transition sharpness eta"),
    "kurtosis": ((3.0, 12.0), "line-of-sight velocity kurtosis <v^4>/<v^2>^2 (losvd kurtosis)"),
    "kurtosis_inner": ((3.0, 12.0), "line-of-sight velocity kurtosis at R_half/4 (losvd kurtosis-radial)"),
    "kurtosis_outer": ((3.0, 12.0), "line-of-sight velocity kurtosis at 4 R_half (losvd kurtosis-radial)"),
    "v_sys": ((-50.0, 50.0), "systemic velocity [km/s]"),
}

#: Prior measures of the halo: flat in the log density at data radii (default), or in the parameters.
HALO_MEASURES = ("density", "flat")


@dataclass(frozen=True)
class Prior:
    """One parameter's prior: ``fixed`` value, ``uniform`` (lo, hi) or ``normal`` (mean, sd)."""

    kind: str
    a: float
    b: float = 0.0

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        """Log density (up to a constant) at ``x``; -inf outside a uniform range."""
        x = np.asarray(x, dtype=float)
        if self.kind == "uniform":
            return np.where((x >= self.a) & (x <= self.b), 0.0, -np.inf)
        if self.kind == "normal":
            return -0.5 * ((x - self.a) / self.b) ** 2
        raise ValueError("a fixed parameter has no density")

    def centre(self) -> float:
        return 0.5 * (self.a + self.b) if self.kind == "uniform" else self.a

    def width(self) -> float:
        return (self.b - self.a) if self.kind == "uniform" else self.b

    def describe(self) -> str:
        if self.kind == "fixed":
            return f"fixed {self.a:g}"
        if self.kind == "uniform":
            return f"U({self.a:g}, {self.b:g})"
        return f"N({self.a:g}, {self.b:g})"


def parse_prior(name: str, spec: object, source: str) -> Prior:
    """Turn one priors-file entry into a :class:`Prior` (FitError on nonsense)."""
    bad = f"{source}: bad prior for {name!r}: use a number, [lo, hi], {{uniform = [lo, hi]}} or {{normal = [mean, sd]}}"
    if isinstance(spec, bool):
        raise FitError(bad)
    if isinstance(spec, (int, float)):
        if not math.isfinite(spec):
            raise FitError(bad)
        return Prior("fixed", float(spec))
    kind = "uniform"
    if isinstance(spec, Mapping):
        if len(spec) != 1 or next(iter(spec)) not in ("uniform", "normal"):
            raise FitError(bad)
        kind, spec = next(iter(spec.items()))
    if not (isinstance(spec, (list, tuple)) and len(spec) == 2):
        raise FitError(bad)
    try:
        a, b = float(spec[0]), float(spec[1])
    except (TypeError, ValueError):
        raise FitError(bad) from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise FitError(bad)
    if kind == "uniform" and not a < b:
        raise FitError(f"{source}: prior for {name!r} needs lo < hi, got [{a:g}, {b:g}]")
    if kind == "normal" and not b > 0:
        raise FitError(f"{source}: normal prior for {name!r} needs sd > 0, got {b:g}")
    return Prior(kind, a, b)


def parse_measure(spec: object, source: str) -> str:
    """The ``halo_measure`` entry: one of :data:`HALO_MEASURES` (FitError otherwise)."""
    if not (isinstance(spec, str) and spec.strip().lower() in HALO_MEASURES):
        raise FitError(f"{source}: halo_measure must be one of {', '.join(map(repr, HALO_MEASURES))}, got {spec!r}")
    return spec.strip().lower()


def read_priors(path: str | Path) -> dict[str, Prior | str]:
    """Read a JSON (``.json``) or TOML (anything else) priors file.

    Returns
    -------
    dict
        Parameter name -> :class:`Prior`, and ``"halo_measure"`` -> ``"density"``
        or ``"flat"`` where the file sets it.

    Raises
    ------
    FitError
        One line naming the file and the problem (unreadable, not JSON/TOML,
        unknown parameter, malformed entry).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise FitError(f"{path}: cannot read priors file: {exc.__class__.__name__}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        what = "JSON" if path.suffix.lower() == ".json" else "TOML"
        msg = str(exc).splitlines()[0] if str(exc) else ""
        raise FitError(f"{path}: not valid {what}: {msg}") from None
    if not isinstance(data, Mapping):
        raise FitError(f"{path}: priors file must hold a table of parameter names")
    out: dict[str, Prior | str] = {}
    for name, spec in data.items():
        if name == "halo_measure":
            out[name] = parse_measure(spec, str(path))
            continue
        if name not in PARAMETERS:
            raise FitError(f"{path}: unknown parameter {name!r}; known: {', '.join(PARAMETERS)}")
        out[name] = parse_prior(name, spec, str(path))
    return out


def default_prior(name: str) -> Prior:
    """The default prior of parameter ``name`` (:data:`PARAMETERS`): fixed or uniform.

    Examples
    --------
    >>> default_prior("gamma").describe(), default_prior("beta_dm").describe()
    ('U(0, 2)', 'fixed 3')
    """
    spec = PARAMETERS[name][0]
    return Prior("fixed", float(spec)) if isinstance(spec, (int, float)) else Prior("uniform", *map(float, spec))

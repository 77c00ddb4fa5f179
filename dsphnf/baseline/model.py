"""The parametric Jeans baseline's model: its parts, which parameters are free, and their unpacking.

The model has three parts:

- **Stars** (tracer): Zhao profile
  nu(r) ∝ (r/r*)^-gamma* [1 + (r/r*)^alpha*]^((gamma* - beta*)/alpha*),
  with r* [kpc], inner slope gamma*, outer slope beta*; alpha* = 2 fixed.
- **Dark matter**: Zhao/gNFW halo
  rho(r) = rho0 (r/r_s)^-gamma [1 + (r/r_s)^alpha_dm]^((gamma - beta_dm)/alpha_dm)
  with rho0 [Msun/kpc^3], r_s [kpc] and inner slope gamma free, outer slope
  beta_dm = 3.  Named families (:data:`HALOS`): ``zhao-alpha`` (default,
  :data:`DEFAULT_HALO`) frees the transition sharpness alpha_dm too
  (U(0.5, 3)), so the halo can turn over as sharply as a Burkert or Einasto
  core; ``zhao`` fixes alpha_dm = 1 (the generalised NFW, the Gaia Challenge
  haloes' family); ``nfw`` fixes gamma = 1, ``cored`` gamma = 0 (both
  alpha_dm = 1); ``broken`` is a broken power law with nodes at 1/4 to 4
  R_half, the density at R_half and four slopes free
  (:mod:`dsphnf.baseline.halo_family`).  The stellar mass is neglected.
- **Anisotropy**: any given model of :mod:`dsphnf.anisotropy` (``isotropic``,
  ``constant:B``, ``om:RA``, ``cuddeford:B0,RA``, ``baes:B0,BINF,RA,ETA`` or a
  callable beta(r)), or an inferred family: ``constant`` (sampled as the
  symmetrised beta_sym = beta / (2 - beta) in [-1, 1]), ``om`` (log10 r_a),
  ``cuddeford`` (b0_sym = b0 / (2 - b0), log10 r_a) or ``baes`` (b0_sym,
  binf_sym, log10 r_a, eta).
- **Velocities**: the line-of-sight velocity distribution at each radius
  has the Jeans model's dispersion sigma_los(R) and a Gaussian shape, or
  (``losvd="kurtosis"``) a heavy-tailed shape with one free kurtosis, or
  (``losvd="kurtosis-radial"``) one whose kurtosis changes with R
  (:mod:`dsphnf.baseline.losvd`), and the **systemic velocity** v_sys [km/s]
  (catalogues usually have it removed already, so the prior is centred on 0).

The parameters, their default priors and the priors-file format are in
:mod:`dsphnf.baseline.priors`.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np

from ..anisotropy import AnisotropySpec, Inferred, Isotropic, require_form
from ..errors import FitError
from .halo_family import (BROKEN_NODES, DEFAULT_HALO, HALO_PARAMETER_NAMES, HALOS, halo_family, halo_parameters,
                          unpack_halo)
from .halo_measure import MEASURE_RADII, SHAPE_PARAMETERS, log_halo_measure
from .losvd import DEFAULT_LOSVD, KURTOSIS_NODES, LOSVD_PARAMETERS, losvd_shape
from .priors import PARAMETERS, Prior, default_prior, parse_measure

__all__ = ["ANISOTROPY_PARAMETERS", "ANISOTROPY_NAMES", "BASELINE_FORMS", "BaselineModel",
           "HALOS", "DEFAULT_HALO", "halo_family"]

#: Sampled parameters of each inferred anisotropy family and the physical ones they give.
ANISOTROPY_PARAMETERS: dict[str, tuple[str, ...]] = {
    "constant": ("beta_sym",),
    "om": ("log10_ra",),
    "cuddeford": ("b0_sym", "log10_ra"),
    "baes": ("b0_sym", "binf_sym", "log10_ra", "eta"),
}
#: Every sampled anisotropy parameter, of any family.
ANISOTROPY_NAMES = frozenset(n for names in ANISOTROPY_PARAMETERS.values() for n in names)

#: Anisotropy forms the baseline supports (see :func:`dsphnf.anisotropy.require_form`): every given
#: model, and the families whose integrating factor has a closed form that vectorises over walkers.
BASELINE_FORMS = ("given:*", "inferred:constant", "inferred:om", "inferred:cuddeford", "inferred:baes")


class BaselineModel:
    """The parametric model: which parameters are free, their priors, and unpacking.

    Parameters
    ----------
    halo : {'zhao-alpha', 'zhao', 'nfw', 'cored', 'broken'}
        Halo family (:data:`HALOS`: ``zhao-alpha``, the default, frees
        alpha_dm, ``zhao`` fixes alpha_dm = 1, ``nfw`` fixes gamma = alpha_dm = 1,
        ``cored`` gamma = 0 and alpha_dm = 1; ``broken`` the broken power
        law, which needs ``r_half``).
    anisotropy : Anisotropy or Inferred
        Any given model, or an inferred ``constant``, ``om``, ``cuddeford``
        or ``baes`` (see :data:`BASELINE_FORMS`, :data:`ANISOTROPY_PARAMETERS`).
    priors : mapping, optional
        Overrides, name -> :class:`Prior` (see :func:`read_priors`), and
        optionally ``"halo_measure"`` -> ``"density"`` (default) or ``"flat"``.
    r_half : float, optional
        The data's median projected radius [kpc], which places the radii of
        the density measure (:mod:`dsphnf.baseline.halo_measure`); without it
        the halo priors are flat in the parameters (``fit_baseline`` always
        passes it).
    losvd : {'gaussian', 'kurtosis', 'kurtosis-radial'}
        The line-of-sight velocity distribution's shape
        (:data:`~dsphnf.baseline.losvd.LOSVD_SHAPES`): Gaussian (default),
        heavy-tailed with the parameter ``kurtosis`` free, or with
        ``kurtosis_inner`` and ``kurtosis_outer`` free (which needs ``r_half``).

    Examples
    --------
    >>> from dsphnf.anisotropy import parse_anisotropy
    >>> BaselineModel("nfw", parse_anisotropy("cuddeford")).names
    ['log10_rstar', 'gamma_star', 'beta_star', 'log10_rho0', 'log10_rs', 'b0_sym', 'log10_ra', 'v_sys']
    >>> BaselineModel("zhao", parse_anisotropy("isotropic"), r_half=0.2).describe()["halo_measure"]
    'flat in ln rho at r = 0.05, 0.2, 0.8 kpc (0.25, 1, 4 R_half)'
    >>> BaselineModel("zhao-alpha", parse_anisotropy("isotropic"), r_half=0.2).measure_on
    ('log10_rs', 'gamma', 'alpha_dm')
    >>> BaselineModel("nfw", parse_anisotropy("isotropic"), losvd="kurtosis").names[-2:]
    ['kurtosis', 'v_sys']
    >>> m = BaselineModel("nfw", parse_anisotropy("isotropic"), r_half=0.2, losvd="kurtosis-radial")
    >>> m.names[-3:], m.describe()["kurtosis_nodes"]
    (['kurtosis_inner', 'kurtosis_outer', 'v_sys'], 'kurtosis_inner at R = 0.05 kpc, kurtosis_outer at R = 0.8 kpc')
    >>> m = BaselineModel("broken", parse_anisotropy("isotropic"), r_half=0.2)
    >>> m.names[3:8]
    ['log10_rho_half', 'gamma_1', 'gamma_2', 'gamma_3', 'gamma_4']
    >>> m.describe()["halo_measure"]
    'flat in ln rho at r = 0.05, 0.1, 0.2, 0.4, 0.8 kpc'
    """

    def __init__(self, halo: str = DEFAULT_HALO, anisotropy: AnisotropySpec = Isotropic(),
                 priors: Mapping[str, Prior | str] | None = None, r_half: float | None = None,
                 losvd: str = DEFAULT_LOSVD) -> None:
        self.halo = halo = halo_family(halo.strip().lower())
        self.anisotropy = require_form(anisotropy, BASELINE_FORMS, "the baseline")
        self.anisotropy_spec = anisotropy.spec()
        self.inferred = isinstance(anisotropy, Inferred)
        self.losvd = losvd_shape(losvd)
        sampled = set(ANISOTROPY_PARAMETERS[anisotropy.family]) if self.inferred else set()
        sampled |= set(LOSVD_PARAMETERS[self.losvd])
        other_halo = HALO_PARAMETER_NAMES - set(halo_parameters(halo))
        velocity = {n for names in LOSVD_PARAMETERS.values() for n in names}
        used = {n for n in PARAMETERS if n not in ANISOTROPY_NAMES | other_halo | velocity}
        used |= sampled | set(halo_parameters(halo))
        priors = dict(priors or {})
        measure = parse_measure(priors.pop("halo_measure", "density"), "priors")
        for name in priors:
            if name in velocity and name not in used:
                shape = next(s for s, names in LOSVD_PARAMETERS.items() if name in names)
                raise FitError(f"prior for {name!r} applies only with --losvd {shape}")
            if name in other_halo and name not in used:
                raise FitError(f"prior for {name!r} does not apply to --halo {halo}")
            if name not in used:
                raise FitError(f"prior for {name!r} does not apply to anisotropy {anisotropy.spec()!r}")
            if name in HALOS[halo]:
                raise FitError(f"prior for {name!r} conflicts with --halo {halo} "
                               f"(which fixes {name} = {HALOS[halo][name]:g})")
        self.priors: dict[str, Prior] = {}
        for name in PARAMETERS:
            if name not in used:
                continue
            if name in HALOS[halo]:
                self.priors[name] = Prior("fixed", HALOS[halo][name])
            else:
                self.priors[name] = priors.get(name, default_prior(name))
        self.names: list[str] = [n for n, p in self.priors.items() if p.kind != "fixed"]
        self.fixed: dict[str, float] = {n: p.a for n, p in self.priors.items() if p.kind == "fixed"}
        if r_half is not None and not (math.isfinite(r_half) and r_half > 0):
            raise FitError(f"r_half must be > 0 kpc, got {r_half}")
        if halo == "broken" and r_half is None:
            raise FitError(f"the {halo} halo family needs the data's R_half for its nodes")
        if self.losvd == "kurtosis-radial" and r_half is None:
            raise FitError(f"--losvd {self.losvd} needs the data's R_half for its nodes")
        self.r_half = None if r_half is None else float(r_half)
        #: Free halo shape parameters the density measure covers (empty: priors flat in the parameters).
        self.measure_on: tuple[str, ...] = ()
        if measure == "density" and self.r_half is not None:
            self.measure_on = tuple(n for n in SHAPE_PARAMETERS if n in self.names)
        self.halo_measure = "density" if self.measure_on else "flat"

    @property
    def ndim(self) -> int:
        """Number of free parameters."""
        return len(self.names)

    def describe(self) -> dict[str, str]:
        """Parameter name -> prior as text (for summary.json)."""
        out = {n: p.describe() for n, p in self.priors.items()}
        if self.measure_on:
            c = MEASURE_RADII[len(self.measure_on)]
            radii = ", ".join(f"{x * self.r_half:.3g}" for x in c)
            out["halo_measure"] = f"flat in ln rho at r = {radii} kpc ({', '.join(f'{x:.3g}' for x in c)} R_half)"
        elif self.halo == "broken":
            radii = ", ".join(f"{x * self.r_half:.3g}" for x in BROKEN_NODES)
            out["halo_measure"] = f"flat in ln rho at r = {radii} kpc"
        else:
            out["halo_measure"] = "flat in the parameters"
        if self.losvd == "kurtosis-radial":
            out["kurtosis_nodes"] = ", ".join(f"{n} at R = {x * self.r_half:.3g} kpc" for n, x in
                                              zip(LOSVD_PARAMETERS[self.losvd], KURTOSIS_NODES))
        return out

    def log_prior(self, theta: np.ndarray) -> np.ndarray:
        """Log prior (up to a constant) for ``theta`` of shape (B, ndim) -> (B,).

        The sum of the parameters' own log densities, plus the log of the
        halo's density measure (:func:`~dsphnf.baseline.halo_measure.log_halo_measure`)
        where it is on (:attr:`measure_on`); -inf outside the boxes.
        """
        theta = np.atleast_2d(theta)
        out = np.zeros(theta.shape[0])
        for i, n in enumerate(self.names):
            out = out + self.priors[n].logpdf(theta[:, i])
        ok = np.isfinite(out)
        if self.measure_on and np.any(ok):
            p = self.unpack(theta[ok])
            out[ok] += log_halo_measure(p, self.measure_on, self.r_half)
        return out

    def unpack(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Physical parameters for ``theta`` (B, ndim): arrays of shape (B,).

        Keys: ``rstar``, ``gamma_star``, ``beta_star``, ``alpha_star`` (stars),
        the halo's (:func:`~dsphnf.baseline.halo_family.unpack_halo`: ``rho0``
        [Msun/kpc^3], ``rs`` [kpc], ``gamma``, ``alpha_dm``, ``beta_dm`` for a
        Zhao family; ``ln_nodes``, ``ln_rho_nodes``, ``inner``, ``outer`` for
        ``broken``), ``v_sys`` [km/s], ``kurtosis`` (with ``losvd="kurtosis"``),
        ``kurtosis_inner`` and ``kurtosis_outer`` (with ``losvd="kurtosis-radial"``) and
        ``valid`` (physically allowed rows); for an inferred anisotropy also
        its physical parameters, named as the fields of the given models: ``beta0`` (constant), ``ra`` [kpc] (om),
        ``b0``, ``ra`` (cuddeford), ``b0``, ``binf``, ``ra``, ``eta`` (baes).
        """
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        B = theta.shape[0]
        col = {n: theta[:, i] for i, n in enumerate(self.names)}
        get = lambda n: col[n] if n in col else np.full(B, self.fixed[n])
        p = {
            "rstar": 10.0 ** get("log10_rstar"),
            "gamma_star": get("gamma_star"),
            "beta_star": get("beta_star"),
            "alpha_star": get("alpha_star"),
            "v_sys": get("v_sys"),
            **unpack_halo(self.halo, get, self.r_half),
        }
        valid = (p["gamma_star"] < 3) & (p["beta_star"] > 3) & (p["alpha_star"] > 0) & p.pop("valid_halo")
        if self.inferred:
            valid &= self._unpack_anisotropy(get, p)
        for name in LOSVD_PARAMETERS[self.losvd]:
            p[name] = get(name)
            valid &= (p[name] >= 3.0) & (p[name] <= 1e3)
        p["valid"] = valid & np.all(np.isfinite(theta), axis=1)
        return p

    def _unpack_anisotropy(self, get: Callable[[str], np.ndarray], p: dict[str, np.ndarray]) -> np.ndarray:
        """Physical parameters of the inferred anisotropy into ``p``; returns the rows that are allowed."""
        family = self.anisotropy.family
        valid = np.ones_like(get("v_sys"), dtype=bool)
        with np.errstate(divide="ignore", invalid="ignore"):
            for sym, key in (("beta_sym", "beta0"), ("b0_sym", "b0"), ("binf_sym", "binf")):
                if sym in ANISOTROPY_PARAMETERS[family]:
                    bs = get(sym)
                    p[key] = 2.0 * bs / (1.0 + bs)  # inverse of beta / (2 - beta)
                    valid &= (bs > -1.0) & (bs <= 1.0)
        if "log10_ra" in ANISOTROPY_PARAMETERS[family]:
            p["ra"] = 10.0 ** get("log10_ra")
        if "eta" in ANISOTROPY_PARAMETERS[family]:
            p["eta"] = get("eta")
            valid &= p["eta"] > 0
        return valid

    def initial_guess(self, R_half: float, sigma: float, v_mean: float = 0.0) -> np.ndarray:
        """A starting point for the optimiser from the data's scales.

        ``R_half`` [kpc] is the median projected radius and ``sigma`` [km/s]
        the line-of-sight dispersion; the halo normalisation follows from the
        Wolf et al. (2010) mass M(4/3 R_half) = 4 sigma^2 R_half / G.
        """
        from ..constants import G

        r_half3 = 4.0 / 3.0 * R_half
        mass = 4.0 * sigma**2 * R_half / G
        guess = {
            "log10_rstar": math.log10(max(R_half, 1e-3)),
            "gamma_star": 0.5,
            "beta_star": 5.0,
            "log10_rs": 0.0,
            "gamma": 1.0,
            "alpha_dm": 1.0,
            "beta_sym": 0.0,
            "log10_ra": math.log10(max(2.0 * R_half, 1e-3)),
            "kurtosis": 4.0, "kurtosis_inner": 4.0, "kurtosis_outer": 4.0,
            "v_sys": v_mean,
        }
        # NFW-ish halo with r_s = 1 kpc: M(r) ~ 2 pi rho0 r_s r^2 for r << r_s
        guess["log10_rho0"] = math.log10(mass / (2.0 * math.pi * r_half3**2))
        # broken: slopes steepening 1 -> 2; rho(R_half) from the mean density inside 4/3 R_half (slope ~1.3)
        guess |= {"gamma_1": 1.0, "gamma_2": 1.3, "gamma_3": 1.6, "gamma_4": 2.0,
                  "log10_rho_half": math.log10(mass * (3.0 - 1.3) / (4.0 * math.pi * r_half3**3))}
        out = []
        for n in self.names:
            pr = self.priors[n]
            x = guess.get(n, pr.centre())
            if pr.kind == "uniform":
                lo, hi = pr.a + 0.05 * pr.width(), pr.b - 0.05 * pr.width()
                x = min(max(x, lo), hi)
            out.append(x)
        return np.array(out)

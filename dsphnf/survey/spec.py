"""Settings of a survey, parsed and checked once: which galaxies, which methods, which systematics switches.

:func:`survey_spec` turns user input (galaxy names, method, switches) into a
:class:`SurveySpec`; anything malformed, an unknown galaxy or a missing
catalogue is a one-line :class:`SurveyError` before anything runs or is
written.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..anisotropy import anisotropy_from, require_form
from ..calibrate.spec import BaselineSettings, FitSettings, FlowSettings
from ..errors import DsphnfError
from ..galaxies import GALAXIES, RADIUS_KINDS, Galaxy, get_galaxy

__all__ = ["SurveyError", "SurveyOptions", "SurveySpec", "survey_spec", "DISTANCE_KINDS", "MEMBERSHIP_KINDS",
           "VERR_KINDS", "TRACER_KINDS", "FAST"]

#: How the distance enters: the table value, or one drawn from N(D, sigma_D) per posterior draw / ensemble member.
DISTANCE_KINDS = ("fixed", "per-draw")
#: How non-members are handled: membership probabilities as weights, or a foreground mixture in the likelihood
#: (over the catalogue's candidates with p >= 1e-3, or over every star with a usable velocity).
MEMBERSHIP_KINDS = ("weights", "mixture", "mixture-all")
#: Whether the catalogue's velocity errors enter the likelihood.
VERR_KINDS = ("used", "ignored")
#: Where the stellar density nu(r) comes from: the positions of the stars fitted (the spectroscopic sample), or
#: the photometry (a Plummer sphere of the table's half-light radius, fixed; the baseline only).
TRACER_KINDS = ("spectroscopic", "photometric")
#: Settings of ``--fast`` (a quick look, e.g. for tests and the book's fast mode).
FAST = {"max_steps": 300, "nwalkers": 24, "ensemble": 2, "steps": 40, "n_draws": 200}


class SurveyError(DsphnfError, ValueError):
    """Bad survey settings, an unknown galaxy or a missing catalogue (one line)."""


@dataclass(frozen=True)
class SurveyOptions:
    """The systematics switches of a survey (the defaults are the reference analysis).

    Attributes
    ----------
    radius : {"elliptical", "circular"}
        Projected radius of a star: circularised elliptical radius
        (:func:`dsphnf.catalog.elliptical_radius`) or sqrt(x^2 + y^2).
    distance : {"fixed", "per-draw"}
        The table distance, or a distance drawn from N(D, sigma_D) for every
        posterior draw (baseline) or ensemble member (flow), propagated
        exactly by the homology of the Jeans equations (positions and halo
        radii scale with D, densities with D^-2, masses with D; the
        half-light radius with D too).
    membership : {"weights", "mixture", "mixture-all"}
        Membership probabilities (p >= 1e-3) as weights; or unit weights and
        a broad Gaussian foreground mixed into the likelihood (a free
        fraction: the baseline's ``f_fg``, one per flow of an ensemble), for
        the same stars (``mixture``) or for every star with a usable velocity
        (``mixture-all``).
    velocity_errors : {"used", "ignored"}
        Whether the catalogue's velocity errors are added to the model dispersion.
    tracer : {"spectroscopic", "photometric"}
        The stellar density nu(r) fitted to the positions of the stars in the
        catalogue, or fixed to a Plummer sphere with the table's half-light
        radius (baseline only): a spectroscopic sample need not follow the
        light (its targets were selected), and a nu(r) too extended or too
        concentrated biases the Jeans mass low or high.
    """

    radius: str = "elliptical"
    distance: str = "fixed"
    membership: str = "weights"
    velocity_errors: str = "used"
    tracer: str = "spectroscopic"

    def __post_init__(self) -> None:
        for name, kinds in (("radius", RADIUS_KINDS), ("distance", DISTANCE_KINDS),
                            ("membership", MEMBERSHIP_KINDS), ("velocity_errors", VERR_KINDS),
                            ("tracer", TRACER_KINDS)):
            value = getattr(self, name)
            if value not in kinds:
                flag = "--" + name.replace("_", "-")
                raise SurveyError(f"unknown {flag} {value!r}: use {' or '.join(kinds)}")

    def spec(self) -> dict[str, str]:
        """JSON-ready record."""
        return dict(vars(self))


@dataclass(frozen=True)
class SurveySpec:
    """Parsed settings of a survey (build with :func:`survey_spec`).

    Attributes
    ----------
    galaxies : tuple of Galaxy
    fits : tuple of FlowSettings / BaselineSettings
        One per method.
    options : SurveyOptions
    seed : int
        Random seed of every fit (the same for every galaxy).
    n_draws : int
        Posterior draws behind the baseline's bands.
    root : str
        Reference-data folder holding ``walker_dwarfs/``.
    """

    galaxies: tuple[Galaxy, ...]
    fits: tuple[FitSettings, ...]
    options: SurveyOptions
    seed: int
    n_draws: int
    root: str

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(f.method for f in self.fits)

    def tasks(self) -> dict[str, dict[str, Any]]:
        """Per-task arguments of :func:`dsphnf.survey.run.survey_task`, keyed ``draco_baseline``."""
        return {f"{g.key}_{fit.method}": {"galaxy": g.key, "fit": fit} for g in self.galaxies for fit in self.fits}

    def common(self) -> dict[str, Any]:
        """Arguments shared by every task."""
        return {"options": self.options, "seed": self.seed, "n_draws": self.n_draws, "root": self.root}

    def describe(self) -> dict[str, Any]:
        """JSON-ready record of the settings."""
        fits = {f.method: {k: (v.spec() if hasattr(v, "spec") else v) for k, v in vars(f).items()} for f in self.fits}
        return {"galaxies": [g.key for g in self.galaxies], "fits": fits, "options": self.options.spec(),
                "seed": self.seed, "n_draws": self.n_draws}


def _integer(value: Any, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise SurveyError(f"{name} must be an integer of at least {least}, got {value!r}")
    return int(value)


def _fits(method: str, anisotropy: Any, max_steps: int, nwalkers: int, ensemble: int,
          steps: int, halo: str | None, losvd: str | None = None) -> tuple[FitSettings, ...]:
    from ..baseline.losvd import DEFAULT_LOSVD, losvd_shape
    from ..baseline.model import BASELINE_FORMS, DEFAULT_HALO, halo_family
    from ..flows.cnf import FLOW_FORMS
    from ..flows.fit_setup import resolved_velocity

    chosen = {"flow": ("flow",), "baseline": ("baseline",), "both": ("flow", "baseline")}.get(
        str(method).strip().lower())
    if chosen is None:
        raise SurveyError(f"unknown --method {method!r}: use flow, baseline or both")
    beta = anisotropy_from(anisotropy)
    fits: list[FitSettings] = []
    if "flow" in chosen:
        k = _integer(ensemble, "--ensemble", 1)
        fits.append(FlowSettings(require_form(beta, FLOW_FORMS, "the flow fit"), k, _integer(steps, "--steps", 1),
                                 velocity=resolved_velocity("auto", beta, k, kinematic=True)))
    if halo is not None and "baseline" not in chosen:
        raise SurveyError("--halo is the baseline's halo family; the flow has none: use --method baseline or both")
    if losvd is not None and "baseline" not in chosen:
        raise SurveyError("--losvd is the baseline's velocity distribution; the flow learns its own: use --method "
                          "baseline or both")
    halo = DEFAULT_HALO if halo is None else halo_family(str(halo).strip().lower(), "--halo", SurveyError)
    losvd = DEFAULT_LOSVD if losvd is None else losvd_shape(str(losvd).strip().lower(), "--losvd", SurveyError)
    if "baseline" in chosen:
        fits.append(BaselineSettings(require_form(beta, BASELINE_FORMS, "the baseline"),
                                     _integer(max_steps, "--max-steps", 10), _integer(nwalkers, "--walkers", 4), halo,
                                     losvd))
    return tuple(fits)


def survey_spec(galaxies: Sequence[str] | None = None, *, method: str = "baseline", anisotropy: Any = "isotropic",
                options: SurveyOptions | None = None, fast: bool = False, max_steps: int | None = None,
                nwalkers: int | None = None, ensemble: int | None = None, steps: int | None = None,
                n_draws: int | None = None, seed: int = 0, root: str | os.PathLike | None = None,
                halo: str | None = None, losvd: str | None = None) -> SurveySpec:
    """Parse and check survey settings once; every catalogue must be present.

    Parameters
    ----------
    galaxies : sequence of str or None
        Galaxy names (:func:`dsphnf.galaxies.get_galaxy`); None or empty: all nine.
    method : {"flow", "baseline", "both"}
    anisotropy : str or Anisotropy
        beta(r) of the fits (:mod:`dsphnf.anisotropy`; the baseline infers
        ``constant``, ``om``, ``cuddeford`` or ``baes``, the flow ``free``: with
        an even ensemble in both velocity families, as ``dsphnf fit``'s default
        ``--velocity auto``, :func:`dsphnf.flows.fit_setup.resolved_velocity`).
    options : SurveyOptions
        The systematics switches (default: the reference analysis).
    fast : bool
        Quick settings (:data:`FAST`) for whatever is not given.
    max_steps, nwalkers : int
        Baseline emcee steps at most and walkers (default 20000 and 32).
    ensemble, steps : int
        Flows per galaxy and training steps per flow (default 4 and ``dsphnf fit``'s default).
    n_draws : int
        Posterior draws behind the baseline bands (default 1000).
    seed : int
    root : path, optional
        Reference-data folder (default :func:`dsphnf.datasets.data_root`).
    halo : str, optional
        The baseline's halo family (:data:`dsphnf.baseline.model.HALOS`; default
        :data:`~dsphnf.baseline.model.DEFAULT_HALO`, ``zhao-alpha``).
    losvd : str, optional
        The baseline's line-of-sight velocity distribution (:data:`dsphnf.baseline.losvd.LOSVD_SHAPES`;
        default ``gaussian``; ``kurtosis``: heavy-tailed, its kurtosis free; ``kurtosis-radial``: its kurtosis
        at R_half/4 and 4 R_half free).

    Raises
    ------
    SurveyError, DsphnfError
        One line: an unknown galaxy, a missing catalogue, a bad setting.

    Examples
    --------
    >>> survey_spec(["Andromeda"])
    Traceback (most recent call last):
    ...
    dsphnf.errors.DsphnfError: unknown galaxy 'Andromeda'; choose from carina, cvn1, draco, ..., ursaminor
    """
    from ..datasets import data_root
    from ..flows.settings import default_steps

    chosen = [get_galaxy(name) for name in (galaxies or list(GALAXIES))]
    if len({g.key for g in chosen}) != len(chosen):
        raise SurveyError(f"a galaxy is named twice: {', '.join(g.key for g in chosen)}")
    base = data_root(root)
    if base is None:
        raise SurveyError("reference data not found: set DSPHNF_DATA to the folder holding walker_dwarfs/")
    for g in chosen:
        g.catalogue_path(base)  # one line naming the missing file
    options = options or SurveyOptions()
    pick = lambda value, key, default: value if value is not None else (FAST[key] if fast else default)  # noqa: E731
    fits = _fits(method, anisotropy, pick(max_steps, "max_steps", 20000), pick(nwalkers, "nwalkers", 32),
                 pick(ensemble, "ensemble", 4), pick(steps, "steps", default_steps()), halo, losvd)
    if options.tracer == "photometric" and any(f.method == "flow" for f in fits):
        raise SurveyError("--tracer photometric is for the baseline: the flow learns the stellar density from the "
                          "stars' positions; use --method baseline")
    return SurveySpec(tuple(chosen), fits, options, _integer(seed, "--seed", 0),
                      _integer(pick(n_draws, "n_draws", 1000), "n_draws", 10), str(Path(base)))

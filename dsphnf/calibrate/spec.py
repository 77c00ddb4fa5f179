"""Settings of a calibration, parsed and checked once: what the mocks are drawn from and how each method fits.

:func:`calibration_spec` turns user input into a :class:`CalibrationSpec`
(one-line :class:`CalibrationError` for anything malformed) and draws one
small mock to check the model and to compute R_half of the true tracer.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Union

import numpy as np

from ..anisotropy import Anisotropy, AnisotropySpec, anisotropy_from, require_form
from ..errors import DsphnfError
from ..result import MIN_STARS
from .score import RADII_OVER_RHALF, projected_half_radius

__all__ = ["MIN_REALISATIONS", "CalibrationError", "MockSource", "FlowSettings", "StartSettings", "BaselineSettings",
           "ProfileSettings", "FitSettings",
           "CalibrationSpec", "calibration_spec"]

#: Fewest realisations a coverage can be computed from.
MIN_REALISATIONS = 2
_METHODS = ("flow", "baseline", "profile", "start")


class CalibrationError(DsphnfError, ValueError):
    """Bad calibration settings (one line)."""


@dataclass(frozen=True)
class MockSource:
    """What the mocks are drawn from: a named Gaia Challenge ``model``, or ``halo``/``tracer`` spec strings.

    ``anisotropy`` is the mock's given beta(r); the spec strings are handed to
    :func:`dsphnf.mocks.draw_mock` as they are (it parses them).
    """

    model: str | None = None
    halo: str | None = None
    tracer: str | None = None
    anisotropy: Anisotropy | None = None

    def label(self) -> str:
        """Human-readable description, e.g. ``'PlumCuspIso'`` or ``'halo burkert:1e8,0.5, tracer plummer:0.25'``."""
        parts = [self.model] if self.model else []
        parts += [f"{k} {v}" for k, v in (("halo", self.halo), ("tracer", self.tracer)) if v]
        if self.anisotropy is not None:
            parts.append(f"anisotropy {self.anisotropy.spec()}")
        return ", ".join(parts)

    def draw(self, n: int, seed: int):
        """``draw_mock(model, n, seed, halo=..., tracer=..., anisotropy=...)`` (only the keywords given)."""
        from ..mocks import draw_mock

        extra = {k: v for k, v in (("halo", self.halo), ("tracer", self.tracer), ("anisotropy", self.anisotropy))
                 if v is not None}
        return draw_mock(self.model, n, seed, **extra)


@dataclass(frozen=True)
class FlowSettings:
    """Flow fits: ``fit_flow(catalog, anisotropy, ensemble=ensemble, steps=steps)``, with
    ``TrainConfig(nu_mean=nu_mean)``, ``FitOptions(warm_start=warm_start, centre=centre)`` and
    ``FlowConfig(velocity=velocity)``; ``centre`` resolved (:func:`calibration_spec` turns ``"auto"`` into
    ``"all-stars"`` or ``"members"``; the survey keeps ``"members"``, the centre of its bands)."""

    anisotropy: AnisotropySpec
    ensemble: int
    steps: int
    nu_mean: str = "none"
    warm_start: int = 0
    centre: str = "members"
    velocity: str = "elliptical"
    method: ClassVar[str] = "flow"

    @property
    def banded(self) -> bool:
        """Whether the fit has bands (an ensemble of at least two flows)."""
        return self.ensemble >= 2


@dataclass(frozen=True)
class StartSettings:
    """The flow's untrained start: one flow, one Adam step (``fit_flow(catalog, anisotropy, ensemble=1, steps=1)``).

    The Plummer/Gaussian start scaled to the stars, which a trained flow must
    beat on the same mocks to show that training learned something; no bands.
    """

    anisotropy: AnisotropySpec
    ensemble: int = field(default=1, init=False)
    steps: int = field(default=1, init=False)
    nu_mean: str = field(default="none", init=False)
    warm_start: int = field(default=0, init=False)
    centre: str = field(default="members", init=False)
    velocity: str = field(default="elliptical", init=False)
    method: ClassVar[str] = "start"
    banded: ClassVar[bool] = False


@dataclass(frozen=True)
class BaselineSettings:
    """Baseline fits: ``fit_baseline(catalog, anisotropy, halo, max_steps=max_steps, nwalkers=nwalkers)``.

    ``halo`` is the fitted halo family (:data:`dsphnf.baseline.HALOS`; default ``zhao-alpha``, the
    transition sharpness free), ``losvd`` the velocity distribution's shape
    (:data:`dsphnf.baseline.losvd.LOSVD_SHAPES`: ``gaussian``, the default, ``kurtosis`` or
    ``kurtosis-radial``).
    """

    anisotropy: AnisotropySpec
    max_steps: int
    nwalkers: int
    halo: str = "zhao-alpha"  # dsphnf.baseline.model.DEFAULT_HALO (tested equal; not imported: it loads emcee)
    losvd: str = "gaussian"  # dsphnf.baseline.losvd.DEFAULT_LOSVD (tested equal)
    method: ClassVar[str] = "baseline"
    banded: ClassVar[bool] = True


@dataclass(frozen=True)
class ProfileSettings:
    """The baseline's likelihood with profile-likelihood bands, no prior and no sampler
    (:func:`dsphnf.baseline.profile_likelihood.profile_bands`; halo family ``halo``, LOSVD shape ``losvd``,
    the default prior boxes)."""

    anisotropy: AnisotropySpec
    halo: str = "zhao-alpha"  # dsphnf.baseline.model.DEFAULT_HALO
    losvd: str = "gaussian"  # dsphnf.baseline.losvd.DEFAULT_LOSVD
    method: ClassVar[str] = "profile"
    banded: ClassVar[bool] = True


FitSettings = Union[FlowSettings, StartSettings, BaselineSettings, ProfileSettings]


@dataclass(frozen=True)
class CalibrationSpec:
    """Parsed settings of a calibration (build with :func:`calibration_spec`).

    Attributes
    ----------
    source : MockSource
    realisations, stars : int
        Mocks and stars per mock.
    fits : tuple of FlowSettings / BaselineSettings
        One per method.
    r_half : float
        Projected half-number radius [kpc] of the true tracer.
    seed : int
        Base random seed: realisation ``i`` uses ``seed + i``.
    """

    source: MockSource
    realisations: int
    stars: int
    fits: tuple[FitSettings, ...]
    r_half: float
    seed: int = 0

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(f.method for f in self.fits)

    @property
    def radii(self) -> np.ndarray:
        """The scored radii [kpc]."""
        return np.asarray(RADII_OVER_RHALF) * self.r_half

    def tasks(self) -> dict[str, dict[str, Any]]:
        """Per-task arguments of :func:`calibration_task`, keyed ``r0003_flow``."""
        return {f"r{i:04d}_{fit.method}": {"realisation": i, "seed": self.seed + i, "fit": fit}
                for i in range(self.realisations) for fit in self.fits}

    def describe(self) -> dict[str, Any]:
        """JSON-ready record of the settings."""
        value = lambda v: v.spec() if hasattr(v, "spec") else v
        fits = {f.method: {k.name: value(getattr(f, k.name)) for k in fields(f)} for f in self.fits}
        return {"source": self.source.label(), "realisations": self.realisations, "stars": self.stars,
                "seed": self.seed, "seed_rule": "realisation i: mock and fit use seed + i", "fits": fits,
                "r_half_kpc": self.r_half, "radii_over_r_half": list(RADII_OVER_RHALF),
                "radii_kpc": self.radii.tolist()}


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise CalibrationError(message)


def _integer(value: Any, name: str, least: int) -> int:
    _need(not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= least,
          f"{name} must be an integer of at least {least}, got {value!r}")
    return int(value)


def _source(model: str | None, halo: str | None, tracer: str | None, anisotropy: Any) -> MockSource:
    from ..mocks import get_model

    _need(not (model and (halo or tracer)), "give a MODEL or --halo/--tracer, not both")
    _need(bool(model or halo or tracer), "give a MODEL (e.g. PlumCuspIso) or --halo SPEC --tracer SPEC")
    beta = None if anisotropy is None else require_form(anisotropy_from(anisotropy), ("given:*",), "a mock")
    return MockSource(get_model(model).name if model else None, halo, tracer, beta)


def _fit_settings(methods: str, fit_anisotropy: Any, ensemble: int, steps: int | None, max_steps: int,
                  nwalkers: int, fit_halo: str, nu_mean: str = "none", warm_start: int = 0,
                  centre: str = "auto", velocity: str = "auto", losvd: str = "gaussian") -> tuple[FitSettings, ...]:
    from ..baseline.losvd import losvd_shape
    from ..baseline.model import BASELINE_FORMS, halo_family
    from ..baseline.profile_likelihood import profile_refusal
    from ..flows.cnf import FLOW_FORMS
    from ..flows.fit_setup import centre_refusal, resolved_centre, resolved_velocity, velocity_refusal, warm_refusal
    from ..flows.nu_mean import NU_MEANS
    from ..flows.settings import CENTRES, default_steps

    words = [w.strip() for w in str(methods).lower().split(",")]
    aliases = {"both": ("flow", "baseline"), "all": _METHODS}
    chosen = {m for w in words for m in aliases.get(w, (w,))}
    _need(chosen <= set(_METHODS),
          f"unknown --method {methods!r}: use flow, baseline, profile, start, a comma list of them, both or all")
    beta = anisotropy_from(fit_anisotropy)
    halo_family(fit_halo, "--fit-halo", CalibrationError)
    if "profile" in chosen and profile_refusal(fit_halo):
        raise CalibrationError(profile_refusal(fit_halo))
    losvd_shape(losvd, "--losvd", CalibrationError)
    _need(nu_mean in NU_MEANS, f"--nu-mean must be one of {', '.join(NU_MEANS)}, got {nu_mean!r}")
    _need(centre in CENTRES, f"--centre must be one of {', '.join(CENTRES)}, got {centre!r}")
    fits: list[FitSettings] = []
    if "flow" in chosen:
        warm, k = _integer(warm_start, "--warm-start", 0), _integer(ensemble, "--ensemble", 1)
        centre = resolved_centre(centre, beta, kinematic=True)  # every mock has velocities
        velocity = resolved_velocity(velocity, beta, k, kinematic=True)
        why = ((warm_refusal(beta) if warm else None) or (centre_refusal(centre, beta) if k > 1 else None)
               or velocity_refusal(velocity, beta, k))
        if why is not None:
            raise CalibrationError(why)
        fits.append(FlowSettings(require_form(beta, FLOW_FORMS, "the flow fit"), k,
                                 default_steps() if steps is None else _integer(steps, "--steps", 1), nu_mean, warm,
                                 centre, velocity))
    if "baseline" in chosen:  # the limits of fit_baseline, checked before anything runs
        fits.append(BaselineSettings(require_form(beta, BASELINE_FORMS, "the baseline"),
                                     _integer(max_steps, "--max-steps", 10), _integer(nwalkers, "--walkers", 4),
                                     fit_halo, losvd))
    if "profile" in chosen:
        fits.append(ProfileSettings(require_form(beta, BASELINE_FORMS, "the profile likelihood"), fit_halo, losvd))
    if "start" in chosen:
        fits.append(StartSettings(require_form(beta, FLOW_FORMS, "the flow's start")))
    return tuple(fits)


def calibration_spec(model: str | None = None, *, halo: str | None = None, tracer: str | None = None,
                     anisotropy: Any = None, realisations: int = 20, stars: int = 1000, methods: str = "both",
                     ensemble: int = 8, fit_anisotropy: Any = "isotropic", steps: int | None = None,
                     max_steps: int = 20000, nwalkers: int = 32, seed: int = 0,
                     fit_halo: str = "zhao-alpha", nu_mean: str = "none", warm_start: int = 0,
                     centre: str = "auto", velocity: str = "auto", losvd: str = "gaussian") -> CalibrationSpec:
    """Parse and check calibration settings once; draws one small mock to check the model.

    Parameters
    ----------
    model : str or None
        Gaia Challenge model name (:data:`dsphnf.mocks.MODELS`), or None with ``halo``/``tracer``.
    halo, tracer : str or None
        Spec strings for :func:`dsphnf.mocks.draw_mock` (e.g. ``burkert:1e8,0.5``, ``plummer:0.25``).
    anisotropy : str, Anisotropy or None
        The mock's given beta(r) (None: the model's own).
    realisations, stars : int
        Mocks (>= 2) and stars per mock (>= 20).
    methods : str
        ``flow``, ``baseline`` (emcee posterior bands), ``profile`` (the
        baseline's profile-likelihood bands), ``start`` (the flow's untrained
        start, no bands: the yardstick of the trained flow), a comma list of
        them, ``both`` (flow and baseline) or ``all``.
    ensemble, steps : int
        Flows per fit and training steps per flow (None: ``dsphnf fit``'s default).
    fit_anisotropy : str or Anisotropy
        The beta(r) the fits assume (default isotropic), in the grammar of :mod:`dsphnf.anisotropy`.
    max_steps, nwalkers : int
        Baseline emcee settings.
    seed : int
        Base random seed (>= 0); realisation ``i`` uses ``seed + i``.
    fit_halo : str
        The baseline's halo family (``baseline`` and ``profile``; :data:`dsphnf.baseline.HALOS`, default
        ``zhao-alpha``, the transition sharpness free; ``zhao`` is the gNFW).
    nu_mean : str
        The flow's ``TrainConfig.nu_mean`` (``none``, the default, or ``zhao``: :mod:`dsphnf.flows.nu_mean`).
    warm_start : int
        The flow's ``FitOptions.warm_start`` (0, the default: members train from scratch; N: a k-step bootstrap).
    centre : str
        The flow's ``FitOptions.centre``: ``auto`` (default; resolved here: ``all-stars`` for a given
        ``fit_anisotropy``, else ``members``), ``members`` or ``all-stars`` (bands around a
        flow trained on all stars). A store written with another centre is refused on resume.
    velocity : str
        The flow's ``FlowConfig.velocity``: ``auto`` (default; resolved here,
        :func:`dsphnf.flows.fit_setup.resolved_velocity`: ``mixed`` for ``fit_anisotropy="free"`` and an even
        ``ensemble``, else ``elliptical``) or one of :data:`dsphnf.flows.separable.ENSEMBLE_VELOCITIES`
        (``separable``, ``angular`` and ``mixed`` need ``fit_anisotropy="free"``, ``mixed`` an even
        ``ensemble``). The start keeps the elliptical family.
    losvd : str
        The baseline's line-of-sight velocity distribution (``baseline`` and ``profile``; as ``dsphnf baseline
        --losvd``): ``gaussian`` (default), ``kurtosis`` (heavy-tailed, its kurtosis free) or
        ``kurtosis-radial`` (its kurtosis at R_half/4 and 4 R_half free).

    Raises
    ------
    CalibrationError, AnisotropyError, DsphnfError
        One line, for any malformed setting.

    Examples
    --------
    >>> spec = calibration_spec("plumcuspiso", realisations=2, stars=60, methods="flow", ensemble=2, steps=2)
    >>> spec.source.model, spec.methods, list(spec.tasks())
    ('PlumCuspIso', ('flow',), ['r0000_flow', 'r0001_flow'])
    >>> calibration_spec("PlumCuspIso", realisations=2, methods="flow,start").methods
    ('flow', 'start')
    >>> calibration_spec("PlumCuspIso", realisations=2, methods="flow", warm_start=50).fits[0].warm_start
    50
    >>> calibration_spec("PlumCuspIso", realisations=2, methods="flow").fits[0].centre
    'all-stars'
    >>> flow = calibration_spec("PlumCoreOm", realisations=2, methods="flow", fit_anisotropy="free").fits[0]
    >>> flow.centre, flow.velocity
    ('members', 'mixed')
    >>> calibration_spec("PlumCoreOm", realisations=2, methods="flow", fit_anisotropy="free",
    ...                  velocity="separable").fits[0].velocity
    'separable'
    >>> calibration_spec("PlumCuspIso", realisations=2, methods="baseline", fit_halo="zhao-alpha").fits[0].halo
    'zhao-alpha'
    >>> calibration_spec("PlumCuspIso", realisations=2, methods="profile", losvd="kurtosis").fits[0].losvd
    'kurtosis'
    >>> calibration_spec("PlumCuspIso", realisations=1)
    Traceback (most recent call last):
    ...
    dsphnf.calibrate.spec.CalibrationError: --realisations must be an integer of at least 2, got 1
    """
    source = _source(model, halo, tracer, anisotropy)
    realisations = _integer(realisations, "--realisations", MIN_REALISATIONS)
    stars = _integer(stars, "--stars", MIN_STARS)
    seed = _integer(seed, "--seed", 0)
    fits = _fit_settings(methods, fit_anisotropy, ensemble, steps, max_steps, nwalkers, fit_halo, nu_mean, warm_start,
                         centre, velocity, losvd)
    probe = source.draw(MIN_STARS, seed)  # parses halo/tracer specs now, before anything is written
    nu = getattr(getattr(probe.model, "tracer", None), "density", None)
    _need(callable(nu), f"the mock model of {source.label()} has no tracer density nu(r) to take R_half from")
    return CalibrationSpec(source, realisations, stars, fits, projected_half_radius(nu), seed)

"""General mock dwarfs: any halo, a (multi-population) Zhao tracer, a Cuddeford-family DF per population.

:func:`build_model` turns parsed (or spelled) halo, tracer and anisotropy into a
:class:`DwarfModel`; :func:`sample_model` draws 6-D stars with a population
label from the exact distribution functions (:class:`dsphnf.df.CuddefordDF`);
:func:`model_truth` gives the Jeans truth.  Every DF is built, and refused
when negative anywhere, before anything is sampled.  Units: kpc, km/s, Msun.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .anisotropy import Anisotropy, anisotropy_from, require_form
from .df import CuddefordDF
from .errors import DsphnfError
from .profiles import Zhao
from .specs import halo_spec, parse_halo, parse_tracer, tracer_spec
from .tracers import MixtureAnisotropy, TracerMixture, population_pressures

__all__ = ["DwarfModel", "build_model", "sample_model", "model_truth", "MOCK_FORMS", "DWARF_TRUTH_COLUMNS"]

#: Anisotropy forms ``dsphnf mock`` can draw.
MOCK_FORMS = ("given:isotropic", "given:constant", "given:om", "given:cuddeford")
#: Truth columns of a general model (mixtures add nu_K and beta_K per population K).
DWARF_TRUTH_COLUMNS = ("r", "nu", "sigma_r", "sigma_t", "beta", "M", "rho")


@dataclass(frozen=True)
class DwarfModel:
    """A general spherical mock dwarf.

    Attributes
    ----------
    name : str
        ``HALO|TRACER|ANISOTROPY`` in the grammar of ``dsphnf mock``.
    tracer : Zhao or TracerMixture
        Stellar number density nu(r) [kpc^-3], one star in total (callable).
    halo : Zhao, Burkert or Einasto
        Dark matter: ``.density`` [Msun/kpc^3], ``.mass`` [Msun].
    anisotropy : Anisotropy
        beta(r) of all the stars: the population's own model, or for a mixture
        a :class:`~dsphnf.tracers.MixtureAnisotropy`, with which
        ``surface_density_and_sigma_los2(R, model.tracer, model.halo.mass,
        model.anisotropy)`` is the mixture's exact projection.
    weights, components, anisotropies : tuple
        Per population: number fraction, normalised Zhao nu_k, anisotropy model.
    """

    name: str
    tracer: object
    halo: object
    anisotropy: Anisotropy
    weights: tuple[float, ...]
    components: tuple[Zhao, ...]
    anisotropies: tuple[Anisotropy, ...]

    @property
    def r_star(self) -> float:
        """Largest tracer scale radius [kpc]."""
        return max(c.rs for c in self.components)

    @property
    def r_star_min(self) -> float:
        """Smallest tracer scale radius [kpc]."""
        return min(c.rs for c in self.components)

    def distribution_functions(self) -> list[CuddefordDF]:
        """The (cached) DF of every population; raises DsphnfError for a negative one."""
        return [_df(c, self.halo, a) for c, a in zip(self.components, self.anisotropies)]


@functools.lru_cache(maxsize=32)
def _df(tracer: Zhao, halo, anisotropy: Anisotropy) -> CuddefordDF:
    return CuddefordDF(tracer, halo, anisotropy)


def _anisotropies(value, n_pop: int) -> tuple[Anisotropy, ...]:
    """One parsed given anisotropy per population from a spelling ('a;b'), a model or a sequence."""
    if isinstance(value, str):
        value = [v for v in value.split(";")]
    elif value is None or isinstance(value, Anisotropy) or callable(value):
        value = [value]
    items = [require_form(anisotropy_from(v), MOCK_FORMS, "dsphnf mock") for v in value]
    if len(items) == 1:
        items = items * n_pop
    if len(items) != n_pop:
        raise DsphnfError(f"{len(items)} anisotropies for {n_pop} tracer populations: give one, or one per "
                          "population separated by ';'")
    return tuple(items)


def build_model(halo, tracer, anisotropy=None, *, check: bool = True) -> DwarfModel:
    """A :class:`DwarfModel` from spellings or parsed objects.

    Parameters
    ----------
    halo : str or halo
        E.g. ``"nfw:1e7,1"`` (:func:`dsphnf.specs.parse_halo`) or a Zhao/Burkert/Einasto.
    tracer : str, Zhao or TracerMixture
        E.g. ``"0.3*plummer:0.15+0.7*plummer:0.6"``.
    anisotropy : str, Anisotropy, sequence or None
        One model for every population or one per population (``"isotropic;om:0.5"``).
    check : bool
        Build every DF now, refusing a negative one (one-line DsphnfError).

    Examples
    --------
    >>> m = build_model("burkert:4e8,1", "plummer:0.25", "constant:-0.5")
    >>> m.name
    'burkert:4e+08,1|plummer:0.25|constant:-0.5'
    """
    halo = parse_halo(halo) if isinstance(halo, str) else halo
    if isinstance(tracer, str):
        weights, comps = parse_tracer(tracer)
    elif isinstance(tracer, TracerMixture):
        weights, comps = tracer.weights, tracer.components
    else:
        weights, comps = (1.0,), (tracer,)
    anis = _anisotropies(anisotropy, len(comps))
    if len(comps) == 1:
        nu, beta = comps[0], anis[0]
    else:
        nu = TracerMixture(tuple(weights), tuple(comps))
        beta = MixtureAnisotropy(nu, anis, halo.mass)
    name = f"{halo_spec(halo)}|{tracer_spec(tuple(weights), tuple(comps))}|{';'.join(a.spec() for a in anis)}"
    model = DwarfModel(name, nu, halo, beta, tuple(weights), tuple(comps), anis)
    if check:
        model.distribution_functions()
    return model


def sample_model(model: DwarfModel, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` stars (n, 6: x, y, z [kpc], vx, vy, vz [km/s]) and their population labels (0, 1, ...).

    Populations get multinomial counts with the number fractions; rows are shuffled.
    """
    dfs = model.distribution_functions()
    if len(dfs) == 1:
        return dfs[0].sample(n, rng), np.zeros(n, dtype=int)
    counts = rng.multinomial(n, model.weights)
    xv = np.vstack([df.sample(k, rng) for df, k in zip(dfs, counts)])
    pop = np.repeat(np.arange(len(dfs)), counts)
    order = rng.permutation(n)
    return xv[order], pop[order]


def model_truth(model: DwarfModel, r: np.ndarray) -> dict[str, np.ndarray]:
    """Jeans truth at radii r [kpc]: :data:`DWARF_TRUTH_COLUMNS` (+ nu_K, beta_K per population of a mixture).

    ``sigma_t`` is one tangential component [km/s] (sigma_t^2 = (1 - beta) sigma_r^2);
    a mixture's beta combines the populations' sigma_r^2 and sigma_t^2, weighted by nu.
    """
    r = np.asarray(r, dtype=float)
    mix = TracerMixture(model.weights, model.components)
    p = population_pressures(r, mix, model.anisotropies, model.halo.mass)
    bk = np.array([a.beta(r) for a in model.anisotropies])
    nu = mix.density(r)
    s2r, s2t = p.sum(axis=0) / nu, np.sum((1.0 - bk) * p, axis=0) / nu
    out = {"r": r, "nu": nu, "sigma_r": np.sqrt(s2r), "sigma_t": np.sqrt(s2t), "beta": 1.0 - s2t / s2r,
           "M": np.asarray(model.halo.mass(r), dtype=float), "rho": np.asarray(model.halo.density(r), dtype=float)}
    if len(model.components) > 1:
        for k, (w, c) in enumerate(zip(model.weights, model.components)):
            out[f"nu_{k}"] = w * c.density(r)
            out[f"beta_{k}"] = bk[k]
    return out

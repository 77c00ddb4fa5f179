"""Parametric spherical Jeans baseline sampled with emcee (``dsphnf baseline``).

Zhao stars, a Zhao/gNFW halo and an anisotropy model, fitted to (R, v_z)
with an unbinned likelihood; see :mod:`dsphnf.baseline.model` for the
parameters and priors, :mod:`dsphnf.baseline.likelihood` for the fast
projection, :mod:`dsphnf.baseline.sampler` for emcee and
:mod:`dsphnf.baseline.run` for the end-to-end run.
"""
from .likelihood import BaselineLikelihood, JeansProjector
from .model import HALOS, PARAMETERS, BaselineModel, Prior, read_priors
from .run import PROFILE_COLUMNS, BaselineResult, fit_baseline, posterior_profiles, run_baseline, write_outputs
from .sampler import SamplerResult, find_map, run_emcee

__all__ = [
    "BaselineLikelihood", "JeansProjector", "BaselineModel", "Prior", "read_priors", "PARAMETERS", "HALOS",
    "BaselineResult", "fit_baseline", "posterior_profiles", "run_baseline", "write_outputs", "PROFILE_COLUMNS",
    "SamplerResult", "find_map", "run_emcee",
]

"""Parametric spherical Jeans baseline sampled with emcee (``dsphnf baseline``).

Zhao stars, a Zhao/gNFW halo and an anisotropy model, fitted to (R, v_z)
with an unbinned likelihood.  :func:`fit_baseline` is the entry point: it
returns the shared :class:`dsphnf.result.Result` (method ``"baseline"``) whose
artefacts are a :class:`BaselineArtefacts`.  See :mod:`dsphnf.baseline.model`
for the model, :mod:`dsphnf.baseline.priors` for the parameters and priors,
:mod:`dsphnf.baseline.projector` for the fast Jeans projection,
:mod:`dsphnf.baseline.likelihood` and :mod:`dsphnf.baseline.mixture` (a
foreground) for the likelihood, :mod:`dsphnf.baseline.losvd` for its
line-of-sight velocity distribution (Gaussian, or with a free kurtosis),
:mod:`dsphnf.baseline.sampler` for emcee and
:mod:`dsphnf.baseline.artefacts` for the saved chain and figures.
"""
from .artefacts import BaselineArtefacts
from .fit import fit_baseline
from .likelihood import BaselineLikelihood
from .mixture import Foreground, MixtureLikelihood
from .model import ANISOTROPY_PARAMETERS, BASELINE_FORMS, HALOS, BaselineModel
from .priors import PARAMETERS, Prior, read_priors
from .projector import JeansProjector
from .sampler import SamplerResult, find_map, run_emcee

__all__ = [
    "fit_baseline", "BaselineArtefacts", "BaselineLikelihood", "Foreground", "MixtureLikelihood", "JeansProjector",
    "BaselineModel", "Prior",
    "read_priors", "PARAMETERS", "ANISOTROPY_PARAMETERS", "BASELINE_FORMS", "HALOS", "SamplerResult", "find_map",
    "run_emcee",
]

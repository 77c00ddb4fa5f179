"""SO(3)-equivariant continuous normalizing flows for spherical Jeans analyses.

Modules: :mod:`~dsphnf.flows.field` (equivariant vector fields),
:mod:`~dsphnf.flows.cnf` (the flow), :mod:`~dsphnf.flows.surface` and
:mod:`~dsphnf.flows.losvd` (exact projected likelihood), :mod:`~dsphnf.flows.stars`
(training data), :mod:`~dsphnf.flows.kde` (smeared-KDE loss), :mod:`~dsphnf.flows.objective` (which loss),
:mod:`~dsphnf.flows.prior` (smoothness prior), :mod:`~dsphnf.flows.train`
(training loop), :mod:`~dsphnf.flows.moments` (Jeans read-out),
:mod:`~dsphnf.flows.ensemble` (bands), :mod:`~dsphnf.flows.standardise` (units, grid),
:mod:`~dsphnf.flows.fit` (end-to-end fit), :mod:`~dsphnf.flows.plots`.
"""
from .cnf import SphericalFlow, random_flow
from .field import RadialField, VelocityField
from .fit import FitResult, FlowConfig, default_steps, fast_mode, fit_catalog, load_flows
from .kde import bandwidths, smeared_kde_loss
from .moments import flow_profiles
from .prior import SmoothnessPrior
from .stars import StarData
from .train import TrainConfig, Trainer

__all__ = [
    "SphericalFlow", "random_flow", "RadialField", "VelocityField", "FitResult", "FlowConfig",
    "default_steps", "fast_mode", "fit_catalog", "load_flows", "StarData", "bandwidths",
    "smeared_kde_loss", "flow_profiles", "SmoothnessPrior", "TrainConfig", "Trainer",
]

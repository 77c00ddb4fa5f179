"""SO(3)-equivariant continuous normalizing flows for spherical Jeans analyses.

The method of the paper (Lim, Hayashi, Horigome, Matsumoto, Nojiri 2025,
arXiv:2505.00763). Modules: :mod:`~dsphnf.flows.field` (equivariant vector
fields), :mod:`~dsphnf.flows.cnf` (the flow) and
:mod:`~dsphnf.flows.distribution` (its samples and exact densities), :mod:`~dsphnf.flows.stars`
(training data), :mod:`~dsphnf.flows.surface` and :mod:`~dsphnf.flows.losvd`
(exact projected likelihood), :mod:`~dsphnf.flows.kde` (smeared-KDE loss),
:mod:`~dsphnf.flows.objective` (which loss), :mod:`~dsphnf.flows.prior`
(smoothness prior) and :mod:`~dsphnf.flows.nu_mean` (its optional Zhao mean of ln nu), :mod:`~dsphnf.flows.beta` (learned anisotropy) and
:mod:`~dsphnf.flows.beta_prior` (its priors), :mod:`~dsphnf.flows.train` (training loop) and
:mod:`~dsphnf.flows.checkpoint` (its checkpoints),
:mod:`~dsphnf.flows.moments` (Jeans read-out), :mod:`~dsphnf.flows.ensemble`
(bands), :mod:`~dsphnf.flows.beta_constraint` (where a learned beta is constrained),
:mod:`~dsphnf.flows.member_j` (the members' J-factors), :mod:`~dsphnf.flows.standardise` (units, grid),
:mod:`~dsphnf.flows.settings` (options), :mod:`~dsphnf.flows.member` (one
ensemble member, a task of :func:`dsphnf.executor.run_grid`), :mod:`~dsphnf.flows.member_grid` (the
members' tasks, one by one or batched, and their store), :mod:`~dsphnf.flows.fit` (end-to-end fit), :mod:`~dsphnf.flows.artefacts` (saved flows), :mod:`~dsphnf.flows.plots`,
:mod:`~dsphnf.flows.allocator` (freed tensor memory kept for reuse while training).
"""
from .artefacts import FlowArtefacts, load_flows
from .cnf import SphericalFlow, random_flow
from .field import RadialField, VelocityField
from .fit import fit_flow
from .kde import bandwidths, smeared_kde_loss
from .moments import flow_profiles
from .prior import SmoothnessPrior
from .settings import FitOptions, FlowConfig, default_steps, fast_mode
from .stars import StarData
from .train import Trainer
from .train_config import TrainConfig

__all__ = [
    "SphericalFlow", "random_flow", "RadialField", "VelocityField", "FitOptions", "FlowConfig", "FlowArtefacts",
    "default_steps", "fast_mode", "fit_flow", "load_flows", "StarData", "bandwidths", "smeared_kde_loss",
    "flow_profiles", "SmoothnessPrior", "TrainConfig", "Trainer",
]

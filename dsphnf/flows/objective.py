"""The training objective of a flow: which loss for which data and flow.

``loss="abel"`` (default, see :class:`~dsphnf.flows.train.TrainConfig`):

- positions only: the exact -ln Sigma(R) (:func:`~dsphnf.flows.surface.positional_nll`);
- positions and velocities, beta(r) given or learned (:mod:`~dsphnf.flows.beta`):
  the exact -ln[Sigma(R) p(v_z | R)] (:func:`~dsphnf.flows.losvd.exact_nll`),
  the model's v_z convolved with N(0, h_v^2 + err^2) and the data's v_z
  smeared by h_v (fresh draws ``eps``).

``loss="kde"``: the smeared-KDE cross-entropy of the paper (Lim et al. 2025,
arXiv:2505.00763) on all observed columns.

With a smoothness prior (a :class:`~dsphnf.flows.prior.SmoothnessPrior`,
training only) the roughness penalty of :mod:`dsphnf.flows.prior`, divided by
the weighted number of stars, is added: penalised maximum likelihood; a learned
anisotropy adds its own (the fourth-order Jeans equation, and smoothness for a
free beta: :func:`~dsphnf.flows.beta_prior.learned_prior_per_star`).

All values are in nats per star (weighted mean over stars), standardised units.
"""
from __future__ import annotations

import torch

from . import kde
from .beta_prior import learned_prior_per_star
from .losvd import exact_nll, supports_exact, velocity_table
from .prior import SmoothnessPrior
from .stars import StarData
from .surface import positional_nll, radial_table

__all__ = ["LOSSES", "flow_loss"]

LOSSES = ("abel", "kde")


def flow_loss(
    flow,
    data: StarData,
    cfg,
    generator: torch.Generator | None,
    n_model: int,
    rows: tuple | None = None,
    eps: torch.Tensor | None = None,
    prior: SmoothnessPrior | None = None,
) -> torch.Tensor:
    """The objective of ``flow`` on ``data`` for the settings ``cfg`` (a TrainConfig,
    which has already checked ``cfg.loss`` against :data:`LOSSES`).

    Parameters
    ----------
    generator : torch.Generator
        Source of the smearing draws and flow samples that are not given.
    n_model : int
        Flow samples for the KDE terms (unused by the exact losses).
    rows, eps : optional
        Fixed smeared data rows (KDE terms) and fixed velocity-smearing draws
        (exact loss), e.g. for a validation loss with common random numbers.
    prior : SmoothnessPrior or None
        Add its penalty per star (:meth:`~dsphnf.flows.prior.SmoothnessPrior.per_star`):
        the roughness over the training stars' radii, divided by the weighted
        number of stars of the whole training set.
    """
    p = next(flow.parameters())
    tables = cfg.loss == "abel" or prior is not None  # the exact loss and the prior share them
    table = radial_table(flow) if tables else None
    vtable = velocity_table(flow) if tables and supports_exact(flow) else None
    if cfg.loss == "abel" and data.d == 2:
        nll = positional_nll(flow, data.R, data.weights, table)
    elif cfg.loss == "abel" and vtable is not None:
        if eps is None:
            eps = torch.randn(data.R.shape, generator=generator, dtype=p.dtype, device=p.device)
        h = cfg.h_v
        nll = exact_nll(flow, data.R, data.obs[:, 2] + h * eps, torch.sqrt(h * h + data.err2), data.weights,
                        table, vtable)
    else:
        if rows is None:
            rows = data.smeared(generator, cfg.n_smear)
        model, logw = flow.sample_projected_weighted(n_model, generator, cfg.base_scale)
        nll = kde.smeared_kde_loss(data, model, rows=rows, log_w=logw)
    if prior is None:
        return nll
    return nll + prior.per_star(table, vtable, flow.beta) + learned_prior_per_star(flow, table, vtable, prior)


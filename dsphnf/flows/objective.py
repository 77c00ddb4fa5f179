"""The training objective of a flow: which loss for which data and flow.

``loss="abel"`` (default, see :class:`~dsphnf.flows.train_config.TrainConfig`):

- positions only: the exact -ln Sigma(R) (:func:`~dsphnf.flows.surface.positional_nll`);
- positions and velocities, beta(r) given or learned (:mod:`~dsphnf.flows.beta`):
  the exact -ln[Sigma(R) p(v_z | R)] (:func:`~dsphnf.flows.losvd.exact_nll`),
  the model's v_z convolved with N(0, h_v^2 + err^2) and the data's v_z
  smeared by h_v: the expectation over the smearing, E_eps[-ln p(v_z + h_v eps)]
  with eps ~ N(0, 1), by an ``n_gh``-point Gauss-Hermite rule
  (:func:`smearing_nodes`), so that the objective is a deterministic function
  of the flow's parameters.

With a foreground (``data.fg``, :mod:`~dsphnf.flows.foreground`) the exact
loss of positions and velocities is that of the mixture of the flow and a
field population, -ln[(1 - f) Sigma/P_win p(v_z | R) + f p_fg], with the same
Gauss-Hermite smearing (:func:`~dsphnf.flows.foreground.mixture_nll`).

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

import math

import numpy as np
import torch

from . import kde
from .beta_prior import learned_prior_per_star
from .device_constants import on_device
from .foreground import mixture_nll
from .losvd import exact_nll, supports_exact, velocity_table
from .prior import SmoothnessPrior
from .angular import family_table_beta
from .separable import is_table_family
from .stars import StarData
from .surface import positional_nll, radial_table

__all__ = ["LOSSES", "flow_loss", "smearing_nodes", "is_deterministic"]

LOSSES = ("abel", "kde")


def smearing_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of E[f(eps)], eps ~ N(0, 1), by n-point Gauss-Hermite quadrature.

    Exact for polynomials in eps up to degree 2n - 1; the weights sum to one.

    >>> x, w = smearing_nodes(4)
    >>> round(float(w.sum()), 12), round(float((w * x**2).sum()), 12), round(float((w * x**6).sum()), 9)
    (1.0, 1.0, 15.0)
    """
    if n < 1:
        raise ValueError(f"n_gh must be >= 1, got {n}")
    x, w = np.polynomial.hermite.hermgauss(int(n))
    return x * math.sqrt(2.0), w / math.sqrt(math.pi)


def is_deterministic(flow, data: StarData, cfg) -> bool:
    """True when :func:`flow_loss` is a deterministic function of the flow's parameters.

    That is the exact loss (``"abel"``) of positions alone or of any given or
    learned anisotropy on all stars at once (``batch`` None or >= the number
    of stars); the KDE loss (``loss="kde"``) draws flow samples.
    """
    full = cfg.batch is None or cfg.batch >= data.n
    return cfg.loss == "abel" and full and (data.d == 2 or supports_exact(flow))


def _smearing_on(n_gh: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`smearing_nodes` as tensors on ``like``'s device and dtype (made once, :mod:`.device_constants`)."""
    return on_device(("smearing_nodes", int(n_gh)), lambda: smearing_nodes(n_gh), like.dtype, like.device)


def _smeared_exact_nll(flow, data: StarData, h: float, n_gh: int, table, vtable) -> torch.Tensor:
    """E_eps of the exact -ln[Sigma p(v_z + h eps | R)] by Gauss-Hermite nodes [nats per star].

    The nodes of a star share its line-of-sight and speed terms (one
    :func:`~dsphnf.flows.losvd.log_losvd` call with ``n_gh`` velocities per star).
    """
    x, w = _smearing_on(n_gh, data.obs)
    v = data.obs[..., 2:3] + h * x  # (n, n_gh)
    return exact_nll(flow, data.R, v, torch.sqrt(h * h + data.err2), data.weights, table, vtable, node_weights=w)


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
        Fixed smeared data rows (KDE terms), e.g. for a validation loss with
        common random numbers, and fixed velocity-smearing draws of the exact
        loss (one per star) instead of its Gauss-Hermite nodes (``cfg.n_gh``;
        ``cfg.n_gh = 0`` draws one fresh ``eps`` per star, the old stochastic loss).
    prior : SmoothnessPrior or None
        Add its penalty per star (:meth:`~dsphnf.flows.prior.SmoothnessPrior.per_star`):
        the roughness over the training stars' radii, divided by the weighted
        number of stars of the whole training set.
    """
    p = next(flow.parameters())
    if data.fg is not None and not (cfg.loss == "abel" and supports_exact(flow) and eps is None and cfg.n_gh > 0):
        raise ValueError("a foreground mixture needs the exact loss of a kinematic flow with n_gh >= 1 nodes")
    tables = cfg.loss == "abel" or prior is not None  # the exact loss and the prior share them
    table = radial_table(flow) if tables else None
    vtable = velocity_table(flow) if tables and supports_exact(flow) else None
    if cfg.loss == "abel" and data.d == 2:
        nll = positional_nll(flow, data.R, data.weights, table)
    elif cfg.loss == "abel" and vtable is not None:
        h = cfg.h_v
        if data.fg is not None:
            nll = mixture_nll(flow, data, h, *_smearing_on(cfg.n_gh, data.obs), table, vtable)
        elif eps is None and cfg.n_gh > 0:
            nll = _smeared_exact_nll(flow, data, h, cfg.n_gh, table, vtable)
        else:
            if eps is None:
                eps = torch.randn(data.R.shape, generator=generator, dtype=p.dtype, device=p.device)
            nll = exact_nll(flow, data.R, data.obs[..., 2] + h * eps, torch.sqrt(h * h + data.err2), data.weights,
                            table, vtable)
    else:
        if rows is None:
            rows = data.smeared(generator, cfg.n_smear)
        model, logw = flow.sample_projected_weighted(n_model, generator, cfg.base_scale)
        nll = kde.smeared_kde_loss(data, model, rows=rows, log_w=logw)
    if prior is None:
        return nll
    beta = family_table_beta(vtable) if is_table_family(vtable) else flow.beta  # separable, angular: no second pass
    return nll + prior.per_star(table, vtable, beta) + learned_prior_per_star(flow, table, vtable, prior)


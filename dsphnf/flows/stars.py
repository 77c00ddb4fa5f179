"""The training data of a flow: standardised stars as tensors, shared by every loss.

:class:`StarData` holds the observed stars of one training (or validation)
set in standardised units (positions in L, velocities in V; see
:mod:`dsphnf.flows.standardise`): their observables, membership weights and
velocity errors, the projected radii the exact losses of
:mod:`dsphnf.flows.surface` and :mod:`dsphnf.flows.losvd` evaluate, and the
kernel widths and smearing draws of the smeared-KDE terms of
:mod:`dsphnf.flows.kde`.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["StarData"]


class StarData:
    """Standardised stars: observables, weights, velocity errors and KDE kernel widths.

    Every array may carry a leading member axis K (one set of stars per
    ensemble member, :mod:`~dsphnf.flows.batched`): ``obs`` (K, n, d),
    ``h`` (K, d), ``weights`` and ``verr`` (K, n); the exact losses then
    return one value per member. ``subset`` and ``smeared`` (minibatches and
    the KDE loss) take one set of stars only.

    Parameters
    ----------
    obs : tensor (n, d)
        Standardised observables, d = 3 (x, y, v_z) or 2 (x, y).
    h : sequence of d floats
        Kernel widths per dimension of the smeared-KDE terms (standardised units).
    weights : tensor (n,) or None
        Membership weights (default 1).
    verr : tensor (n,) or None
        Per-star velocity errors in standardised units (d = 3 only).

    Attributes
    ----------
    obs, h, weights : tensors
        As given (``h`` as a tensor on the device of ``obs``).
    d : int
        Number of observables.
    R : tensor (n,)
        Projected radii sqrt(x^2 + y^2) [L].
    err2 : tensor (n,) or None
        Squared velocity errors [V^2] (zero without errors; None for d = 2).
    inv_hv2 : tensor (n,) or None
        1 / (h_v^2 + err^2), the inverse variance of each star's velocity kernel.
    fg : ForegroundTerm or None
        A foreground population mixed into the exact loss
        (:mod:`~dsphnf.flows.foreground`; set after construction), None: the stars are members, weighted.

    Examples
    --------
    >>> obs = torch.tensor([[3.0, 4.0, 0.5], [0.0, 1.0, -1.0]], dtype=torch.float64)
    >>> stars = StarData(obs, [0.2, 0.2, 0.5], verr=torch.tensor([0.0, 1.0]))
    >>> stars.R.tolist(), stars.inv_hv2.tolist()
    ([5.0, 1.0], [4.0, 0.8])
    """

    def __init__(self, obs: torch.Tensor, h, weights: torch.Tensor | None = None, verr: torch.Tensor | None = None):
        self.obs = obs
        self.d = obs.shape[-1]
        self.h = torch.as_tensor(np.asarray(h, dtype=float), dtype=obs.dtype, device=obs.device)
        n = obs.shape[:-1]
        self.weights = torch.ones(n, dtype=obs.dtype, device=obs.device) if weights is None else weights.to(obs)
        self.R = torch.linalg.vector_norm(obs[..., :2], dim=-1)
        if self.d == 3:
            err2 = torch.zeros(n, dtype=obs.dtype, device=obs.device) if verr is None else verr.to(obs) ** 2
            self.err2 = err2
            self.inv_hv2 = 1.0 / (self.h[..., 2:3] ** 2 + err2)
        else:
            self.err2 = self.inv_hv2 = None
        self.fg = None

    @property
    def n(self) -> int:
        """Number of stars."""
        return int(self.obs.shape[-2])

    def subset(self, idx: torch.Tensor) -> "StarData":
        """The stars ``idx`` (same kernel widths)."""
        out = StarData.__new__(StarData)
        out.obs, out.d, out.h = self.obs[idx], self.d, self.h
        out.weights = self.weights[idx]
        out.R = self.R[idx]
        out.inv_hv2 = None if self.inv_hv2 is None else self.inv_hv2[idx]
        out.err2 = None if self.err2 is None else self.err2[idx]
        out.fg = self.fg
        return out

    def smeared(self, generator: torch.Generator | None, n_smear: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Observables with fresh smearing draws (n * n_smear, d), their weights and inverse variances."""
        rows = self.obs.repeat(n_smear, 1)
        eps = torch.randn(rows.shape, generator=generator, dtype=rows.dtype, device=rows.device)
        rows = rows + eps * self.h
        w = self.weights.repeat(n_smear)
        inv = None if self.inv_hv2 is None else self.inv_hv2.repeat(n_smear)
        return rows, w, inv

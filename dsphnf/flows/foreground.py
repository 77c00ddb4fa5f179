"""A foreground population in the flow's likelihood: each star is a member or a field star.

With a :class:`~dsphnf.foreground.Foreground` (a broad Gaussian in v_z,
uniform on the sky; the baseline's definition) the exact loss of
:mod:`~dsphnf.flows.objective` becomes, per star a and smearing node j,

    -ln[ (1 - f) Sigma(R_a) / P_win p(v_aj | R_a) + f / A N(v_aj | mu_fg, sigma_fg^2 + err_a^2 + h_v^2) ],

averaged over the nodes (weights of :func:`~dsphnf.flows.objective.smearing_nodes`)
and over the stars (their weights, one for a mixture fit). Sigma is the
flow's surface density, normalised over the whole sky
(:mod:`~dsphnf.flows.surface`); P_win = Int_{R_min}^{R_max} 2 pi R Sigma dR
(:func:`log_window_fraction`) renormalises it to the data's window of
projected radii, the window in which the foreground is uniform, of area
A = pi (R_max^2 - R_min^2), as the baseline's mixture does. The window is
the whole catalogue's, in the member's units (:attr:`ForegroundTerm.window`),
so that a bootstrap resample or a minibatch of the stars does not move it.
The foreground is convolved with the velocity kernel h_v exactly as the model is.

The fraction f is the flow's own bounded parameter (``fg_raw``, f = sigmoid
of it, :meth:`~dsphnf.flows.cnf.SphericalFlow.foreground_fraction`), one per
ensemble member, or a given constant (``Foreground.fraction``).

Units: standardised (positions in L, velocities in V of the member).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..foreground import Foreground
from .cnf import F_START
from .surface import _simpson, log_surface_density, weighted_mean

__all__ = ["ForegroundTerm", "foreground_term", "stack_terms", "log_window_fraction", "mixture_nll", "F_START"]


@dataclass
class ForegroundTerm:
    """A foreground in one member's standardised units (or K members', each (K, 1)).

    Attributes
    ----------
    mean, sigma2 : tensor
        Mean [V] and variance [V^2] of the foreground's v_z, scalars or (K, 1).
    fraction : float or None
        A given fraction; None: the flow's learned one.
    window : (tensor, tensor) or None
        Smallest and largest projected radius of the catalogue [L], scalars or
        (K,): the window in which the foreground is uniform. None: that of the
        stars the loss is given.
    """

    mean: torch.Tensor
    sigma2: torch.Tensor
    fraction: float | None = None
    window: tuple[torch.Tensor, torch.Tensor] | None = None

    def take(self, idx: torch.Tensor | None) -> "ForegroundTerm":
        """The members ``idx`` (None: all)."""
        if idx is None:
            return self
        window = None if self.window is None else (self.window[0][idx], self.window[1][idx])
        return ForegroundTerm(self.mean[idx], self.sigma2[idx], self.fraction, window)


def foreground_term(fg: Foreground, scales: dict[str, float], dtype: torch.dtype,
                    device: torch.device, obs: np.ndarray) -> ForegroundTerm:
    """``fg`` [km/s] in the units ``scales`` (v_sys, V [km/s]) of one member, with the window of ``obs``.

    ``obs`` (n, 3): every star of the catalogue in the member's units; their
    smallest and largest projected radius make the window.

    >>> obs = np.array([[0.1, 0.0, 0.0], [0.0, 2.0, 0.0]])
    >>> t = foreground_term(Foreground(30.0, 60.0), {"v_sys": 10.0, "V": 20.0}, torch.float64, torch.device("cpu"), obs)
    >>> float(t.mean), float(t.sigma2), t.fraction, [float(x) for x in t.window]
    (1.0, 9.0, None, [0.1, 2.0])
    """
    as_t = lambda x: torch.tensor(float(x), dtype=dtype, device=device)  # noqa: E731
    R = np.hypot(obs[:, 0], obs[:, 1])
    return ForegroundTerm(as_t((fg.mean_kms - scales["v_sys"]) / scales["V"]), as_t((fg.sigma_kms / scales["V"]) ** 2),
                          fg.fraction, (as_t(R.min()), as_t(R.max())))


def stack_terms(terms: list[ForegroundTerm]) -> ForegroundTerm:
    """K members' terms on a member axis: mean and sigma2 (K, 1), the windows (K,)."""
    window = None if terms[0].window is None else tuple(torch.stack([t.window[i] for t in terms]) for i in (0, 1))
    return ForegroundTerm(torch.stack([t.mean for t in terms]).reshape(-1, 1),
                          torch.stack([t.sigma2 for t in terms]).reshape(-1, 1), terms[0].fraction, window)


def log_window_fraction(flow, R_lo: torch.Tensor, R_hi: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor],
                        n: int = 129) -> torch.Tensor:
    """ln P_win, P_win = Int_{R_lo}^{R_hi} 2 pi R Sigma(R) dR: the flow's fraction of stars in the window.

    Simpson's rule in ln R on ``n`` nodes; ``R_lo``, ``R_hi`` scalars or (K,) [L].
    """
    frac = torch.linspace(0.0, 1.0, n, dtype=R_lo.dtype, device=R_lo.device)
    lo, hi = torch.log(R_lo).unsqueeze(-1), torch.log(R_hi).unsqueeze(-1)
    lnR = lo + (hi - lo) * frac  # (n,) or (K, n)
    ls = log_surface_density(flow, torch.exp(lnR), table)
    lw = torch.log(_simpson(n, lnR.dtype, lnR.device) / (n - 1)) + torch.log(hi - lo)
    return torch.logsumexp(math.log(2.0 * math.pi) + 2.0 * lnR + ls + lw, dim=-1)


def _log_fraction(flow, fg: ForegroundTerm, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ln(1 - f), ln f), shaped to broadcast against (..., n, k) (a scalar or (K, 1, 1))."""
    if fg.fraction is not None:
        f = torch.full((), float(fg.fraction), dtype=like.dtype, device=like.device)  # no host copy
        return torch.log1p(-f), torch.log(f)
    raw = flow.foreground_raw()
    if raw is None:
        raise ValueError("a free foreground fraction needs a flow built with foreground=True")
    raw = raw.reshape(*raw.shape, 1, 1) if raw.dim() else raw
    return torch.nn.functional.logsigmoid(-raw), torch.nn.functional.logsigmoid(raw)


def mixture_nll(flow, data, h: float, x: np.ndarray | torch.Tensor, w: np.ndarray | torch.Tensor, table,
                vtable) -> torch.Tensor:
    """The mixture's weighted mean of -E_j ln p(x_a, y_a, v_a + h x_j) over stars [nats per star].

    ``x``, ``w``: the smearing nodes and weights (tensors on the stars' device
    are used as they are); ``data.fg`` the
    :class:`ForegroundTerm` (module docstring for the formula).
    """
    from .losvd import log_losvd

    fg: ForegroundTerm = data.fg
    p = data.obs
    x = torch.as_tensor(x, dtype=p.dtype, device=p.device)
    w = torch.as_tensor(w, dtype=p.dtype, device=p.device)
    v = p[..., 2:3] + h * x  # (..., n, k)
    ls, lp = log_losvd(flow, data.R, v, torch.sqrt(h * h + data.err2), table, vtable)
    R = data.R.detach()
    lo, hi = (R.amin(dim=-1), R.amax(dim=-1)) if fg.window is None else fg.window
    lwin = log_window_fraction(flow, lo, hi, table)
    log_area = torch.log(math.pi * (hi**2 - lo**2))
    var = (fg.sigma2 + data.err2 + h * h).unsqueeze(-1)  # (..., n, 1)
    log_fg = -0.5 * (torch.log(2.0 * math.pi * var) + (v - fg.mean.unsqueeze(-1)) ** 2 / var)
    log_fg = log_fg - log_area.reshape(*log_area.shape, 1, 1)
    log_member = (ls - lwin.unsqueeze(-1)).unsqueeze(-1) + lp
    l_mem, l_fg = _log_fraction(flow, fg, lp)
    mix = torch.logaddexp(l_mem + log_member, l_fg + log_fg)
    return weighted_mean(-(mix * w).sum(dim=-1), data.weights)

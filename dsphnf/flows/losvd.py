"""Exact likelihood of (x, y, v_z) under a flow with a given anisotropy (no KDE).

For a kinematic flow (an isotropic velocity field followed by the layer that
scales tangential velocities by sqrt(1 - beta(r)), beta given or learned:
:mod:`~dsphnf.flows.beta`), the distribution of v_z along a
line of sight has a closed form once the speed distribution at each radius is
known:

- before the anisotropy layer the velocity w is isotropic; its speed is
  s = S(s0; u), the velocity ODE's map of the base speed s0 ~ chi_3 along the
  trajectory of base radius u;
- the layer makes v = w_r n + sqrt(1 - beta) w_t, so v_z = w . e with
  e = n_z n + sqrt(1 - beta) (z_hat - n_z n), |e|^2 = n_z^2 + (1 - beta)(1 - n_z^2);
  w being isotropic, v_z has the law of |e| w_z, and w_z given s is uniform
  on [-s, s];
- the ``separable`` family (:mod:`~dsphnf.flows.separable`) maps each base
  shell to an ellipsoid with semi-axes A(s0), B(s0) of its own; the same
  argument gives |e|^2 = n_z^2 A^2 + (1 - n_z^2) B^2 and a uniform law on [-|e|, |e|];
- convolved with a Gaussian of width h (kernel and the star's error), a
  uniform law on [-a, a] has density [Phi((v + a)/h) - Phi((v - a)/h)] / (2a).

Hence, with the line-of-sight nodes of :func:`~dsphnf.flows.surface.line_of_sight_terms`
(radius r_k = R cosh s_k, n_z = tanh s_k, weights w_k prop. to nu(r_k) r_k ds)
and generalised Gauss-Laguerre nodes s0_j (weights l_j) of the base speed,

    p(v_z | R) = sum_k w_k sum_j l_j U(v_z; |e_k| S(s0_j; u(r_k)), h_a).

S is tabulated by one ODE solve of (ln r, ln s) for a grid of (u_i, s0_j) and
interpolated in ln r, so a training step costs a few hundred trajectories
instead of thousands of flow samples, and the loss is deterministic apart
from the data-side smearing of v_z by h (kept so that the estimator stays
consistent: the model is convolved with h, the data are too).

Units: standardised (positions in L, velocities in V).
"""
from __future__ import annotations

import math

import torch
from torch.utils.checkpoint import checkpoint

from .angular import angular_table, is_angular_table
from .angular_losvd import angular_log_mixture
from .separable import is_separable_table, speed_state_table
from .surface import interp_table, line_of_sight_terms, radial_table, top_radius, weighted_mean

__all__ = ["velocity_table", "log_losvd", "exact_nll", "supports_exact", "uniform_mixture", "expected_log_mixture"]

_FLOOR = 1e-30
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
#: rows (stars x members) of the velocity mixture computed at once on the CPU (:class:`_UniformMixture`)
MIXTURE_CHUNK = 16
#: elements (rows x velocities x S x J) of one chunk of the velocity mixture on a GPU, where each chunk's
#: ~20 kernels cost their launches rather than their arithmetic: 16-row chunks made 13,000 of the 16,700
#: kernels of one evaluation of 8 members (1000 stars) on an H200. A chunk's arrays are then ~130 MB each.
GPU_MIXTURE_ELEMENTS = 2**24
#: rows (stars x members) per piece of :func:`exact_nll`: larger catalogues go in pieces (a full-data
#: objective of 1e5 stars took 3.2 GB in one piece); up to this size the arithmetic is that of one piece,
#: bit for bit. A piece's largest arrays (rows x 33 x 24 float64, 104 MB) lie above
#: :data:`~dsphnf.flows.allocator.MMAP_THRESHOLD`, so they are mapped afresh, not left in the heap.
STAR_CHUNK = 16384
#: radii [L] covered by the speed table (stars lie within ~0.01-20 L of the centre)
VELOCITY_RANGE = (1e-2, 1e2)


def supports_exact(flow) -> bool:
    """True for kinematic flows (every one: isotropic speed map and anisotropy layer, beta given or learned)."""
    return bool(flow.kinematic)


def velocity_table(
    flow, n_speed: int = 24, n_nodes: int = 41, r_range: tuple[float, float] = VELOCITY_RANGE
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ln r_i (m,), ln S_ij (m, J), log weights (J,)) of the speed map S.

    ``n_nodes`` base radii whose reshaped radii are log-spaced over ``r_range``
    [L] (outside it ln S is held at its end values); ``n_speed`` generalised
    Gauss-Laguerre nodes of the base speed. The separable family gives its own
    4-entry table instead (:func:`~dsphnf.flows.separable.separable_table`):
    both come from :func:`~dsphnf.flows.separable.speed_state_table`. A flow
    with K members (:mod:`~dsphnf.flows.batched`) gives (K, m) and (K, m, J) tables. The angular family
    adds its law at the nodes (:func:`~dsphnf.flows.angular.angular_table`).
    """
    if getattr(flow, "angular", False):
        return angular_table(flow, n_speed, n_nodes, r_range)
    return speed_state_table(flow, n_speed, n_nodes, r_range)


def log_losvd(
    flow,
    R: torch.Tensor,
    v: torch.Tensor,
    h: torch.Tensor,
    table: tuple[torch.Tensor, torch.Tensor] | None = None,
    vtable: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    n_s: int = 65,
    n_s_v: int = 33,
    node_weights: torch.Tensor | None = None,
    r_top: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ln Sigma(R) (n,), ln p(v_z | R) convolved with N(0, h^2), shaped like ``v``) per star.

    Parameters
    ----------
    R : tensor (n,)
        Projected radii [L] of the stars.
    v : tensor (n,) or (n, k)
        Line-of-sight velocities [V]: one per star, or k per star (e.g. the
        smearing nodes of :func:`~dsphnf.flows.objective.smearing_nodes`),
        which share the star's line-of-sight and speed terms.
    h : tensor (n,) or scalar
        Gaussian width convolved with the model's v_z [V] (kernel and error).
    n_s, n_s_v : int
        Line-of-sight nodes for Sigma and for the velocity mixture.
    node_weights : tensor (k,) or None
        With ``v`` of shape (n, k): return sum_j node_weights_j ln p(v_aj | R_a)
        (n,) instead of the k values, by :func:`expected_log_mixture`, which
        forms the gradient in the same pass (no recomputation in the backward pass).
    r_top : tensor or None
        Where the line-of-sight quadrature stops [L]
        (:func:`~dsphnf.flows.surface.top_radius` of these stars when None).

    A flow with K members takes ``R``, ``v``, ``h`` with a leading member
    axis (K, n, ...) and returns (K, n) and (K, n[, k]).
    """
    if not supports_exact(flow):
        raise ValueError("the exact LOSVD needs a kinematic flow")
    lnr, lnnu = radial_table(flow) if table is None else table
    vtable = velocity_table(flow) if vtable is None else vtable
    _, _, terms = line_of_sight_terms(lnr, lnnu, R, n_s, r_top)
    log_sigma = math.log(2.0) + torch.logsumexp(terms, dim=-1)
    s, q, terms = line_of_sight_terms(lnr, lnnu, R, n_s_v, r_top)  # coarser nodes suffice for v_z
    lw_los = terms - torch.logsumexp(terms, dim=-1, keepdim=True)  # (n, n_s)
    if is_angular_table(vtable):  # a polynomial law of v_z per node (:mod:`~dsphnf.flows.angular`)
        return log_sigma, angular_log_mixture(vtable, q, torch.tanh(s), lw_los, v, h, node_weights)
    nz2 = torch.tanh(s) ** 2
    if is_separable_table(vtable):  # semi-axes A, B: |e|^2 = n_z^2 A^2 + (1 - n_z^2) B^2
        vl, lna, lnb, lw_speed = vtable
        a2 = torch.exp(2.0 * interp_table(q, vl, lna, extrapolate=False))
        b2 = torch.exp(2.0 * interp_table(q, vl, lnb, extrapolate=False))
        a = torch.sqrt(nz2.unsqueeze(-1) * a2 + (1.0 - nz2).unsqueeze(-1) * b2).clamp_min(1e-8)
    else:
        vl, vs, lw_speed = vtable
        beta = flow.beta(torch.exp(q))
        e = torch.sqrt((nz2 + (1.0 - beta) * (1.0 - nz2)).clamp_min(1e-12))
        lns = interp_table(q, vl, vs, extrapolate=False)  # (n, n_s, J), held beyond the table
        a = (e.unsqueeze(-1) * torch.exp(lns)).clamp_min(1e-8)
    h = torch.as_tensor(h, dtype=a.dtype, device=a.device)
    hb = (h.reshape(*h.shape, 1, 1, 1) if h.dim() >= 1 else h) * math.sqrt(2.0)
    va = v.to(a).abs().reshape(*R.shape, -1, 1, 1)  # (n, k, 1, 1)
    a, wts = a.unsqueeze(-3), (torch.exp(lw_los).unsqueeze(-1) * torch.exp(lw_speed)).unsqueeze(-3)
    # uniform law on [-a, a] convolved with N(0, h^2), in linear space (erf is much cheaper
    # than log_ndtr); a star beyond every node's reach (|v| > a + ~9h) gets a floor value
    if node_weights is not None and not (va.requires_grad or hb.requires_grad):
        return log_sigma, expected_log_mixture(va, a, wts, hb, node_weights.to(a))
    lp = torch.log(uniform_mixture(va, a, wts, hb).clamp_min(_FLOOR))
    if node_weights is not None:
        return log_sigma, (lp.reshape(v.shape) * node_weights).sum(dim=-1)
    return log_sigma, lp.reshape(v.shape)


#: largest exponent of :func:`_gauss` (exp(-700) = 1e-304)
_GAUSS_EXP_MAX = 700.0


def _gauss(x: torch.Tensor) -> torch.Tensor:
    """exp(-x^2), with x^2 held at 700 (|x| > 26.5) where the result is below 1e-304.

    It differs from exp(-x^2) by less than 1e-304; without the cap the
    CPU's exp takes 50-300 times longer per element whose result underflows
    (x^2 > 708), which the derivative of a box far from a star's velocity
    gives for most nodes.

    >>> float(_gauss(torch.tensor(0.0))), float(_gauss(torch.tensor(100.0))) < 1e-303
    (1.0, True)
    """
    return torch.exp(-(x * x).clamp_max(_GAUSS_EXP_MAX))


def _box_sum(va: torch.Tensor, a: torch.Tensor, w: torch.Tensor, hb: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """sum_{s,j} w U(v; a, h) over the last two axes, and the pieces its derivatives need."""
    xp, xm, inv4a = (va + a) / hb, (va - a) / hb, 0.25 / a
    box = (torch.erf(xp) - torch.erf(xm)) * inv4a
    return box, xp, xm, inv4a


def chunk_rows(va: torch.Tensor, a: torch.Tensor) -> int:
    """Rows per chunk of the velocity mixture for rows ``va`` (R, k, 1, 1) and nodes ``a`` (R, 1, S, J).

    :data:`MIXTURE_CHUNK` on the CPU (a chunk stays in its cache); on other
    devices as many rows as :data:`GPU_MIXTURE_ELEMENTS` allows. Rows are
    independent, so the chunking changes no value beyond rounding.

    >>> chunk_rows(torch.zeros(5000, 3, 1, 1), torch.zeros(5000, 1, 33, 24))
    16
    """
    if va.device.type == "cpu":
        return MIXTURE_CHUNK
    return max(MIXTURE_CHUNK, GPU_MIXTURE_ELEMENTS // max(va.shape[1] * a.shape[-2] * a.shape[-1], 1))


class _UniformMixture(torch.autograd.Function):
    """:func:`uniform_mixture` on rows (R, k, 1, 1), (R, 1, S, J), (R, 1, S, J), (R, 1, 1, 1), in chunks of rows.

    Nothing of size R k S J is kept between forward and backward: the
    backward pass recomputes each chunk's terms, and a chunk of
    :data:`MIXTURE_CHUNK` rows stays in the CPU's cache (:func:`chunk_rows`; autograd of the plain
    expression kept and re-read several arrays of that size: 5-6 times slower).
    """

    @staticmethod
    def forward(ctx, va, a, w, hb):
        out = va.new_empty(va.shape[:2])
        size = chunk_rows(va, a)
        for i in range(0, va.shape[0], size):
            sl = slice(i, i + size)
            out[sl] = (_box_sum(va[sl], a[sl], w[sl], hb[sl])[0] * w[sl]).sum(dim=(-2, -1))
        ctx.save_for_backward(va, a, w, hb)
        return out

    @staticmethod
    def backward(ctx, grad):
        va, a, w, hb = ctx.saved_tensors
        ga, gw = torch.empty_like(a), torch.empty_like(w)
        size = chunk_rows(va, a)
        for i in range(0, va.shape[0], size):
            sl = slice(i, i + size)
            box, xp, xm, inv4a = _box_sum(va[sl], a[sl], w[sl], hb[sl])
            g = grad[sl].unsqueeze(-1).unsqueeze(-1)
            gw[sl] = (g * box).sum(dim=1, keepdim=True)
            dbox = (_gauss(xp) + _gauss(xm)) * (_TWO_OVER_SQRT_PI / hb[sl]) * inv4a - box / a[sl]
            ga[sl] = w[sl] * (g * dbox).sum(dim=1, keepdim=True)
        return None, ga, gw, None


def uniform_mixture(va: torch.Tensor, a: torch.Tensor, w: torch.Tensor, hb: torch.Tensor) -> torch.Tensor:
    """sum_{s,j} w_sj [erf((v + a_sj)/hb) - erf((v - a_sj)/hb)] / (4 a_sj): a mixture of uniform laws on
    [-a, a] convolved with N(0, hb^2 / 2), at |v| = ``va``.

    Shapes (..., n, k, 1, 1) for ``va``, (..., n, 1, S, J) for ``a`` and ``w``,
    (..., n, 1, 1, 1) or a scalar for ``hb``; returns (..., n, k).
    Differentiable in ``a`` and ``w`` (:class:`_UniformMixture`, chunked);
    when ``va`` or ``hb`` needs a gradient too, the plain expression is used.

    >>> va = torch.tensor([0.0, 5.0], dtype=torch.float64).reshape(1, 2, 1, 1)
    >>> a = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    >>> [round(float(x), 6) for x in uniform_mixture(va, a, a, torch.tensor(1e-3, dtype=torch.float64))[0]]
    [0.5, 0.0]
    """
    if va.requires_grad or hb.requires_grad:
        box = (torch.erf((va + a) / hb) - torch.erf((va - a) / hb)) / (4.0 * a)
        return (box * w).sum(dim=(-2, -1))
    lead, k, S, J = va.shape[:-3], va.shape[-3], a.shape[-2], a.shape[-1]
    hb = hb.expand(*lead, 1, 1, 1)  # a scalar width, or one per star
    rows = lambda t, *tail: t.expand(*lead, *t.shape[len(lead):]).reshape(-1, *tail)  # noqa: E731
    out = _UniformMixture.apply(rows(va, k, 1, 1), rows(a, 1, S, J), rows(w, 1, S, J), rows(hb, 1, 1, 1))
    return out.reshape(*lead, k)


class _ExpectedLogMixture(torch.autograd.Function):
    """:func:`expected_log_mixture` on rows (R, k, 1, 1), (R, 1, S, J), (R, 1, S, J), (R, 1, 1, 1), (k,).

    The output of a row is one number, so its derivatives with respect to
    ``a`` and ``w`` are known in the forward pass: each chunk of
    rows (:func:`chunk_rows`) forms them from the terms it has just
    computed (:func:`_log_mixture_chunk`), and the backward pass only scales
    them by the incoming gradient (the backward of :class:`_UniformMixture`
    recomputes every erf).
    """

    @staticmethod
    def forward(ctx, va, a, w, hb, nw):
        out = va.new_empty(va.shape[0])
        need = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        ga, gw = (torch.empty_like(a), torch.empty_like(w)) if need else (None, None)
        size = chunk_rows(va, a)
        for i in range(0, va.shape[0], size):
            sl = slice(i, i + size)
            out[sl], grads = _log_mixture_chunk(va[sl], a[sl], w[sl], hb[sl], nw.reshape(-1), need)
            if need:
                ga[sl], gw[sl] = grads
        ctx.save_for_backward(ga, gw)
        return out

    @staticmethod
    def backward(ctx, grad):
        ga, gw = ctx.saved_tensors
        g = grad.reshape(-1, 1, 1, 1)
        return None, g * ga, g * gw, None, None


def _log_mixture_chunk(va, a, w, hb, nw, need: bool):
    """sum_k nw_k ln max(M_k, floor) of a chunk of rows and (need) its derivatives in ``a`` and ``w``.

    With c_k = nw_k / M_k (0 where the floor holds, as for clamp_min) and
    x = (v -+ a) / hb: d/dw = sum_k c_k box_k, d/da = w [2/(sqrt(pi) hb 4a)
    sum_k c_k (exp(-x+^2) + exp(-x-^2)) - (d/dw) / a]. The sums over the k
    velocities are batched matrix products, so that of the arrays of size
    rows x k x S x J only the erf and exp terms are formed.
    """
    c, k, S, J = va.shape[0], va.shape[1], a.shape[-2], a.shape[-1]
    inv_hb = 1.0 / hb
    ah, vh, inv4a = a * inv_hb, va * inv_hb, 0.25 / a
    xp, xm = vh + ah, vh - ah  # (c, k, S, J)
    box = torch.erf(xp).sub_(torch.erf(xm)).mul_(inv4a).reshape(c, k, S * J)
    m = torch.bmm(box, w.reshape(c, S * J, 1)).reshape(c, k)
    out = (torch.log(m.clamp_min(_FLOOR)) * nw).sum(dim=-1)
    if not need:
        return out, None
    ck = torch.where(m > _FLOOR, nw / m, torch.zeros_like(m)).unsqueeze(1)  # (c, 1, k)
    gw = torch.bmm(ck, box).reshape(c, 1, S, J)
    gs = _gauss(xp).add_(_gauss(xm)).reshape(c, k, S * J)
    gg = torch.bmm(ck, gs).reshape(c, 1, S, J)
    ga = w * (gg * (_TWO_OVER_SQRT_PI * inv_hb) * inv4a - gw / a)
    return out, (ga, gw)


def expected_log_mixture(
    va: torch.Tensor, a: torch.Tensor, w: torch.Tensor, hb: torch.Tensor, node_weights: torch.Tensor
) -> torch.Tensor:
    """sum_k node_weights_k ln max(M_k, 1e-30), M_k = :func:`uniform_mixture` at ``va[..., k, :, :]``.

    Shapes as for :func:`uniform_mixture`, ``node_weights`` (k,); returns
    (..., n). The same arithmetic as ln of :func:`uniform_mixture` averaged
    over the k velocities, with the gradient in ``a`` and ``w`` formed in
    the forward pass (:class:`_ExpectedLogMixture`); with ``va`` or ``hb``
    needing a gradient, the plain expression.

    >>> va = torch.tensor([0.0, 0.5], dtype=torch.float64).reshape(1, 2, 1, 1)
    >>> a = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    >>> nw = torch.tensor([0.5, 0.5], dtype=torch.float64)
    >>> round(float(expected_log_mixture(va, a, a, torch.tensor(1e-3, dtype=torch.float64), nw)[0]), 6)
    -0.693147
    """
    if va.requires_grad or hb.requires_grad:
        return (torch.log(uniform_mixture(va, a, w, hb).clamp_min(_FLOOR)) * node_weights).sum(dim=-1)
    lead, k, S, J = va.shape[:-3], va.shape[-3], a.shape[-2], a.shape[-1]
    hb = hb.expand(*lead, 1, 1, 1)
    rows = lambda t, *tail: t.expand(*lead, *t.shape[len(lead):]).reshape(-1, *tail)  # noqa: E731
    out = _ExpectedLogMixture.apply(rows(va, k, 1, 1), rows(a, 1, S, J), rows(w, 1, S, J), rows(hb, 1, 1, 1),
                                    node_weights)
    return out.reshape(lead)


def exact_nll(
    flow,
    R: torch.Tensor,
    v: torch.Tensor,
    h: torch.Tensor,
    weights: torch.Tensor | None = None,
    table: tuple[torch.Tensor, torch.Tensor] | None = None,
    vtable: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    node_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weighted mean of -ln[Sigma(R_a) p(v_a | R_a)] over stars [nats per star].

    ``table`` and ``vtable`` may pass precomputed radial and speed tables.
    With ``v`` of shape (n, k) and ``node_weights`` (k,) summing to one, the
    term of star a is -ln Sigma(R_a) - sum_j node_weights_j ln p(v_aj | R_a)
    (an expectation over k velocities per star, e.g. smearing nodes).
    More than :data:`STAR_CHUNK` stars (times members) are taken in pieces
    (:func:`_nll_in_pieces`), so that memory does not grow with the catalogue.
    """
    if R.numel() > STAR_CHUNK:
        return _nll_in_pieces(flow, R, v, h, weights, table, vtable, node_weights)
    ls, lp = log_losvd(flow, R, v, h, table, vtable, node_weights=node_weights)
    return weighted_mean(-(ls + lp), weights)


def _nll_in_pieces(flow, R, v, h, weights, table, vtable, node_weights) -> torch.Tensor:
    """:func:`exact_nll` summed over pieces of :data:`STAR_CHUNK` rows (stars x members; the star axis is R's last).

    Every piece gets the line-of-sight nodes of the whole catalogue (one
    :func:`~dsphnf.flows.surface.top_radius`) and the same tables, so the
    result differs from one piece only by the order of the sum. With
    gradients each piece is a checkpoint: its terms are recomputed in the
    backward pass instead of kept (the price: one more forward pass).
    """
    table = radial_table(flow) if table is None else table
    vtable = velocity_table(flow) if vtable is None else vtable
    r_top = top_radius(R)
    w = (torch.ones_like(R) if weights is None else weights.to(R)).expand_as(R)
    h = torch.as_tensor(h, dtype=R.dtype, device=R.device)
    h = h.expand_as(R) if h.dim() else h
    per_star = v.dim() > R.dim()  # (..., n, k): k velocities per star

    def piece(Rc, vc, hc, wc):
        ls, lp = log_losvd(flow, Rc, vc, hc, table, vtable, node_weights=node_weights, r_top=r_top)
        return (wc * -(ls + lp)).sum(dim=-1)

    total = torch.zeros(R.shape[:-1], dtype=R.dtype, device=R.device)
    size = max(1, STAR_CHUNK * R.shape[-1] // R.numel())  # stars per piece
    for i in range(0, R.shape[-1], size):
        sl = slice(i, i + size)
        args = (R[..., sl], v[..., sl, :] if per_star else v[..., sl], h[..., sl] if h.dim() else h, w[..., sl])
        total = total + (checkpoint(piece, *args, use_reentrant=False) if torch.is_grad_enabled() else piece(*args))
    return total / w.sum(dim=-1)

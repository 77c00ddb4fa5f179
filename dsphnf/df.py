"""Equilibrium distribution functions of a massless tracer in a Zhao halo.

A tracer with number density ``nu(r)`` (a normalised :class:`~dsphnf.profiles.Zhao`,
one star in total) orbits in the potential of a Zhao dark-matter halo (a
mass profile in Msun/kpc^3).  With the relative potential

    Psi(r) = -Phi(r) = Int_r^inf G M(s) / s^2 ds        [(km/s)^2]

the isotropic distribution function follows from Eddington's inversion

    f(eps) = 1/(sqrt(8) pi^2) [ Int_0^eps d^2nu/dPsi^2 dPsi / sqrt(eps - Psi)
                                + (dnu/dPsi)|_{Psi=0} / sqrt(eps) ]

and the Osipkov-Merritt model (beta = r^2 / (r^2 + r_a^2)) from the same
formula with eps -> Q = eps - L^2 / (2 r_a^2) and nu -> nu_Q = (1 + r^2/r_a^2) nu.
The units of f are stars / (kpc^3 (km/s)^3).

Accuracy: the derivatives of nu with respect to Psi are analytic (chain rule
with dPsi/dr = -G M / r^2); the inverse-square-root singularity is removed
by Psi = eps - u^2; the potential is tabulated on a fine logarithmic grid
twice, as Psi(r) and as Psi(0) - Psi(r), so that both the outskirts and the
centre keep full relative precision.  :meth:`EddingtonDF.sample` draws
(x, v) exactly from the (tabulated) DF.
"""
from __future__ import annotations

import numpy as np
from scipy import integrate, special

from .anisotropy import Anisotropy, Isotropic, OsipkovMerritt
from .constants import G
from .errors import DsphnfError
from .profiles import Zhao

__all__ = ["Potential", "EddingtonDF"]


def _zhao_slopes(p: Zhao, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dln rho/dln r and its derivative d^2 ln rho / d(ln r)^2 of a Zhao profile."""
    xa = (r / p.rs) ** p.alpha
    s = -p.gamma + (p.gamma - p.beta) * xa / (1.0 + xa)
    ds = (p.gamma - p.beta) * p.alpha * xa / (1.0 + xa) ** 2
    return s, ds


class Potential:
    """Relative potential Psi(r) [(km/s)^2] of a spherical Zhao mass profile.

    Parameters
    ----------
    halo : Zhao
        Mass density [Msun/kpc^3]; needs inner slope gamma < 2 (finite central
        potential) and outer slope beta > 2 (finite potential at infinity).
        Infinite-mass halos (beta <= 3) are fine.
    rmin, rmax : float
        Table range in units of the halo scale radius.
    n : int
        Number of logarithmic grid points.
    """

    def __init__(self, halo: Zhao, rmin: float = 1e-7, rmax: float = 1e7, n: int = 8001) -> None:
        if not halo.gamma < 2.0:
            raise DsphnfError(f"halo inner slope gamma={halo.gamma} >= 2 gives an infinite central potential")
        if not halo.beta > 2.0:
            raise DsphnfError(f"halo outer slope beta={halo.beta} <= 2 gives an infinite potential")
        self.halo = halo
        self.lnr = np.linspace(np.log(rmin * halo.rs), np.log(rmax * halo.rs), n)
        r = np.exp(self.lnr)
        m = G * halo.mass(r)
        # Int m/s^2 ds = Int (m/s) dln s on the grid; power-law head and tail.
        seg = integrate.cumulative_trapezoid(m / r, self.lnr, initial=0.0)
        head = m[0] / r[0] / (2.0 - halo.gamma)  # m ~ r^(3 - gamma) inside r[0]
        tail = m[-1] / r[-1] + 4.0 * np.pi * G * float(halo.density(r[-1])) * r[-1] ** 2 / (halo.beta - 2.0)
        self.depth = head + seg  # Psi(0) - Psi(r), precise at small r
        self.psi = (seg[-1] - seg) + tail  # Psi(r), precise at large r
        self.psi0 = float(head + seg[-1] + tail)
        self.ln_psi = np.log(self.psi)
        self.ln_depth = np.log(self.depth)

    def m(self, r: np.ndarray) -> np.ndarray:
        """G M(<r) [kpc (km/s)^2]."""
        return G * self.halo.mass(r)

    def __call__(self, r: np.ndarray | float) -> np.ndarray:
        """Psi(r) [(km/s)^2] at radius r [kpc] (interpolated, log-log)."""
        return np.exp(np.interp(np.log(r), self.lnr, self.ln_psi))

    def depth_at(self, r: np.ndarray | float) -> np.ndarray:
        """Psi(0) - Psi(r) [(km/s)^2] at radius r [kpc] (interpolated, log-log)."""
        return np.exp(np.interp(np.log(r), self.lnr, self.ln_depth))

    def ln_radius(self, psi: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """ln r [kpc] where the potential is ``psi`` (with ``depth = Psi(0) - psi``).

        Uses whichever of the two tables keeps precision: ln Psi in the
        outskirts, ln(Psi(0) - Psi) near the centre.
        """
        psi = np.asarray(psi, dtype=float)
        depth = np.asarray(depth, dtype=float)
        out = np.empty(np.broadcast(psi, depth).shape)
        psi, depth = np.broadcast_arrays(psi, depth)
        outer = psi <= depth
        with np.errstate(divide="ignore"):
            # ln Psi decreases with r: interpolate on the reversed table.
            out[outer] = np.interp(np.log(psi[outer]), self.ln_psi[::-1], self.lnr[::-1])
            out[~outer] = np.interp(np.log(depth[~outer]), self.ln_depth, self.lnr)
        return out


class EddingtonDF:
    """Isotropic (Eddington) or Osipkov-Merritt DF of a tracer in a Zhao halo.

    Parameters
    ----------
    tracer : Zhao
        Tracer number density [kpc^-3], normalised to one star.
    halo : Zhao
        Dark-matter density [Msun/kpc^3] (the tracer is massless).
    anisotropy : Isotropic, OsipkovMerritt or None
        None means isotropic.
    n_energy : int
        Number of energies at which f is tabulated (log-spaced in radius).
    n_u : int
        Gauss-Legendre nodes per sub-interval of the Eddington integral.

    Attributes
    ----------
    lnr_f, lnf : ndarray
        ln r [kpc] and ln f [stars kpc^-3 (km/s)^-3] with eps (or Q) = Psi(r).

    Raises
    ------
    DsphnfError
        If the tracer/halo/anisotropy combination has f < 0 somewhere
        (not a physical equilibrium).
    """

    def __init__(self, tracer: Zhao, halo: Zhao, anisotropy: Anisotropy | None = None,
                 n_energy: int = 1601, n_u: int = 12) -> None:
        if anisotropy is None:
            anisotropy = Isotropic()
        if not isinstance(anisotropy, (Isotropic, OsipkovMerritt)):
            raise DsphnfError(
                f"EddingtonDF supports isotropic or Osipkov-Merritt anisotropy, not {anisotropy.spec()}"
            )
        if not tracer.beta > 3.0:
            raise DsphnfError("the tracer needs outer slope beta > 3 (finite number of stars)")
        self.tracer = tracer
        self.halo = halo
        self.anisotropy = anisotropy
        self.ra = anisotropy.ra if isinstance(anisotropy, OsipkovMerritt) else np.inf
        self.potential = Potential(halo)
        rs = tracer.rs
        self.lnr_f = np.linspace(np.log(1e-5 * rs), np.log(1e5 * rs), n_energy)
        self.lnf = self._tabulate(n_u)

    # ------------------------------------------------------------------
    def _nu_q(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """nu_Q(r) = (1 + r^2/r_a^2) nu(r), its log slope S and dS/dln r."""
        nu = self.tracer.density(r)
        s, ds = _zhao_slopes(self.tracer, r)
        if np.isfinite(self.ra):
            y = (r / self.ra) ** 2
            nu = nu * (1.0 + y)
            s = s + 2.0 * y / (1.0 + y)
            ds = ds + 4.0 * y / (1.0 + y) ** 2
        return nu, s, ds

    def dnu_dpsi(self, r: np.ndarray) -> np.ndarray:
        """d nu_Q / d Psi [kpc^-3 (km/s)^-2] at radius r [kpc] (analytic)."""
        r = np.asarray(r, dtype=float)
        nu, s, _ = self._nu_q(r)
        return -nu * s * r / self.potential.m(r)

    def d2nu_dpsi2(self, r: np.ndarray) -> np.ndarray:
        """d^2 nu_Q / d Psi^2 [kpc^-3 (km/s)^-4] at radius r [kpc] (analytic).

        With h = dnu/dPsi = -nu S r / m (m = G M, S = dln nu/dln r) and
        dPsi/dr = -m / r^2:  d^2nu/dPsi^2 = -(r^2/m) dh/dr, where
        r dh/dr = h (S + dS/dlnr / S + 1 - dln m/dln r).  Written without
        dividing by S so that S = 0 is harmless.
        """
        r = np.asarray(r, dtype=float)
        nu, s, ds = self._nu_q(r)
        m = self.potential.m(r)
        dlnm = 4.0 * np.pi * G * r**3 * self.halo.density(r) / m
        # r dh/dr = -(nu r / m) [S (S + 1 - dlnm) + dS]
        r_dh = -(nu * r / m) * (s * (s + 1.0 - dlnm) + ds)
        return -(r / m) * r_dh

    def _tabulate(self, n_u: int) -> np.ndarray:
        """ln f on the energy grid eps_j = Psi(r_j)."""
        pot = self.potential
        r_j = np.exp(self.lnr_f)
        eps = pot(r_j)
        dep = pot.depth_at(r_j)
        # u = sqrt(eps - Psi) in [0, sqrt(eps)]: geometric sub-intervals in t = u/sqrt(eps)
        # resolve the steep integrand near u = 0 when eps is close to Psi(0).
        edges = np.concatenate([[0.0], np.geomspace(1e-7, 1.0, 57)])
        x, w = np.polynomial.legendre.leggauss(n_u)
        a, b = edges[:-1, None], edges[1:, None]
        t = (0.5 * (b - a) * x + 0.5 * (b + a)).ravel()
        wt = (0.5 * (b - a) * w).ravel()
        sq = np.sqrt(eps)
        total = np.empty_like(eps)
        for k in range(0, eps.size, 200):  # chunks keep memory small
            sl = slice(k, k + 200)
            u2 = (sq[sl, None] * t) ** 2
            psi = eps[sl, None] - u2
            depth = dep[sl, None] + u2
            r = np.exp(pot.ln_radius(psi, depth))
            integrand = self.d2nu_dpsi2(r)
            total[sl] = 2.0 * sq[sl] * (integrand @ wt)
        # boundary term (dnu/dPsi at Psi = 0, i.e. r -> infinity)
        r_far = np.exp(pot.lnr[-1])
        boundary = float(self.dnu_dpsi(r_far))
        f = (total + boundary / np.sqrt(eps)) / (np.sqrt(8.0) * np.pi**2)
        self.f_table = f
        fmax = np.max(f)
        if np.any(f < -1e-8 * fmax):
            rbad = r_j[np.argmin(f)]
            raise DsphnfError(
                f"unphysical model: the distribution function is negative (e.g. at the energy "
                f"of r = {rbad:.3g} kpc) for this tracer, halo and anisotropy"
            )
        # f must not vanish where we take logs; floor numerically-zero values.
        f = np.maximum(f, 1e-300)
        return np.log(f)

    # ------------------------------------------------------------------
    def _ln_f_at(self, eps: np.ndarray, depth: np.ndarray, table: np.ndarray | None = None) -> np.ndarray:
        """ln f at energies eps (with depth = Psi(0) - eps), by interpolation in ln r(eps).

        ``table`` replaces ``self.lnf`` (e.g. by its running maximum).
        """
        table = self.lnf if table is None else table
        lnr = self.potential.ln_radius(eps, depth)
        return np.interp(lnr, self.lnr_f, table, left=table[0], right=-np.inf)

    def __call__(self, eps: np.ndarray | float) -> np.ndarray:
        """f(eps) [stars kpc^-3 (km/s)^-3] at relative energy eps [(km/s)^2] (Q for OM).

        Zero for eps <= 0.
        """
        eps = np.asarray(eps, dtype=float)
        out = np.zeros(eps.shape)
        ok = eps > 0
        with np.errstate(divide="ignore"):
            out[ok] = np.exp(self._ln_f_at(eps[ok], self.potential.psi0 - eps[ok]))
        return out

    # ------------------------------------------------------------------
    def sample_radius(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Radii [kpc] drawn from the tracer's enclosed-number profile (exact inverse CDF)."""
        tr = self.tracer
        p = (3.0 - tr.gamma) / tr.alpha
        q = (tr.beta - 3.0) / tr.alpha
        u = special.betaincinv(p, q, rng.uniform(size=n))
        return tr.rs * (u / (1.0 - u)) ** (1.0 / tr.alpha)

    def _sample_speed(self, r: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Speeds w [km/s] with density w^2 f(Psi(r) - w^2/2) on [0, sqrt(2 Psi(r))].

        Exact rejection sampling with a piecewise envelope per star: the range
        of w is cut into cells (uniform in w, plus geometric in the depth
        Psi(0) - eps, which resolves the steep rise of f at the centre of
        cuspy models); in cell [w_a, w_b] the envelope is w^2 F(eps(w_a)),
        with F the running maximum of f (>= f, non-decreasing in eps).
        """
        pot = self.potential
        m = r.size
        psi_r = pot(r)
        dep_r = pot.depth_at(r)
        vesc = np.sqrt(2.0 * psi_r)
        # cell edges in kinetic energy K = w^2/2 in [0, Psi(r)]
        k_lin = psi_r[:, None] * np.linspace(0.0, 1.0, _N_LIN + 1)
        g = np.linspace(0.0, 1.0, _N_GEO + 1)[1:-1]
        k_geo = dep_r[:, None] * ((pot.psi0 / dep_r)[:, None] ** g - 1.0)  # depth geometric
        k_edges = np.sort(np.hstack([k_lin, np.minimum(k_geo, psi_r[:, None])]), axis=1)
        w_edges = np.sqrt(2.0 * k_edges)
        w_edges[:, -1] = vesc
        lnf_max = np.maximum.accumulate(self.lnf[::-1])[::-1]  # max over r' >= r_j: eps' <= eps_j
        ka = k_edges[:, :-1]
        with np.errstate(divide="ignore"):
            ln_bound = self._ln_f_at(psi_r[:, None] - ka, dep_r[:, None] + ka, lnf_max)
        wa3, wb3 = w_edges[:, :-1] ** 3, w_edges[:, 1:] ** 3
        weight = np.exp(ln_bound - ln_bound.max(axis=1, keepdims=True)) * (wb3 - wa3)
        cum = np.cumsum(weight, axis=1)
        out = np.empty(m)
        todo = np.arange(m)
        for _ in range(1000):
            if todo.size == 0:
                return out
            c = cum[todo]
            u = rng.uniform(size=todo.size) * c[:, -1]
            cell = np.minimum((c < u[:, None]).sum(axis=1), c.shape[1] - 1)
            a3, b3 = wa3[todo, cell], wb3[todo, cell]
            w = np.cbrt(a3 + rng.uniform(size=todo.size) * (b3 - a3))
            kin = 0.5 * w**2
            eps = psi_r[todo] - kin
            with np.errstate(divide="ignore", invalid="ignore"):
                lnf = np.where(eps > 0, self._ln_f_at(np.maximum(eps, 1e-300), dep_r[todo] + kin), -np.inf)
            acc = np.log(rng.uniform(size=todo.size)) < lnf - ln_bound[todo, cell]
            out[todo[acc]] = w[acc]
            todo = todo[~acc]
        raise DsphnfError("velocity rejection sampling did not converge")  # pragma: no cover

    def sample(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Draw ``n`` stars in phase space.

        Parameters
        ----------
        n : int
            Number of stars.
        rng : numpy Generator or seed
            Random source.

        Returns
        -------
        ndarray, shape (n, 6)
            x, y, z [kpc] and vx, vy, vz [km/s].

        Notes
        -----
        Radii come from the exact inverse CDF of nu; speeds w in the space
        (v_r, v_t sqrt(1 + r^2/r_a^2)) (ordinary velocities for the isotropic
        case) have density w^2 f(Psi(r) - w^2/2) and are drawn exactly by
        rejection from a piecewise envelope (see :meth:`_sample_speed`);
        directions are isotropic in that space, after which tangential
        components are scaled back by 1/sqrt(1 + r^2/r_a^2).
        """
        rng = np.random.default_rng(rng)
        n = int(n)
        r = self.sample_radius(n, rng)
        pos = _unit_vectors(n, rng) * r[:, None]
        w = np.empty(n)
        for k in range(0, n, _CHUNK):
            sl = slice(k, k + _CHUNK)
            w[sl] = self._sample_speed(r[sl], rng)
        vel = _unit_vectors(n, rng) * w[:, None]
        if np.isfinite(self.ra):
            rhat = pos / r[:, None]
            vr = np.sum(vel * rhat, axis=1)
            vt = vel - vr[:, None] * rhat
            vel = vr[:, None] * rhat + vt / np.sqrt(1.0 + (r / self.ra) ** 2)[:, None]
        return np.hstack([pos, vel])


_CHUNK = 20000  # stars per vectorised block in sample()
_N_LIN, _N_GEO = 16, 48  # envelope cells: uniform in w, geometric in Psi(0) - eps


def _unit_vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` isotropic unit vectors, shape (n, 3)."""
    cos_t = rng.uniform(-1.0, 1.0, size=n)
    phi = rng.uniform(0.0, 2.0 * np.pi, size=n)
    sin_t = np.sqrt(1.0 - cos_t**2)
    return np.column_stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t])

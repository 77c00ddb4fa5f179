"""Equilibrium distribution functions of a massless Zhao tracer in any spherical halo.

A tracer with number density ``nu(r)`` (a normalised :class:`~dsphnf.profiles.Zhao`,
one star in total) orbits in the potential of a dark-matter halo
(:class:`dsphnf.halos.Halo`: Zhao, NFW, Burkert, Einasto).  With the relative
potential Psi(r) (:class:`dsphnf.potential.Potential`) and energy E = Psi - v^2/2,
the Cuddeford (1991) family

    f(E, L) = L^(-2 b0) f_Q(Q),      Q = E - L^2 / (2 r_a^2),
    beta(r) = (b0 + r^2/r_a^2) / (1 + r^2/r_a^2)

contains the isotropic (b0 = 0, r_a = inf; Eddington), Osipkov-Merritt
(b0 = 0) and constant-beta (r_a = inf) models.  f_Q follows from the
augmented density rho_Q(Psi) = r^(2 b0) (1 + r^2/r_a^2)^(1 - b0) nu(r) by a
fractional derivative of order alpha = 3/2 - b0 (An & Evans 2006):

    rho_Q = 2^(3/2 - b0) pi^(3/2) Gamma(1 - b0) I^alpha f_Q,
    f_Q   = D^alpha rho_Q / (2^(3/2 - b0) pi^(3/2) Gamma(1 - b0)),
    D^alpha rho (Q) = sum_{k<m} rho^(k)(0) Q^(k - alpha) / Gamma(k - alpha + 1)
                    + 1/Gamma(m - alpha) Int_0^Q rho^(m)(x) (Q - x)^(m - alpha - 1) dx,

m = ceil(alpha); for integer alpha (b0 = 1/2, -1/2) simply f_Q = rho^(alpha)(Q) / C.
The units of f are stars / (kpc^3 (km/s)^3) times L^(-2 b0).

Accuracy: the Psi-derivatives of rho_Q up to third order are analytic (chain
rule with dPsi/dln r = -G M / r and the halo's own logarithmic slope); the
weak singularity (Q - x)^(m - alpha - 1) is removed by Q - x = Q t^(1/(m - alpha)).
A negative f anywhere on the table (Q = Psi(r), 1e-5 to 1e5 tracer scale radii)
refuses the model (:class:`~dsphnf.errors.DsphnfError`); beyond it f continues
its end values (power law outside, constant inside).  Physics worth knowing:
a cored tracer (gamma* = 0) in a cusped halo is isotropically unphysical
(f < 0 at high binding energy), and in a halo whose density has a linear
term at the centre (Burkert, the (1, 3, 0) 'core') d^2nu/dPsi^2 ~ -(Psi0 - Psi)^(-1/2)
makes the isotropic f -> -inf logarithmically at E -> Psi(0); the table sees this
only when it happens outside 1e-5 scale radii (e.g. plummer:0.6 in burkert:4e8,1),
otherwise it concerns a fraction ~1e-15 of the stars.  Tracers with
gamma* >= 0.1 (the Gaia Challenge 'Plum') avoid both.
:meth:`CuddefordDF.sample` draws (x, v) exactly from the tabulated DF.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special

from .anisotropy import Anisotropy, ConstantBeta, Cuddeford, Isotropic, OsipkovMerritt
from .errors import DsphnfError
from .potential import Potential, interp_extrapolate
from .profiles import Zhao
from .sampling import sample_speeds, tangent_basis, unit_vectors

__all__ = ["Potential", "CuddefordDF", "EddingtonDF", "cuddeford_parameters"]

#: Supported central anisotropy range of the inversion.
B0_MIN = -1.0


def _logistic(r: np.ndarray, scale: float, power: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """u = y / (1 + y), y = (r/scale)^power, and its first two derivatives in ln r."""
    y = (r / scale) ** power
    u = y / (1.0 + y)
    du = power * u * (1.0 - u)
    return u, du, power * du * (1.0 - 2.0 * u)


def cuddeford_parameters(anisotropy: Anisotropy | None) -> tuple[float, float]:
    """(b0, r_a [kpc]) of an isotropic, constant-beta, Osipkov-Merritt or Cuddeford model (r_a = inf if none)."""
    if anisotropy is None or isinstance(anisotropy, Isotropic):
        return 0.0, math.inf
    if isinstance(anisotropy, ConstantBeta):
        return float(anisotropy.beta0), math.inf
    if isinstance(anisotropy, Cuddeford):  # OsipkovMerritt included
        return float(anisotropy.b0), float(anisotropy.ra)
    raise DsphnfError(
        f"no distribution function for anisotropy {anisotropy.spec()}: "
        "use isotropic, constant:B, om:RA or cuddeford:B0,RA"
    )


class CuddefordDF:
    """Distribution function f = L^(-2 b0) f_Q(E - L^2/(2 r_a^2)) of a Zhao tracer in a spherical halo.

    Parameters
    ----------
    tracer : Zhao
        Tracer number density [kpc^-3], normalised to one star (outer slope > 3).
    halo : Halo
        Dark-matter density [Msun/kpc^3] (the tracer is massless).
    anisotropy : Isotropic, ConstantBeta, OsipkovMerritt, Cuddeford or None
        None means isotropic.  Needs -1 <= b0 <= gamma*/2 (the cusp-slope
        limit of An & Evans 2006, gamma* the tracer's inner slope).
    n_energy : int
        Number of energies Q at which f_Q is tabulated (log-spaced in radius).
    n_u : int
        Gauss-Legendre nodes per sub-interval of the inversion integral.
    explain : bool
        Whether a refusal with finite r_a searches for the smallest physical r_a
        to quote (a few seconds).

    Attributes
    ----------
    b0, ra : float
        Central anisotropy and anisotropy radius [kpc] (inf: none).
    lnr_f, lnf : ndarray
        ln r [kpc] and ln f_Q with Q = Psi(r).

    Raises
    ------
    DsphnfError
        One line naming the reason (and the limit) if f < 0 somewhere.

    Examples
    --------
    >>> from dsphnf.profiles import plummer
    >>> df = CuddefordDF(plummer(1.0, 0.3), plummer(1e8, 0.3), ConstantBeta(-0.5))
    >>> bool(df(1.0) > 0), df.b0
    (True, -0.5)
    """

    def __init__(self, tracer: Zhao, halo, anisotropy: Anisotropy | None = None,
                 n_energy: int = 1601, n_u: int = 12, explain: bool = True) -> None:
        self.b0, self.ra = cuddeford_parameters(anisotropy)
        self._explain = explain
        self.anisotropy = anisotropy if anisotropy is not None else Isotropic()
        if not tracer.beta > 3.0:
            raise DsphnfError("the tracer needs outer slope beta > 3 (finite number of stars)")
        self._check_b0(tracer)
        self.tracer = tracer
        self.halo = halo
        self.potential = Potential(halo)
        rs = tracer.rs
        self.lnr_f = np.linspace(np.log(1e-5 * rs), np.log(1e5 * rs), n_energy)
        self.lnf = self._tabulate(n_u)

    def _check_b0(self, tracer: Zhao) -> None:
        spec = self.anisotropy.spec()
        if self.b0 < B0_MIN:
            raise DsphnfError(f"no distribution function for {spec}: central anisotropy {self.b0:g} is below "
                              f"the supported limit {B0_MIN:g}")
        if self.b0 > 0.5 * tracer.gamma + 1e-12:
            raise DsphnfError(
                f"unphysical model {spec}: central anisotropy {self.b0:g} exceeds the cusp-slope limit "
                f"gamma*/2 = {0.5 * tracer.gamma:g} of the tracer (An & Evans 2006), so f < 0 at the centre")

    # ------------------------------------------------------------------
    def _log_slopes(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """rho_Q(r) and S = dln rho_Q/dln r with its first two ln r derivatives."""
        tr = self.tracer
        nu = tr.density(r)
        u, du, d2u = _logistic(r, tr.rs, tr.alpha)
        s = -tr.gamma + (tr.gamma - tr.beta) * u + 2.0 * self.b0
        ds, d2s = (tr.gamma - tr.beta) * du, (tr.gamma - tr.beta) * d2u
        rho = nu * r ** (2.0 * self.b0) if self.b0 != 0.0 else nu
        if np.isfinite(self.ra):
            y = (r / self.ra) ** 2
            rho = rho * (1.0 + y) ** (1.0 - self.b0)
            v, dv, d2v = _logistic(r, self.ra, 2.0)
            c = 2.0 * (1.0 - self.b0)
            s, ds, d2s = s + c * v, ds + c * dv, d2s + c * d2v
        return rho, s, ds, d2s

    def derivative(self, r: np.ndarray, k: int) -> np.ndarray:
        """d^k rho_Q / d Psi^k at radius r [kpc], k = 0..3 (analytic).

        With dPsi/dln r = -m/r (m = G M) every derivative is
        (-1)^k rho_Q (r/m)^k P_k, P_0 = 1, P_(k+1) = P_k (S + k (1 - mu)) + dP_k/dln r,
        S = dln rho_Q/dln r, mu = dln M/dln r; written without dividing by S.
        """
        r = np.asarray(r, dtype=float)
        rho, s, ds, d2s = self._log_slopes(r)
        if k == 0:
            return rho
        m = self.potential.m(r)
        mu = self.potential.dlnm_dlnr(r)
        p = s
        if k >= 2:
            p2 = s * (s + 1.0 - mu) + ds
            if k == 3:
                dmu = mu * (3.0 + self.halo.dlogrho_dlogr(r) - mu)
                dp2 = ds * (s + 1.0 - mu) + s * (ds - dmu) + d2s
                p2 = p2 * (s + 2.0 * (1.0 - mu)) + dp2
            p = p2
        return (-1.0) ** k * rho * (r / m) ** k * p

    def dnu_dpsi(self, r: np.ndarray) -> np.ndarray:
        """d rho_Q / d Psi [kpc^-3 (km/s)^-2] at radius r [kpc] (rho_Q = nu_Q for OM)."""
        return self.derivative(r, 1)

    def d2nu_dpsi2(self, r: np.ndarray) -> np.ndarray:
        """d^2 rho_Q / d Psi^2 [kpc^-3 (km/s)^-4] at radius r [kpc]."""
        return self.derivative(r, 2)

    def _tabulate(self, n_u: int) -> np.ndarray:
        """ln f_Q on the energy grid Q_j = Psi(r_j)."""
        r_j = np.exp(self.lnr_f)
        alpha = 1.5 - self.b0
        norm = 2.0 ** alpha * np.pi**1.5 * special.gamma(1.0 - self.b0)
        m = math.ceil(alpha - 1e-12)
        if abs(alpha - round(alpha)) < 1e-12:  # b0 = +-1/2: an ordinary derivative
            f = self.derivative(r_j, int(round(alpha))) / norm
        else:
            f = self._fractional(r_j, alpha, m, n_u) / norm
        self.f_table = f
        self._check_positive(f, r_j)
        # f must not vanish where we take logs; floor numerically-zero values.
        return np.log(np.maximum(f, 1e-300))

    def _fractional(self, r_j: np.ndarray, alpha: float, m: int, n_u: int) -> np.ndarray:
        """D^alpha rho_Q at Q = Psi(r_j), with Q - x = Q s and s = t^(1/(m - alpha))."""
        pot = self.potential
        eps, dep = pot(r_j), pot.depth_at(r_j)
        b = m - alpha
        # geometric cells in s resolve the steep integrand near x = Q (the centre)
        edges = np.concatenate([[0.0], np.geomspace(10.0 ** (-14.0 * b), 1.0, 57)])
        x, w = np.polynomial.legendre.leggauss(n_u)
        lo, hi = edges[:-1, None], edges[1:, None]
        t = (0.5 * (hi - lo) * x + 0.5 * (hi + lo)).ravel()
        wt = (0.5 * (hi - lo) * w).ravel()
        s = t ** (1.0 / b)
        total = np.empty_like(eps)
        for k in range(0, eps.size, 200):  # chunks keep memory small
            sl = slice(k, k + 200)
            es = eps[sl, None] * s
            r = np.exp(pot.ln_radius(eps[sl, None] - es, dep[sl, None] + es))
            total[sl] = eps[sl] ** b * special.rgamma(b + 1.0) * (self.derivative(r, m) @ wt)
        r_far = np.exp(pot.lnr[-1])  # boundary terms rho^(k)(Psi -> 0), i.e. r -> infinity
        for k in range(m):
            total += float(self.derivative(r_far, k)) * eps ** (k - alpha) * special.rgamma(k - alpha + 1.0)
        return total

    def _check_positive(self, f: np.ndarray, r_j: np.ndarray) -> None:
        if np.all(f >= -1e-8 * np.max(f)):
            return
        rbad = r_j[np.argmin(f)]
        limit = ""
        if np.isfinite(self.ra) and self._explain:
            ra_min = _smallest_radius(self.tracer, self.halo, self.b0, self.ra)
            limit = (f"; the anisotropy radius must be at least about {ra_min:.3g} kpc" if np.isfinite(ra_min)
                     else "; no anisotropy radius makes it positive (r_a -> infinity is negative too)")
        raise DsphnfError(
            f"unphysical model {self.anisotropy.spec()}: the distribution function is negative (e.g. at the "
            f"energy of r = {rbad:.3g} kpc) for this tracer and halo{limit}"
        )

    # ------------------------------------------------------------------
    def _ln_f_at(self, eps: np.ndarray, depth: np.ndarray, table: np.ndarray | None = None) -> np.ndarray:
        """ln f_Q at energies eps (with depth = Psi(0) - eps), by interpolation in ln r(eps).

        ``table`` replaces ``self.lnf`` (e.g. by its running maximum).
        """
        table = self.lnf if table is None else table
        lnr = self.potential.ln_radius(eps, depth)
        # beyond the outermost tabulated energy f continues its end power law (never rising)
        val = interp_extrapolate(lnr, self.lnr_f, table)
        return np.where(lnr > self.lnr_f[-1], np.minimum(val, table[-1]), val)

    def __call__(self, q: np.ndarray | float) -> np.ndarray:
        """f_Q(Q) at Q [(km/s)^2] (eps for the isotropic DF); zero for Q <= 0."""
        q = np.asarray(q, dtype=float)
        out = np.zeros(q.shape)
        ok = q > 0
        with np.errstate(divide="ignore"):
            out[ok] = np.exp(self._ln_f_at(q[ok], self.potential.psi0 - q[ok]))
        return out

    def f(self, energy: np.ndarray, ang_mom: np.ndarray) -> np.ndarray:
        """f(E, L) = L^(-2 b0) f_Q(E - L^2/(2 r_a^2)); E [(km/s)^2], L [kpc km/s]."""
        energy, ang_mom = np.asarray(energy, dtype=float), np.asarray(ang_mom, dtype=float)
        q = energy - (0.5 * ang_mom**2 / self.ra**2 if np.isfinite(self.ra) else 0.0)
        return ang_mom ** (-2.0 * self.b0) * self(q)

    # ------------------------------------------------------------------
    def sample_radius(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Radii [kpc] drawn from the tracer's enclosed-number profile (exact inverse CDF)."""
        tr = self.tracer
        p = (3.0 - tr.gamma) / tr.alpha
        q = (tr.beta - 3.0) / tr.alpha
        u = special.betaincinv(p, q, rng.uniform(size=n))
        return tr.rs * (u / (1.0 - u)) ** (1.0 / tr.alpha)

    def sample(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Draw ``n`` stars in phase space: an (n, 6) array x, y, z [kpc], vx, vy, vz [km/s].

        Radii come from the exact inverse CDF of nu.  In the plane
        (v_r, w_t = v_t sqrt(1 + r^2/r_a^2)) the DF separates in polar
        coordinates (w, theta): w has density w^(2 - 2 b0) f_Q(Psi(r) - w^2/2)
        (drawn exactly by rejection, :func:`dsphnf.sampling.sample_speeds`)
        and cos(theta) = v_r / w has density (1 - cos^2)^(-b0) (a Beta
        variate); the tangential direction is uniform.  For b0 = 0 the
        direction is an isotropic unit vector in (v_r, w_t) space.
        """
        rng = np.random.default_rng(rng)
        n = int(n)
        r = self.sample_radius(n, rng)
        pos = unit_vectors(n, rng) * r[:, None]
        w = np.empty(n)
        for k in range(0, n, _CHUNK):
            sl = slice(k, k + _CHUNK)
            w[sl] = sample_speeds(self, r[sl], rng, power=2.0 - 2.0 * self.b0)
        stretch = np.sqrt(1.0 + (r / self.ra) ** 2) if np.isfinite(self.ra) else None
        rhat = pos / r[:, None]
        if self.b0 == 0.0:
            vel = unit_vectors(n, rng) * w[:, None]
            if stretch is None:
                return np.hstack([pos, vel])
            vr = np.sum(vel * rhat, axis=1)
            vt = vel - vr[:, None] * rhat
            return np.hstack([pos, vr[:, None] * rhat + vt / stretch[:, None]])
        cos_t = 2.0 * rng.beta(1.0 - self.b0, 1.0 - self.b0, size=n) - 1.0
        vr, vt = w * cos_t, w * np.sqrt(np.maximum(1.0 - cos_t**2, 0.0))
        if stretch is not None:
            vt = vt / stretch
        psi = rng.uniform(0.0, 2.0 * np.pi, size=n)
        e1, e2 = tangent_basis(rhat)
        vel = vr[:, None] * rhat + (vt * np.cos(psi))[:, None] * e1 + (vt * np.sin(psi))[:, None] * e2
        return np.hstack([pos, vel])


class EddingtonDF(CuddefordDF):
    """Isotropic (Eddington) or Osipkov-Merritt DF: :class:`CuddefordDF` restricted to b0 = 0.

    ``ra`` is inf for the isotropic model; ``df(eps)`` is f(eps) (f_Q(Q) for OM).
    """

    def __init__(self, tracer: Zhao, halo, anisotropy: Anisotropy | None = None,
                 n_energy: int = 1601, n_u: int = 12) -> None:
        if anisotropy is not None and not isinstance(anisotropy, (Isotropic, OsipkovMerritt)):
            raise DsphnfError(
                f"EddingtonDF supports isotropic or Osipkov-Merritt anisotropy, not {anisotropy.spec()}"
            )
        super().__init__(tracer, halo, anisotropy, n_energy, n_u)


def _smallest_radius(tracer: Zhao, halo, b0: float, ra: float) -> float:
    """Smallest anisotropy radius [kpc] with f >= 0 for this tracer, halo and b0 (bisection in ln r_a)."""
    def ok(x: float) -> bool:
        try:
            CuddefordDF(tracer, halo, Cuddeford(b0, x), n_energy=301, n_u=8, explain=False)
        except DsphnfError:
            return False
        return True

    lo, hi = ra, max(2.0 * ra, tracer.rs)
    while not ok(hi):
        lo, hi = hi, 2.0 * hi
        if hi > 1e3 * tracer.rs:
            return math.inf
    for _ in range(10):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


_CHUNK = 20000  # stars per vectorised block in sample()

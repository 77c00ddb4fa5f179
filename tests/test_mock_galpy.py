"""Independent check against galpy's spherical DFs (test-only dependency).

Two-sample KS tests (p > 0.01) of projected R and v_z between our draws and
galpy's: an Osipkov-Merritt Plummer tracer in a Burkert halo (galpy's general
osipkovmerrittdf, numerical inversion) and constant-beta Hernquist spheres
(galpy's closed-form constantbetaHernquistdf; its general constantbetadf needs
jax and takes minutes per thousand stars).  galpy runs in natural units with
ro = 1 kpc and vo = 1 km/s, so its masses are G M [kpc (km/s)^2].
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from dsphnf.anisotropy import ConstantBeta, OsipkovMerritt
from dsphnf.constants import G
from dsphnf.df import CuddefordDF
from dsphnf.halos import Burkert
from dsphnf.profiles import Zhao, tracer_zhao

galpy_df = pytest.importorskip("galpy.df")
galpy_pot = pytest.importorskip("galpy.potential")

N_GALPY, N_OURS = 4000, 20000


def _ks(orbits, ours: np.ndarray) -> tuple[float, float]:
    R, vz = orbits.R(use_physical=False), orbits.vz(use_physical=False)
    return (stats.ks_2samp(R, np.hypot(ours[:, 0], ours[:, 1])).pvalue,
            stats.ks_2samp(vz, ours[:, 5]).pvalue)


@pytest.mark.slow
def test_om_plummer_in_burkert_matches_galpy():
    rho0, rs, a, ra = 4.0e8, 1.0, 0.25, 0.3
    pot = galpy_pot.BurkertPotential(amp=rho0 * G, a=rs, ro=1.0, vo=1.0)
    den = galpy_pot.PlummerPotential(amp=1.0, b=a, ro=1.0, vo=1.0)
    np.random.seed(1)  # galpy samples with numpy's global generator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = galpy_df.osipkovmerrittdf(pot=pot, denspot=den, ra=ra, rmax=1e3, ro=1.0, vo=1.0).sample(n=N_GALPY)
    ours = CuddefordDF(tracer_zhao(a, 0.0, 5.0, 2.0), Burkert(rho0, rs), OsipkovMerritt(ra)).sample(N_OURS, 2)
    p_r, p_v = _ks(theirs, ours)
    assert p_r > 0.01 and p_v > 0.01, (p_r, p_v)


@pytest.mark.slow
@pytest.mark.parametrize("beta", [-0.4, 0.25])
def test_constant_beta_hernquist_matches_galpy(beta):
    mass, a = 1.0e8, 0.4
    pot = galpy_pot.HernquistPotential(amp=2.0 * mass * G, a=a, ro=1.0, vo=1.0)  # galpy: M = amp / 2
    np.random.seed(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = galpy_df.constantbetaHernquistdf(pot=pot, beta=beta, ro=1.0, vo=1.0).sample(n=N_GALPY)
    halo = Zhao(mass / (2.0 * np.pi * a**3), a, 1.0, 4.0, 1.0)
    ours = CuddefordDF(tracer_zhao(a, 1.0, 4.0, 1.0), halo, ConstantBeta(beta)).sample(N_OURS, 4)
    p_r, p_v = _ks(theirs, ours)
    assert p_r > 0.01 and p_v > 0.01, (p_r, p_v)

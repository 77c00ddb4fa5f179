"""Fixed (parameter-free) layers of the flow: the base reshaping.

- :func:`plummer_radius` maps the radius of a 3-D standard normal point to the
  radius with the same cumulative fraction in a Plummer sphere of scale 1
  (M(<r) = r^3 / (1 + r^2)^(3/2)), so the untrained flow already has the
  r^-5 outskirts of a dSph; :func:`plummer_inverse` undoes it.
"""
from __future__ import annotations

import math

import torch

__all__ = ["plummer_radius", "plummer_inverse", "chi3_cdf_sf"]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


# ---------------------------------------------------------------------------
# fixed radial reshaping of the base: chi_3 radius -> Plummer radius
def chi3_cdf_sf(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CDF and survival function of the chi distribution with 3 degrees of freedom."""
    small = u < 1.0
    us = torch.where(small, u, torch.full_like(u, 0.5))  # double-where: no NaN/0 gradients leak
    w = us * us / 2.0
    # series of sqrt(2/pi) Int_0^u t^2 exp(-t^2/2) dt, accurate to ~1e-12 for u <= 1
    term = us**3 / 3.0
    series = term.clone()
    coef = us**3
    for k in range(1, 14):
        coef = coef * (-w) / k
        series = series + coef / (2 * k + 3)
    series = _SQRT_2_OVER_PI * series
    ul = torch.where(small, torch.full_like(u, 2.0), u)
    gauss = _SQRT_2_OVER_PI * ul * torch.exp(-0.5 * ul * ul)
    cdf_l = torch.erf(ul / math.sqrt(2.0)) - gauss
    sf_l = torch.erfc(ul / math.sqrt(2.0)) + gauss
    cdf = torch.where(small, series, cdf_l)
    sf = torch.where(small, 1.0 - series, sf_l)
    return cdf, sf


def plummer_radius(u: torch.Tensor) -> torch.Tensor:
    """Radius of a Plummer sphere (a = 1) with the cumulative fraction of chi_3 at ``u``."""
    cdf, sf = chi3_cdf_sf(u)
    log_m = torch.where(sf < 0.5, torch.log1p(-sf.clamp(max=0.5)), torch.log(cdf.clamp_min(1e-300)))
    return torch.rsqrt(torch.expm1(-(2.0 / 3.0) * log_m))


def plummer_inverse(r: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`plummer_radius` (bisection-free: Newton on u in float64)."""
    m = r**3 / (1.0 + r * r) ** 1.5
    u = torch.clamp((3.0 * m / _SQRT_2_OVER_PI) ** (1.0 / 3.0), max=8.0)
    for _ in range(60):
        cdf, _ = chi3_cdf_sf(u)
        pdf = _SQRT_2_OVER_PI * u * u * torch.exp(-0.5 * u * u)
        u = (u - (cdf - m) / pdf.clamp_min(1e-300)).clamp(min=1e-12)
    return u

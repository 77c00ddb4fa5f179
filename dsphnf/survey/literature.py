"""Published values to put beside the survey: rho(150 pc) and log10 J(0.5 deg), each with its source and band.

Sources (bibkeys in references.bib):

``ReadWalkerSteger2019`` (Read, Walker & Steger 2019, MNRAS 484, 1401; GravSphere)
    rho_DM(150 pc) [Msun/kpc^3], median with 68 % limits.  Draco as quoted in
    this project's reference-data README, 2.4 (+0.5 / -0.6) x 10^8.  The other
    galaxies as compiled (in units of 10^7 Msun/kpc^3) in the data file
    ``density150pc_Read2019.csv`` of the public repository
    NoemiAM/TangoSIDM_satellites, which cites Table 4 of Andrade et al. 2023
    for them.  That file gives Draco as 23.6 (-2.9 / +2.0) x 10^7, a
    narrower band than the README's; the README's is used here.  Read et al.
    did not fit Canes Venatici I: no value.
``PaceStrigari2019`` (Pace & Strigari 2019, MNRAS 482, 3480)
    log10 J(0.5 deg) [GeV^2 cm^-5] of their Table A2 (NFW halos), as
    tabulated with a symmetric log10 error (``j_integ``, ``j_sigma``) in the
    Fermi-LAT tool dmsky (fermiPy/dmsky, ``pace2019.yaml``); Draco 18.83 +-
    0.12 and Fornax 18.09 +- 0.10 agree with the reference-data README.
``GeringerSameth2015`` (Geringer-Sameth, Koushiappas & Walker 2015, ApJ 801, 74)
    log10 J(0.5 deg), as tabulated in dmsky's ``geringer-sameth2015.yaml``
    (Draco 18.84 +- 0.13 agrees with the README).

No value here was typed from memory; a galaxy or quantity without a
verifiable source is left out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["Published", "LITERATURE", "SOURCE_LABELS", "published", "pull"]

#: Short citations of the sources, for figures.
SOURCE_LABELS = {"ReadWalkerSteger2019": "Read et al. 2019", "PaceStrigari2019": "Pace & Strigari 2019",
                 "GeringerSameth2015": "Geringer-Sameth et al. 2015"}


@dataclass(frozen=True)
class Published:
    """One published value: median and 68 % limits, and its source.

    Attributes
    ----------
    quantity : str
        Survey column it compares with (``rho150`` [Msun/kpc^3] or ``log10_J05``).
    value, lo, hi : float
        Median and 16/84 % limits (same unit as the survey column).
    source : str
        Bibkey.
    """

    quantity: str
    value: float
    lo: float
    hi: float
    source: str


def _rho(value_1e7: float, minus: float, plus: float) -> Published:
    """Read et al. rho(150 pc) compiled in units of 1e7 Msun/kpc^3."""
    return Published("rho150", value_1e7 * 1e7, (value_1e7 - minus) * 1e7, (value_1e7 + plus) * 1e7,
                     "ReadWalkerSteger2019")


def _j(j_integ: float, sigma: float, source: str) -> Published:
    """log10 J(0.5 deg) from dmsky's j_integ [GeV^2 cm^-5] and its symmetric log10 sigma."""
    v = round(math.log10(j_integ), 2)
    return Published("log10_J05", v, v - sigma, v + sigma, source)


#: Published values by galaxy key (:data:`dsphnf.galaxies.GALAXIES`).
LITERATURE: dict[str, tuple[Published, ...]] = {
    "draco": (Published("rho150", 2.4e8, 1.8e8, 2.9e8, "ReadWalkerSteger2019"),
              _j(6.76e18, 0.12, "PaceStrigari2019"), _j(6.92e18, 0.13, "GeringerSameth2015")),
    "fornax": (_rho(7.9, 1.9, 2.7), _j(1.23e18, 0.10, "PaceStrigari2019"), _j(6.76e17, 0.09, "GeringerSameth2015")),
    "carina": (_rho(11.6, 2.2, 2.0), _j(6.76e17, 0.095, "PaceStrigari2019"),
               _j(7.41e17, 0.10, "GeringerSameth2015")),
    "cvn1": (_j(2.63e17, 0.16, "PaceStrigari2019"), _j(2.69e17, 0.33, "GeringerSameth2015")),
    "leo1": (_rho(17.7, 3.4, 3.3), _j(4.37e17, 0.13, "PaceStrigari2019"), _j(6.918e17, 0.18, "GeringerSameth2015")),
    "leo2": (_rho(18.4, 1.6, 1.7), _j(5.75e17, 0.20, "PaceStrigari2019"), _j(9.33e17, 0.19, "GeringerSameth2015")),
    "sculptor": (_rho(14.9, 2.3, 2.8), _j(3.80e18, 0.05, "PaceStrigari2019"),
                 _j(3.47e18, 0.06, "GeringerSameth2015")),
    "sextans": (_rho(12.8, 2.9, 3.4), _j(5.37e17, 0.125, "PaceStrigari2019"),
                _j(3.31e17, 0.23, "GeringerSameth2015")),
    "ursaminor": (_rho(15.3, 3.2, 3.5), _j(5.62e18, 0.12, "PaceStrigari2019"),
                  _j(8.51e18, 0.23, "GeringerSameth2015")),
}


def published(galaxy: str, quantity: str) -> list[Published]:
    """The published values of ``quantity`` for ``galaxy`` (possibly none).

    >>> [(p.value, p.source) for p in published("draco", "log10_J05")]
    [(18.83, 'PaceStrigari2019'), (18.84, 'GeringerSameth2015')]
    """
    return [p for p in LITERATURE.get(galaxy, ()) if p.quantity == quantity]


def pull(row: Mapping[str, Any], lit: Published) -> float:
    """(ours - published) over the combined 68 % half-widths on the facing sides.

    rho150 is compared in log10 (its bands are asymmetric in the linear
    value).  With ours above the published value, our lower and their upper
    half-width combine in quadrature, and vice versa.  NaN when ours is NaN.

    >>> pull({"log10_J05": 19.0, "log10_J05_lo": 18.7, "log10_J05_hi": 19.3}, published("draco", "log10_J05")[0])
    0.526137
    """
    q = lit.quantity
    ours, lo, hi = (float(row.get(q + k, math.nan)) for k in ("", "_lo", "_hi"))
    vals = [ours, lo, hi, lit.value, lit.lo, lit.hi]
    if q == "rho150":
        if not all(v > 0 for v in vals):
            return math.nan
        vals = [math.log10(v) for v in vals]
    ours, lo, hi, v, vlo, vhi = vals
    if math.isnan(ours):
        return math.nan
    ours_side, their_side = (ours - lo, vhi - v) if ours >= v else (hi - ours, v - vlo)
    return round((ours - v) / math.hypot(ours_side, their_side), 6)

"""The nine classical dwarfs with Walker-format catalogues: where they are, how far, what shape.

:data:`GALAXIES` holds, per galaxy, the centre (RA, Dec J2000 [deg]), the
distance modulus and its error, the ellipticity e = 1 - b/a, the position
angle of the major axis [deg, east of north] and the major-axis half-light
radius [arcmin], each as published in the updated online table of
McConnachie (2012, AJ 144, 4; bibkey ``McConnachie2012``,
``NearbyGalaxies.dat``).  Distances follow from the moduli,
D = 10^(mu/5 + 1) pc, with the modulus error propagated linearly,
sigma_D = D ln(10) sigma_mu / 5 [kpc].  They agree with the distances the
catalogues' own papers used (:data:`dsphnf.datasets.WALKER_DWARFS`) within
one sigma; the largest difference is Fornax, 147 kpc here against the 138 kpc
of Walker et al. (2009), 0.75 sigma.

The catalogues themselves are third-party data (Walker et al. 2009, 2015;
Mateo et al. 2008; Spencer et al. 2017, 2018) read from the reference-data
folder (:func:`dsphnf.datasets.data_root`: ``DSPHNF_DATA`` or
``../shared/data``), never shipped with the package.

:meth:`Galaxy.read` reads a galaxy's catalogue at the table distance and, by
default, replaces every star's projected radius by its elliptical radius
(:func:`dsphnf.catalog.elliptical_radius`, the circularised convention
R_ell = sqrt(a b) of the ellipse through the star).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .constants import ARCMIN_PER_RAD
from .errors import DsphnfError

__all__ = ["Galaxy", "GALAXIES", "RADIUS_KINDS", "get_galaxy", "galaxy_keys"]

#: How a survey measures a star's projected radius.
RADIUS_KINDS = ("elliptical", "circular")
#: Bibkey (references.bib) of the structural and distance table.
TABLE_SOURCE = "McConnachie2012"


@dataclass(frozen=True)
class Galaxy:
    """One dwarf of the survey (values of McConnachie 2012, updated table).

    Attributes
    ----------
    key : str
        Lower-case name used on the command line and in file names (``draco``).
    name : str
        Display name (``Draco``).
    file : str
        Catalogue file name in ``walker_dwarfs/``.
    ra_deg, dec_deg : float
        Centre, J2000 [deg].
    distance_modulus, distance_modulus_err : float
        (m - M)_0 and its (symmetric) 1-sigma error [mag].
    ellipticity : float
        e = 1 - b/a of the stellar body.
    position_angle_deg : float
        Position angle of the major axis [deg, east of north].
    half_light_arcmin : float
        Half-light radius along the major axis [arcmin].
    source : str
        Bibkey of the values.
    """

    key: str
    name: str
    file: str
    ra_deg: float
    dec_deg: float
    distance_modulus: float
    distance_modulus_err: float
    ellipticity: float
    position_angle_deg: float
    half_light_arcmin: float
    source: str = TABLE_SOURCE

    @property
    def distance_kpc(self) -> float:
        """Heliocentric distance [kpc] from the distance modulus.

        >>> round(GALAXIES["draco"].distance_kpc, 1)
        75.9
        """
        return float(10.0 ** (self.distance_modulus / 5.0 + 1.0) / 1e3)

    @property
    def distance_err_kpc(self) -> float:
        """1-sigma distance error [kpc], D ln(10) sigma_mu / 5."""
        return float(self.distance_kpc * np.log(10.0) * self.distance_modulus_err / 5.0)

    @property
    def half_light_kpc(self) -> float:
        """Circularised projected half-light radius a_h sqrt(1 - e) [kpc] at the table distance.

        >>> round(GALAXIES["draco"].half_light_kpc, 4)
        0.1833
        """
        return float(self.half_light_arcmin * np.sqrt(1.0 - self.ellipticity) * self.distance_kpc / ARCMIN_PER_RAD)

    def catalogue_path(self, root: str | os.PathLike | None = None) -> Path:
        """The catalogue file in the reference-data folder.

        Raises
        ------
        DsphnfError
            One line when the reference data or this file are absent.
        """
        from .datasets import data_root

        base = data_root(root)
        if base is None:
            raise DsphnfError(f"{self.name}: reference data not found (set DSPHNF_DATA to the folder holding "
                              "walker_dwarfs/)")
        path = base / "walker_dwarfs" / self.file
        if not path.is_file():
            raise DsphnfError(f"{self.name}: catalogue {path} not found")
        return path

    def read(self, root: str | os.PathLike | None = None, radius: str = "elliptical",
             distance: float | None = None, min_member: float | None = None):
        """The galaxy's stars as a :class:`dsphnf.catalog.Catalog` [kpc, km/s].

        Parameters
        ----------
        root : path, optional
            Reference-data folder (default: :func:`dsphnf.datasets.data_root`).
        radius : {"elliptical", "circular"}
            Elliptical: positions rescaled so that each star's projected radius
            is its elliptical radius (:meth:`Catalog.with_elliptical_radius`).
        distance : float, optional
            Distance [kpc] (default: the table distance).
        min_member : float, optional
            Stars below this membership probability are dropped (default
            :data:`dsphnf.formats.WALKER_MIN_MEMBER`; 0 keeps every star with a
            usable velocity, for a foreground mixture).
        """
        from .catalog import Catalog
        from .formats import WALKER_MIN_MEMBER, read_walker

        if radius not in RADIUS_KINDS:
            raise DsphnfError(f"unknown radius {radius!r}: use elliptical or circular")
        floor = WALKER_MIN_MEMBER if min_member is None else float(min_member)
        cat = Catalog.from_parsed(read_walker(self.catalogue_path(root), distance or self.distance_kpc, floor))
        cat.meta["galaxy"] = self.key
        if radius == "elliptical":
            cat = cat.with_elliptical_radius(self.ellipticity, self.position_angle_deg)
        return cat


def _galaxy(key: str, name: str, file: str, ra: str, dec: str, mu: float, dmu: float, pa: float, e: float,
            rh: float) -> Galaxy:
    """A table row; RA as 'h m s' and Dec as 'd m s' strings, as printed in the source table."""
    h, m, s = (float(t) for t in ra.split())
    sign = -1.0 if dec.strip().startswith("-") else 1.0
    d, dm, ds = (abs(float(t)) for t in dec.split())
    return Galaxy(key, name, file, 15.0 * (h + m / 60 + s / 3600), sign * (d + dm / 60 + ds / 3600), mu, dmu,
                  e, pa, rh)


#: The survey's galaxies, by key: McConnachie (2012) updated table (RA, Dec, (m-M)_0 +- err, PA, e, r_h).
GALAXIES: dict[str, Galaxy] = {g.key: g for g in (
    _galaxy("carina", "Carina", "car_spec.dat", "06 41 36.7", "-50 57 58", 20.11, 0.13, 65.0, 0.33, 8.20),
    _galaxy("cvn1", "Canes Venatici I", "cvn1_spec.dat", "13 28 03.5", "+33 33 21", 21.69, 0.10, 70.0, 0.39, 8.90),
    _galaxy("draco", "Draco", "dra_spec.dat", "17 20 12.4", "+57 54 55", 19.40, 0.17, 89.0, 0.31, 10.00),
    _galaxy("fornax", "Fornax", "for_spec.dat", "02 39 59.3", "-34 26 57", 20.84, 0.18, 41.0, 0.30, 16.60),
    _galaxy("leo1", "Leo I", "leo1_spec.dat", "10 08 28.1", "+12 18 23", 22.02, 0.13, 79.0, 0.21, 3.40),
    _galaxy("leo2", "Leo II", "leo2_spec.dat", "11 13 28.8", "+22 09 06", 21.84, 0.13, 12.0, 0.13, 2.60),
    _galaxy("sculptor", "Sculptor", "scl_spec.dat", "01 00 09.4", "-33 42 33", 19.67, 0.14, 99.0, 0.32, 11.30),
    _galaxy("sextans", "Sextans", "sex_spec.dat", "10 13 03.0", "-01 36 53", 19.67, 0.10, 56.0, 0.35, 27.80),
    _galaxy("ursaminor", "Ursa Minor", "umi_spec.dat", "15 09 08.5", "+67 13 21", 19.40, 0.10, 53.0, 0.56, 8.20),
)}

#: Other spellings accepted on the command line.
_ALIASES = {"canesvenatici": "cvn1", "canesvenaticii": "cvn1", "cvni": "cvn1", "leoi": "leo1", "leoii": "leo2",
            "umi": "ursaminor", "dra": "draco", "for": "fornax", "scl": "sculptor", "sex": "sextans", "car": "carina"}


def galaxy_keys() -> list[str]:
    """The galaxy keys in table order."""
    return list(GALAXIES)


def get_galaxy(name: str) -> Galaxy:
    """The :class:`Galaxy` of a name (case, spaces, '_' and '-' ignored; e.g. ``'Ursa Minor'``, ``'umi'``).

    Raises
    ------
    DsphnfError
        One line naming the galaxies known.

    Examples
    --------
    >>> get_galaxy("Ursa Minor").key, get_galaxy("LeoI").file
    ('ursaminor', 'leo1_spec.dat')
    >>> get_galaxy("Andromeda")
    Traceback (most recent call last):
    ...
    dsphnf.errors.DsphnfError: unknown galaxy 'Andromeda'; choose from carina, cvn1, draco, ..., ursaminor
    """
    key = "".join(ch for ch in str(name).lower() if ch.isalnum())
    key = _ALIASES.get(key, key)
    if key not in GALAXIES:
        raise DsphnfError(f"unknown galaxy {name!r}; choose from {', '.join(GALAXIES)}")
    return GALAXIES[key]

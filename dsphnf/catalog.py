"""Star catalogues: projected positions x, y [kpc], line-of-sight velocities vz [km/s].

:class:`Catalog` holds the stars; :func:`read_catalog` is the one entry point
for files.  It dispatches on the file extension to the parsers of
:mod:`dsphnf.formats`:

- ``.csv``: plain CSV with a header naming the columns;
- ``.ecsv``, ``.fits``/``.fit``: astropy tables (columns with units are
  converted to kpc and km/s);
- ``.dat``: either a Gaia Challenge mock (6 columns x y z vx vy vz; observed
  along z, ``*_err.dat`` files carry 2 km/s velocity errors) or a Walker-format
  spectroscopic catalogue of a real dwarf (25 columns; needs the distance).

Column names (case-insensitive; see :data:`dsphnf.validate.COLUMN_ALIASES`):
``x``, ``y`` [kpc], ``vz`` [km/s], optional ``vz_err`` [km/s] and
``p_member`` [0..1].  Positions-only catalogues (no ``vz``) are allowed.
Every file becomes a catalogue through :meth:`Catalog.from_parsed`, which ends
with :meth:`Catalog.validated` (the checks of
:func:`dsphnf.validate.validate_columns`).  :func:`format_summary` is the
catalogue summary printed by ``dsphnf info``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import CatalogError
from .formats import Parsed, read_astropy, read_csv, read_dat
from .kinematics import half_number_radius, kish_size, ml_dispersion
from .outputs import write_csv
from .validate import validate_columns

__all__ = ["Catalog", "elliptical_radius", "format_summary", "read_catalog"]

#: File extensions :func:`read_catalog` knows (the parsers are in :mod:`dsphnf.formats`).
SUFFIXES = (".csv", ".ecsv", ".fits", ".fit", ".dat")


def elliptical_radius(x: np.ndarray, y: np.ndarray, ellipticity: float, position_angle_deg: float) -> np.ndarray:
    """Circularised elliptical radius of points at tangent-plane offsets (x east, y north) [any length unit].

    With the major axis at position angle PA (east of north), the offsets along
    the major and minor axes are x_maj = x sin PA + y cos PA and
    x_min = x cos PA - y sin PA, and

        R_ell = sqrt((1 - e) x_maj^2 + x_min^2 / (1 - e)),

    the geometric mean sqrt(a b) of the semi-axes of the ellipse (axis ratio
    b/a = 1 - e) through the point: the radius of the circle of the same area,
    so that a circularised half-light radius a_h sqrt(1 - e) is the
    half-number radius of R_ell. e = 0 gives sqrt(x^2 + y^2).

    Examples
    --------
    A star 1 unit along a major axis at PA = 90 deg (pointing east) and one 1
    unit along the minor axis, for e = 0.36 (sqrt(1 - e) = 0.8):

    >>> elliptical_radius(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 0.36, 90.0).round(6).tolist()
    [0.8, 1.25]
    """
    if not 0.0 <= ellipticity < 1.0:
        raise CatalogError(f"ellipticity must be in [0, 1), got {ellipticity}")
    pa = np.deg2rad(position_angle_deg)
    x_maj = x * np.sin(pa) + y * np.cos(pa)
    x_min = x * np.cos(pa) - y * np.sin(pa)
    q = 1.0 - ellipticity
    return np.sqrt(q * x_maj**2 + x_min**2 / q)


def _arr(a) -> np.ndarray | None:
    return None if a is None else np.atleast_1d(np.asarray(a, dtype=np.float64))


@dataclass
class Catalog:
    """A star catalogue as seen by an observer looking along z.

    Attributes
    ----------
    x, y : ndarray
        Projected positions [kpc] relative to the galaxy centre.
    vz : ndarray or None
        Line-of-sight velocities [km/s], systemic velocity removed; ``None``
        for a positions-only catalogue.
    vz_err : ndarray or None
        1-sigma velocity errors [km/s].
    p_member : ndarray or None
        Membership probabilities in [0, 1] (used as weights).
    source : str
        Where the stars came from (file name), used in messages.
    meta : dict
        Provenance, e.g. ``distance_kpc``, ``v_sys_removed_kms``.
    """

    x: np.ndarray
    y: np.ndarray
    vz: np.ndarray | None = None
    vz_err: np.ndarray | None = None
    p_member: np.ndarray | None = None
    source: str = "<memory>"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.x, self.y = _arr(self.x), _arr(self.y)
        self.vz, self.vz_err, self.p_member = _arr(self.vz), _arr(self.vz_err), _arr(self.p_member)
        for name in ("y", "vz", "vz_err", "p_member"):
            a = getattr(self, name)
            if a is not None and a.shape != self.x.shape:
                raise CatalogError(f"{self.source}: column {name!r} has {a.size} values, x has {self.x.size}")
        if self.vz_err is not None and self.vz is None:
            raise CatalogError(f"{self.source}: velocity errors given without velocities vz")

    # ------------------------------------------------------------------
    @classmethod
    def from_phase_space(cls, xv: np.ndarray, verr: float | None = None, source: str = "<mock>", **meta) -> "Catalog":
        """Project 6-D stars (x, y, z [kpc], vx, vy, vz [km/s]) along z.

        ``verr`` [km/s], if given, is recorded as every star's ``vz_err`` (the
        velocities are used as they are).
        """
        xv = np.asarray(xv, dtype=np.float64)
        if xv.ndim != 2 or xv.shape[1] != 6:
            raise CatalogError(f"{source}: expected an (n, 6) array of x, y, z, vx, vy, vz, got shape {xv.shape}")
        err = None if verr is None else np.full(len(xv), float(verr))
        return cls(xv[:, 0], xv[:, 1], xv[:, 5], err, None, source, dict(meta))

    @classmethod
    def from_parsed(cls, parsed: Parsed) -> "Catalog":
        """The validated catalogue of a parsed file (:class:`dsphnf.formats.Parsed`).

        Raises :class:`CatalogError` with one line naming the file and the
        (file) row or column, as :meth:`validated` does.

        Examples
        --------
        >>> from dsphnf.formats import walker_columns
        >>> t = np.zeros((30, 25))
        >>> t[:, 2], t[:, 3] = np.linspace(1.0, 20.0, 30), 1.0     # xi, eta [arcmin]
        >>> t[:, 6], t[:, 7], t[:, 15] = np.resize([-280.0, -300.0], 30), 2.0, 1.0
        >>> cat = Catalog.from_parsed(walker_columns(t, distance=76.0, source="toy"))
        >>> cat.n, cat.meta["format"], cat.meta["v_sys_removed_kms"], cat.vz[:2].tolist()
        (30, 'walker', -290.0, [10.0, -10.0])
        """
        return cls(source=parsed.source, meta=dict(parsed.meta), **parsed.columns).validated(parsed.rows)

    @property
    def n(self) -> int:
        """Number of stars (rows)."""
        return int(self.x.size)

    @property
    def R(self) -> np.ndarray:
        """Projected radius sqrt(x^2 + y^2) [kpc]."""
        return np.hypot(self.x, self.y)

    @property
    def weights(self) -> np.ndarray:
        """Membership probabilities, or ones."""
        return self.p_member if self.p_member is not None else np.ones(self.n)

    @property
    def n_eff(self) -> float:
        """Effective number of members, sum of weights."""
        return float(self.weights.sum())

    @property
    def n_kish(self) -> float:
        """Kish's effective sample size (sum w)^2 / sum w^2."""
        return kish_size(self.weights)

    @property
    def has_velocities(self) -> bool:
        """Whether line-of-sight velocities are present."""
        return self.vz is not None

    def columns(self) -> dict[str, np.ndarray]:
        """The present columns in the order x, y[, vz][, vz_err][, p_member]."""
        out = {"x": self.x, "y": self.y}
        for name in ("vz", "vz_err", "p_member"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    def subset(self, mask: np.ndarray) -> "Catalog":
        """The stars selected by a boolean mask or an index array."""
        pick = lambda a: None if a is None else a[mask]
        return replace(
            self, x=self.x[mask], y=self.y[mask], vz=pick(self.vz), vz_err=pick(self.vz_err),
            p_member=pick(self.p_member), meta=dict(self.meta),
        )

    def with_elliptical_radius(self, ellipticity: float, position_angle_deg: float) -> "Catalog":
        """The stars moved radially so that each one's projected radius R is its elliptical radius.

        Every star keeps its position angle on the sky; its distance from the
        centre becomes :func:`elliptical_radius` of (x, y) (x east, y north).
        Methods that see only R (the baseline) then fit the elliptical radii;
        ``meta`` records ``radius = "elliptical"`` with e and PA.
        """
        R = self.R
        R_ell = elliptical_radius(self.x, self.y, ellipticity, position_angle_deg)
        scale = np.divide(R_ell, R, out=np.ones_like(R), where=R > 0)
        out = replace(self, x=self.x * scale, y=self.y * scale, meta=dict(self.meta))
        out.meta.update(radius="elliptical", ellipticity=float(ellipticity),
                        position_angle_deg=float(position_angle_deg))
        return out

    def bootstrap(self, rng: np.random.Generator | int | None = None) -> "Catalog":
        """A resample of n stars drawn with replacement (``rng`` a Generator or seed)."""
        rng = np.random.default_rng(rng)
        out = self.subset(rng.integers(0, self.n, self.n))
        out.meta["bootstrap"] = True
        return out

    def validated(self, rows: np.ndarray | None = None) -> "Catalog":
        """Check the columns (:func:`dsphnf.validate.validate_columns`); return the catalogue itself.

        ``rows`` are the 1-based file rows of the stars, for messages.
        Raises :class:`CatalogError` with one line naming the source and row or column.
        """
        validate_columns(self.columns(), self.source, rows)
        return self

    def to_csv(self, path: str | Path) -> None:
        """Write the catalogue atomically as CSV with header x,y[,vz][,vz_err][,p_member]."""
        write_csv(path, self.columns(), fmt="%.10g")

    def summary(self) -> dict:
        """Counts, half-number radius and velocity moments.

        Returns
        -------
        dict
            ``n`` stars, ``n_eff`` (sum of weights), ``n_kish``, ``R_half``
            [kpc] (:func:`dsphnf.kinematics.half_number_radius`, the weighted
            median R: the flow's length unit); with velocities also ``v_mean``,
            ``v_mean_err``, ``sigma_los``, ``sigma_los_err`` [km/s] from
            :func:`ml_dispersion`.
        """
        w = self.weights
        out = {"n": self.n, "n_eff": self.n_eff, "n_kish": self.n_kish, "R_half": half_number_radius(self.x, self.y, w)}
        if self.vz is not None:
            mu, smu, sig, ssig = ml_dispersion(self.vz, self.vz_err, w)
            out.update(v_mean=mu, v_mean_err=smu, sigma_los=sig, sigma_los_err=ssig)
        return out


def format_summary(cat: Catalog) -> str:
    """The catalogue summary printed by ``dsphnf info`` (and ``dsphnf demo``), one quantity a line.

    Provenance (format, conversion, dropped rows, ignored columns), then the
    numbers of :meth:`Catalog.summary` with units: stars, effective members,
    R_half [kpc] (the flow's length unit), mean v_z and sigma_los [km/s].

    Examples
    --------
    >>> cat = Catalog(np.linspace(0.1, 1.0, 20), np.zeros(20), source="mem")
    >>> print(format_summary(cat).splitlines()[-2])
    R_half           0.5263 kpc (membership-weighted median projected radius; the flow's length unit)
    """
    s = cat.summary()
    m = cat.meta
    lines = [f"catalogue        {cat.source} ({m.get('format', 'unknown format')})"]
    if "distance_kpc" in m:
        lines.append(
            f"conversion       distance {m['distance_kpc']:g} kpc; systemic velocity "
            f"{m['v_sys_removed_kms']:.2f} km/s (membership-weighted mean) removed"
        )
    if m.get("n_dropped_nonmember") or m.get("n_dropped_bad_velocity"):
        lines.append(
            f"dropped          {m.get('n_dropped_nonmember', 0)} of {m.get('n_rows', '?')} rows with membership "
            f"< {m.get('min_member', 0):g}, {m.get('n_dropped_bad_velocity', 0)} with unusable velocities"
        )
    if m.get("ignored_columns"):
        lines.append(f"ignored columns  {', '.join(m['ignored_columns'])}")
    lines.append(f"stars            {s['n']}")
    lines.append(f"members          {s['n_eff']:.1f} effective (sum p_member), Kish {s['n_kish']:.1f}")
    lines.append(f"R_half           {s['R_half']:.4f} kpc (membership-weighted median projected radius; "
                 "the flow's length unit)")
    if cat.has_velocities:
        errs = "velocity errors removed" if cat.vz_err is not None else "no velocity errors given"
        lines.append(f"mean vz          {s['v_mean']:.2f} +- {s['v_mean_err']:.2f} km/s")
        lines.append(f"sigma_los        {s['sigma_los']:.2f} +- {s['sigma_los_err']:.2f} km/s "
                     f"(max. likelihood, {errs})")
    else:
        lines.append("velocities       none (positions only: enough for nu(r), not for the mass)")
    return "\n".join(lines)


# ----------------------------------------------------------------------
# the one file reader
def read_catalog(path: str | Path, distance: float | None = None, require_velocity: bool = False) -> Catalog:
    """Read and validate a star catalogue (format chosen by the extension).

    Parameters
    ----------
    path : str or Path
        ``.csv``, ``.ecsv``, ``.fits``/``.fit`` or ``.dat`` (Gaia Challenge or
        Walker format).
    distance : float, optional
        Heliocentric distance [kpc]; required for Walker-format files (their
        positions are in arcmin), ignored for catalogues already in kpc.
    require_velocity : bool
        Fail if the catalogue has no ``vz`` column.

    Returns
    -------
    Catalog

    Raises
    ------
    CatalogError
        With one line naming the file and row or column.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "stars.csv"
    >>> _ = f.write_text("x,y,vz,vz_err\\n" + "".join(f"{0.01 * i},0.1,{i % 7 - 3},2\\n" for i in range(1, 31)))
    >>> cat = read_catalog(f)
    >>> cat.n, cat.has_velocities, round(float(cat.R.max()), 3)
    (30, True, 0.316)
    >>> read_catalog(f.with_name("missing.csv"))
    Traceback (most recent call last):
    ...
    dsphnf.errors.CatalogError: ...missing.csv: no such file
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise CatalogError(f"{path}: unknown catalogue extension {path.suffix!r}; use one of {', '.join(SUFFIXES)}")
    if not path.exists():
        raise CatalogError(f"{path}: no such file")
    if path.is_dir():
        raise CatalogError(f"{path}: is a folder, not a catalogue file")
    if path.stat().st_size == 0:
        raise CatalogError(f"{path}: file is empty")
    if suffix == ".csv":
        parsed = read_csv(path, require_velocity)
    elif suffix == ".dat":
        parsed = read_dat(path, distance)
    else:
        parsed = read_astropy(path, require_velocity)
    cat = Catalog.from_parsed(parsed)
    if require_velocity and not cat.has_velocities:
        raise CatalogError(f"{path}: no line-of-sight velocities (column vz [km/s]) but this task needs them")
    return cat

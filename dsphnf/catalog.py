"""Star catalogues: projected positions x, y [kpc], line-of-sight velocities vz [km/s].

:func:`read_catalog` dispatches on the file extension:

- ``.csv``: plain CSV with a header naming the columns;
- ``.ecsv``, ``.fits``/``.fit``: astropy tables (columns with units are
  converted to kpc and km/s);
- ``.dat``: either a Gaia Challenge mock (6 columns x y z vx vy vz; observed
  along z, ``*_err.dat`` files carry 2 km/s velocity errors) or a Walker-format
  spectroscopic catalogue of a real dwarf (25 columns; needs the distance).

Column names (case-insensitive; see :data:`dsphnf.validate.COLUMN_ALIASES`):
``x``, ``y`` [kpc], ``vz`` [km/s], optional ``vz_err`` [km/s] and
``p_member`` [0..1].  Positions-only catalogues (no ``vz``) are allowed.
Every reader ends with :meth:`Catalog.validated` (the checks of
:func:`dsphnf.validate.validate_columns`).  :func:`format_summary` is the
catalogue summary printed by ``dsphnf info``.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .constants import ARCMIN_PER_RAD
from .errors import CatalogError
from .kinematics import half_number_radius, kish_size, ml_dispersion, weighted_mean
from .outputs import write_csv
from .validate import resolve_columns, validate_columns

__all__ = [
    "Catalog",
    "format_summary",
    "read_catalog",
    "read_gaia_challenge",
    "read_walker",
    "walker_to_catalog",
    "GAIA_CHALLENGE_VERR",
    "WALKER_MIN_MEMBER",
]

#: Velocity error [km/s] of the Gaia Challenge ``*_err.dat`` files.
GAIA_CHALLENGE_VERR: float = 2.0
#: Walker-format stars below this membership probability are dropped (the files' floor is 1e-10).
WALKER_MIN_MEMBER: float = 1e-3
SUFFIXES = (".csv", ".ecsv", ".fits", ".fit", ".dat")


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
# readers
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
        cat = _read_csv(path, require_velocity)
    elif suffix == ".dat":
        ncol = _dat_columns(path)
        if ncol == 6:
            cat = read_gaia_challenge(path)[0]
        elif ncol == 25:
            cat = read_walker(path, distance)
        else:
            raise CatalogError(
                f"{path}: .dat file has {ncol} columns; expected 6 (Gaia Challenge x y z vx vy vz) "
                "or 25 (Walker spectroscopic catalogue)"
            )
    else:
        cat = _read_astropy(path, require_velocity)
    if require_velocity and not cat.has_velocities:
        raise CatalogError(f"{path}: no line-of-sight velocities (column vz [km/s]) but this task needs them")
    return cat


def _text_lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty, non-comment lines with their 1-based line numbers."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read: {exc}") from None
    out = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if ln.strip() and not ln.lstrip().startswith("#")]
    if not out:
        raise CatalogError(f"{path}: file is empty (no data lines)")
    return out


def _to_float(tok: str, path: Path, row: int, col: str) -> float:
    try:
        return float(tok)
    except ValueError:
        shown = repr(tok.strip()) if tok.strip() else "an empty value"
        raise CatalogError(f"{path}: row {row}, column {col!r}: {shown} is not a number") from None


def _parse_rows(path: Path, rows: list[list[str]], names: list[str], first_row: int = 1) -> np.ndarray:
    out = np.empty((len(rows), len(names)))
    for i, fields in enumerate(rows):
        if len(fields) != len(names):
            raise CatalogError(
                f"{path}: row {first_row + i} has {len(fields)} fields, the header has {len(names)}"
            )
        for j, tok in enumerate(fields):
            out[i, j] = _to_float(tok, path, first_row + i, names[j])
    return out


def _read_csv(path: Path, require_velocity: bool) -> Catalog:
    lines = _text_lines(path)
    reader = list(csv.reader([ln for _, ln in lines]))
    header = [h.strip() for h in reader[0]]
    if all(_is_number(h) for h in header):
        raise CatalogError(f"{path}: first line must be a header naming the columns (x,y,vz), found numbers")
    found = resolve_columns(header, str(path), require_velocity)
    if len(reader) < 2:
        raise CatalogError(f"{path}: header but no data rows")
    data = _parse_rows(path, reader[1:], header)
    cols = {c: data[:, header.index(n)] for c, n in found.items()}
    extra = [h for h in header if h not in found.values()]
    meta = {"format": "csv"} | ({"ignored_columns": extra} if extra else {})
    return Catalog(source=str(path), meta=meta, **cols).validated()


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _read_astropy(path: Path, require_velocity: bool) -> Catalog:
    import astropy.units as u
    from astropy.table import Table

    fmt = "ascii.ecsv" if path.suffix.lower() == ".ecsv" else "fits"
    try:
        table = Table.read(path, format=fmt)
    except Exception as exc:  # astropy raises many types for corrupt files
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CatalogError(f"{path}: cannot read as {fmt.replace('ascii.', '').upper()}: {msg}") from None
    if len(table) == 0:
        raise CatalogError(f"{path}: table has no rows")
    found = resolve_columns(list(table.colnames), str(path), require_velocity)
    target = {"x": u.kpc, "y": u.kpc, "vz": u.km / u.s, "vz_err": u.km / u.s, "p_member": u.dimensionless_unscaled}
    cols = {}
    for canon, name in found.items():
        col = table[name]
        mask = np.ma.getmaskarray(col) if hasattr(col, "mask") else np.zeros(len(col), bool)
        if mask.any():
            raise CatalogError(f"{path}: row {int(np.flatnonzero(mask)[0]) + 1}, column {name!r}: value is missing")
        try:
            vals = np.asarray(col, dtype=np.float64)
        except (ValueError, TypeError):
            for i, tok in enumerate(np.asarray(col)):
                _to_float(str(tok), path, i + 1, name)
            raise CatalogError(f"{path}: column {name!r} is not numeric") from None
        if col.unit is not None and col.unit != u.dimensionless_unscaled:
            try:
                vals = (vals * col.unit).to_value(target[canon])
            except u.UnitConversionError:
                raise CatalogError(
                    f"{path}: column {name!r} has unit {col.unit}, cannot convert to {target[canon]}"
                ) from None
        cols[canon] = vals
    extra = [n for n in table.colnames if n not in found.values()]
    meta = {"format": fmt.replace("ascii.", "")} | ({"ignored_columns": extra} if extra else {})
    return Catalog(source=str(path), meta=meta, **cols).validated()


def _dat_columns(path: Path) -> int:
    return len(_text_lines(path)[0][1].split())


def _read_dat(path: Path, ncol: int, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    lines = _text_lines(path)
    data = np.empty((len(lines), ncol))
    for i, (_, ln) in enumerate(lines):
        fields = ln.split()
        if len(fields) != ncol:
            raise CatalogError(f"{path}: row {i + 1} has {len(fields)} columns, expected {ncol}")
        for j, tok in enumerate(fields):
            data[i, j] = _to_float(tok, path, i + 1, names[j])
    return data, np.arange(1, len(lines) + 1)


def read_gaia_challenge(path: str | Path) -> tuple[Catalog, np.ndarray]:
    """Read a Gaia Challenge mock (6 columns x y z [kpc] vx vy vz [km/s]).

    The observer looks along z: the catalogue keeps x, y and vz.  Files named
    ``*_err.dat`` have 2 km/s Gaussian errors on every velocity, recorded as
    ``vz_err``.

    Returns
    -------
    catalog : Catalog
        The validated projected catalogue.
    xv : ndarray, shape (n, 6)
        The full phase-space coordinates.
    """
    path = Path(path)
    xv, rows = _read_dat(path, 6, ["x", "y", "z", "vx", "vy", "vz"])
    err = GAIA_CHALLENGE_VERR if path.stem.endswith("_err") else None
    cat = Catalog.from_phase_space(xv, err, str(path), format="gaia_challenge", projection="z")
    return cat.validated(rows), xv


#: Walker-format column names (0-based positions) used by the reader.
WALKER_COLUMNS = {"ra": 0, "dec": 1, "xi": 2, "eta": 3, "R_ell": 4, "v": 6, "v_err": 7, "mg": 12, "p_member": 15}


def read_walker(path: str | Path, distance: float | None, min_member: float = WALKER_MIN_MEMBER) -> Catalog:
    """Read a Walker-format 25-column spectroscopic catalogue (see :func:`walker_to_catalog`)."""
    path = Path(path)
    if distance is None:
        raise CatalogError(f"{path}: Walker-format positions are in arcmin; give the distance in kpc (--distance)")
    names = [f"col{j}" for j in range(25)]
    for k, j in WALKER_COLUMNS.items():
        names[j] = k
    data, rows = _read_dat(path, 25, names)
    return walker_to_catalog(data, distance, str(path), min_member, rows)


def walker_to_catalog(
    table: np.ndarray,
    distance: float,
    source: str = "<walker>",
    min_member: float = WALKER_MIN_MEMBER,
    rows: np.ndarray | None = None,
) -> Catalog:
    """Convert a Walker-format table (n, 25) into a validated catalogue.

    Tangent-plane offsets xi, eta [arcmin] (columns 2, 3) become
    x, y = offset * distance / ARCMIN_PER_RAD [kpc]; column 6 is the
    heliocentric velocity, 7 its error [km/s], 15 the membership probability.
    Stars with membership below ``min_member`` are dropped, as are stars with
    unusable velocities (non-finite, error <= 0, or sentinel values
    |v| >= 999 or v = -99).  The membership-weighted mean velocity (the
    systemic velocity) is subtracted and recorded in ``meta``.

    Parameters
    ----------
    table : ndarray, shape (n, 25)
    distance : float
        Heliocentric distance [kpc].
    source : str
        Name used in messages.
    min_member : float
        Membership threshold below which stars are dropped.
    rows : ndarray, optional
        1-based file row of each table row (for messages).
    """
    table = np.asarray(table, dtype=float)
    if not (np.isfinite(distance) and distance > 0):
        raise CatalogError(f"{source}: distance must be a positive number of kpc, got {distance}")
    if table.ndim != 2 or table.shape[1] != 25:
        raise CatalogError(f"{source}: Walker-format table needs 25 columns, got shape {table.shape}")
    rows = np.arange(1, len(table) + 1) if rows is None else np.asarray(rows)
    c = WALKER_COLUMNS
    p = table[:, c["p_member"]]
    i = np.flatnonzero(~np.isfinite(p) | (p < 0) | (p > 1))
    if i.size:
        raise CatalogError(f"{source}: row {rows[i[0]]}, column 15 (membership): {p[i[0]]} is not in [0, 1]")
    v, ev = table[:, c["v"]], table[:, c["v_err"]]
    finite = np.all(np.isfinite(table[:, [c["xi"], c["eta"], c["v"], c["v_err"]]]), axis=1)
    usable = finite & (ev > 0) & (np.abs(v) < 999.0) & (v != -99.0)
    member = p >= min_member
    keep = usable & member
    if not np.any(keep):
        raise CatalogError(f"{source}: no star has membership >= {min_member:g} and a usable velocity")
    scale = distance / ARCMIN_PER_RAD
    w = p[keep]
    v_sys = weighted_mean(v[keep], w)
    meta = {
        "format": "walker",
        "distance_kpc": float(distance),
        "v_sys_removed_kms": v_sys,
        "n_rows": int(len(table)),
        "min_member": float(min_member),
        "n_dropped_nonmember": int(np.count_nonzero(~member)),
        "n_dropped_bad_velocity": int(np.count_nonzero(member & ~usable)),
    }
    cat = Catalog(
        table[keep, c["xi"]] * scale, table[keep, c["eta"]] * scale, v[keep] - v_sys, ev[keep], w, source, meta
    )
    return cat.validated(rows[keep])

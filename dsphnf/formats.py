"""Catalogue file formats: parsers that turn a file into plain columns.

- ``.csv``: plain CSV with a header naming the columns (:func:`read_csv`);
- ``.ecsv``, ``.fits``/``.fit``: astropy tables, columns with units converted
  to kpc and km/s (:func:`read_astropy`);
- ``.dat``: either a Gaia Challenge mock (6 columns x y z vx vy vz; observed
  along z, ``*_err.dat`` files carry 2 km/s velocity errors;
  :func:`read_gaia_challenge`) or a Walker-format spectroscopic catalogue of a
  real dwarf (25 columns, positions in arcmin, needs the distance;
  :func:`read_walker`); :func:`read_dat` tells them apart.

Every parser returns a :class:`Parsed`: the canonical columns ``x``, ``y``
[kpc], ``vz``, ``vz_err`` [km/s], ``p_member`` [0..1] that were found, the
source name, provenance metadata and the 1-based file rows of the stars.  This
module knows nothing of the catalogue type: :func:`dsphnf.catalog.read_catalog`
picks the parser by the file extension and turns its result into a validated
:class:`dsphnf.catalog.Catalog` (:meth:`~dsphnf.catalog.Catalog.from_parsed`),
so ``dsphnf.catalog`` imports this module and never the other way round.
Every failure raises :class:`dsphnf.errors.CatalogError` with one line naming
the file and the row or column.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .constants import ARCMIN_PER_RAD
from .errors import CatalogError
from .kinematics import weighted_mean
from .validate import resolve_columns

__all__ = [
    "Parsed",
    "read_csv",
    "read_astropy",
    "read_dat",
    "read_gaia_challenge",
    "read_walker",
    "walker_columns",
    "GAIA_CHALLENGE_VERR",
    "WALKER_MIN_MEMBER",
    "WALKER_COLUMNS",
]

#: Velocity error [km/s] of the Gaia Challenge ``*_err.dat`` files.
GAIA_CHALLENGE_VERR: float = 2.0
#: Walker-format stars below this membership probability are dropped (the files' floor is 1e-10).
WALKER_MIN_MEMBER: float = 1e-3
#: Walker-format column names (0-based positions) used by the reader.
WALKER_COLUMNS = {"ra": 0, "dec": 1, "xi": 2, "eta": 3, "R_ell": 4, "v": 6, "v_err": 7, "mg": 12, "p_member": 15}


@dataclass(frozen=True)
class Parsed:
    """What a parser read from a file, before it becomes a catalogue.

    Attributes
    ----------
    columns : dict of str to ndarray
        The canonical columns found: ``x``, ``y`` [kpc] and optionally
        ``vz``, ``vz_err`` [km/s] and ``p_member`` [0..1].
    source : str
        The file name, used in messages.
    meta : dict
        Provenance: ``format`` and format-specific entries (e.g.
        ``ignored_columns``, ``distance_kpc``, ``v_sys_removed_kms``).
    rows : ndarray or None
        1-based file rows of the stars (None: rows 1..n), for messages.
    """

    columns: dict[str, np.ndarray]
    source: str
    meta: dict = field(default_factory=dict)
    rows: np.ndarray | None = None


# ----------------------------------------------------------------------
# text helpers
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


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


# ----------------------------------------------------------------------
# CSV and astropy tables
def read_csv(path: str | Path, require_velocity: bool = False) -> Parsed:
    """Parse a CSV catalogue whose first line names the columns.

    Column names are resolved by :func:`dsphnf.validate.resolve_columns`;
    other columns are listed in ``meta["ignored_columns"]``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
    >>> _ = f.write_text("X,y_kpc,vz,id\\n0.1,0.2,3\\n0.3,0.4,-3,2\\n")
    >>> read_csv(f)
    Traceback (most recent call last):
    ...
    dsphnf.errors.CatalogError: ...s.csv: row 1 has 3 fields, the header has 4
    >>> _ = f.write_text("X,y_kpc,vz,id\\n0.1,0.2,3,1\\n0.3,0.4,-3,2\\n")
    >>> p = read_csv(f)
    >>> sorted(p.columns), p.columns["vz"].tolist(), p.meta
    (['vz', 'x', 'y'], [3.0, -3.0], {'format': 'csv', 'ignored_columns': ['id']})
    """
    path = Path(path)
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
    return Parsed(cols, str(path), meta)


def read_astropy(path: str | Path, require_velocity: bool = False) -> Parsed:
    """Parse an ECSV (``.ecsv``) or FITS (``.fits``/``.fit``) table with astropy.

    Columns with units are converted to kpc (x, y) and km/s (vz, vz_err);
    masked values and non-numeric columns are refused naming row and column.
    """
    import astropy.units as u
    from astropy.table import Table

    path = Path(path)
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
    return Parsed(cols, str(path), meta)


# ----------------------------------------------------------------------
# whitespace-separated .dat files
def read_dat(path: str | Path, distance: float | None = None) -> Parsed:
    """Parse a ``.dat`` file: 6 columns are a Gaia Challenge mock, 25 a Walker-format catalogue.

    ``distance`` [kpc] is needed for (and only used by) the Walker format.
    """
    path = Path(path)
    ncol = len(_text_lines(path)[0][1].split())
    if ncol == 6:
        return read_gaia_challenge(path)[0]
    if ncol == 25:
        return read_walker(path, distance)
    raise CatalogError(
        f"{path}: .dat file has {ncol} columns; expected 6 (Gaia Challenge x y z vx vy vz) "
        "or 25 (Walker spectroscopic catalogue)"
    )


def _dat_table(path: Path, ncol: int, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The (n, ncol) numbers of a whitespace-separated file and their 1-based data rows."""
    lines = _text_lines(path)
    data = np.empty((len(lines), ncol))
    for i, (_, ln) in enumerate(lines):
        fields = ln.split()
        if len(fields) != ncol:
            raise CatalogError(f"{path}: row {i + 1} has {len(fields)} columns, expected {ncol}")
        for j, tok in enumerate(fields):
            data[i, j] = _to_float(tok, path, i + 1, names[j])
    return data, np.arange(1, len(lines) + 1)


def read_gaia_challenge(path: str | Path) -> tuple[Parsed, np.ndarray]:
    """Parse a Gaia Challenge mock (6 columns x y z [kpc] vx vy vz [km/s]).

    The observer looks along z: the columns are x, y and vz.  Files named
    ``*_err.dat`` have 2 km/s (:data:`GAIA_CHALLENGE_VERR`) Gaussian errors
    on every velocity, recorded as ``vz_err``.

    Returns
    -------
    parsed : Parsed
        The projected columns (``meta``: format ``gaia_challenge``, projection ``z``).
    xv : ndarray, shape (n, 6)
        The full phase-space coordinates.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "mock_err.dat"
    >>> _ = f.write_text("0.1 0.2 0.3 1 2 3\\n0.4 0.5 0.6 4 5 6\\n")
    >>> p, xv = read_gaia_challenge(f)
    >>> xv.shape, p.columns["vz"].tolist(), p.columns["vz_err"].tolist(), p.meta["format"]
    ((2, 6), [3.0, 6.0], [2.0, 2.0], 'gaia_challenge')
    """
    path = Path(path)
    xv, rows = _dat_table(path, 6, ["x", "y", "z", "vx", "vy", "vz"])
    cols = {"x": xv[:, 0], "y": xv[:, 1], "vz": xv[:, 5]}
    if path.stem.endswith("_err"):
        cols["vz_err"] = np.full(len(xv), GAIA_CHALLENGE_VERR)
    return Parsed(cols, str(path), {"format": "gaia_challenge", "projection": "z"}, rows), xv


def read_walker(path: str | Path, distance: float | None, min_member: float = WALKER_MIN_MEMBER) -> Parsed:
    """Parse a Walker-format 25-column spectroscopic catalogue (see :func:`walker_columns`).

    ``distance`` [kpc] converts the positions from arcmin; without it the
    file is refused.
    """
    path = Path(path)
    if distance is None:
        raise CatalogError(f"{path}: Walker-format positions are in arcmin; give the distance in kpc (--distance)")
    names = [f"col{j}" for j in range(25)]
    for k, j in WALKER_COLUMNS.items():
        names[j] = k
    data, rows = _dat_table(path, 25, names)
    return walker_columns(data, distance, str(path), min_member, rows)


def walker_columns(
    table: np.ndarray,
    distance: float,
    source: str = "<walker>",
    min_member: float = WALKER_MIN_MEMBER,
    rows: np.ndarray | None = None,
) -> Parsed:
    """Convert a Walker-format table (n, 25) into catalogue columns.

    Tangent-plane offsets xi, eta [arcmin] (columns 2, 3) become
    x, y = offset * distance / ARCMIN_PER_RAD [kpc]; column 6 is the
    heliocentric velocity, 7 its error [km/s], 15 the membership probability.
    Stars with membership below ``min_member`` are dropped, as are stars with
    unusable velocities (non-finite, error <= 0, or sentinel values
    |v| >= 999 or v = -99); both are counted in ``meta``.  The
    membership-weighted mean velocity (the systemic velocity) is subtracted
    and recorded in ``meta``.

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

    Examples
    --------
    >>> t = np.zeros((4, 25))
    >>> t[:, 2] = [1.0, 2.0, 3.0, 4.0]                    # xi [arcmin]
    >>> t[:, 6], t[:, 7] = [-290.0, -292.0, 999.0, -291.0], 1.0
    >>> t[:, 15] = [1.0, 1.0, 1.0, 1e-6]                   # membership
    >>> p = walker_columns(t, distance=76.0, source="toy")
    >>> p.columns["vz"].tolist(), p.rows.tolist(), p.meta["v_sys_removed_kms"]
    ([1.0, -1.0], [1, 2], -291.0)
    >>> p.meta["n_dropped_nonmember"], p.meta["n_dropped_bad_velocity"], round(float(p.columns["x"][1]), 5)
    (1, 1, 0.04422)
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
    cols = {"x": table[keep, c["xi"]] * scale, "y": table[keep, c["eta"]] * scale,
            "vz": v[keep] - v_sys, "vz_err": ev[keep], "p_member": w}
    return Parsed(cols, source, meta, rows[keep])

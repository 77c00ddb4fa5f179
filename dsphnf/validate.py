"""Validation of star-catalogue columns and resolution of their names.

Works on plain arrays (x, y, vz, vz_err, p_member) and knows nothing of the
catalogue type, so that :mod:`dsphnf.catalog` imports this module and not the
other way round.  Every file read by :func:`dsphnf.catalog.read_catalog`
(parsed by :mod:`dsphnf.formats`) becomes a catalogue through
:meth:`dsphnf.catalog.Catalog.from_parsed`, which ends with
:meth:`dsphnf.catalog.Catalog.validated` and so :func:`validate_columns`,
so that all formats obey the same rules.  Each failure raises
:class:`dsphnf.errors.CatalogError` with ONE line that names the file and the
offending row (1-based data row) or column.

Units: positions x, y in kpc, velocities vz and their errors in km/s.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from .errors import CatalogError
from .kinematics import weighted_mean_std

__all__ = [
    "MIN_STARS",
    "MAX_MEDIAN_R_KPC",
    "SYSTEMIC_MAX_KMS",
    "SYSTEMIC_MAX_SIGMAS",
    "COLUMN_ALIASES",
    "resolve_columns",
    "validate_columns",
]

#: Fewer stars (with non-zero membership) than this cannot constrain a profile.
MIN_STARS: int = 20
#: A median projected radius above this [kpc] means x, y are not in kpc.
MAX_MEDIAN_R_KPC: float = 30.0
#: |weighted mean vz| above this [km/s] means the systemic velocity was not removed.
SYSTEMIC_MAX_KMS: float = 50.0
#: ... or above this many times the weighted velocity dispersion.
SYSTEMIC_MAX_SIGMAS: float = 3.0

#: Canonical column -> accepted spellings (compared case-insensitively).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "x": ("x", "x_kpc"),
    "y": ("y", "y_kpc"),
    "vz": ("vz", "v_z", "vz_kms", "vlos", "v_los"),
    "vz_err": ("vz_err", "vz_error", "err_vz", "e_vz", "evz", "vlos_err", "v_los_err", "verr"),
    "p_member": ("p_member", "pmember", "p_mem", "pmem", "membership", "mem_prob"),
}

EXPECTED = "expected x, y [kpc] and vz [km/s], optional vz_err [km/s] and p_member [0..1]"


def resolve_columns(names: Sequence[str], source: str, require_velocity: bool = False) -> dict[str, str]:
    """Map canonical column names to the names found in a table header.

    Parameters
    ----------
    names : sequence of str
        Column names as found in the file.
    source : str
        File name used in error messages.
    require_velocity : bool
        Whether a ``vz`` column must be present (otherwise a positions-only
        catalogue is accepted).

    Returns
    -------
    dict
        ``{canonical: found_name}`` for every recognised column.

    Raises
    ------
    CatalogError
        A required column is missing, or two columns map to the same quantity.
    """
    found: dict[str, str] = {}
    for canon, aliases in COLUMN_ALIASES.items():
        hits = [n for n in names if n.strip().lower() in aliases]
        if len(hits) > 1:
            raise CatalogError(
                f"{source}: columns {', '.join(repr(h) for h in hits)} all look like {canon!r}; keep only one"
            )
        if hits:
            found[canon] = hits[0]
    required = ["x", "y"] + (["vz"] if require_velocity else [])
    if "vz_err" in found and "vz" not in found:
        required.append("vz")
    missing = [c for c in required if c not in found]
    if missing:
        shown = ", ".join(repr(n) for n in names) if names else "none"
        raise CatalogError(
            f"{source}: missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (found: {shown}); {EXPECTED}"
        )
    return found


def _row(rows: np.ndarray | None, i: int) -> int:
    return int(rows[i]) if rows is not None else i + 1


def _first_bad(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


Columns = Mapping[str, "np.ndarray | None"]


def validate_columns(columns: Columns, source: str, rows: Iterable[int] | None = None) -> None:
    """Check catalogue columns; raise :class:`CatalogError` with one line on failure.

    Checks, in order: finite values in every column, non-negative velocity
    errors, membership probabilities in [0, 1], at least :data:`MIN_STARS`
    stars with non-zero membership, plausible kpc positions, no duplicated
    stars (identical x, y and vz), and a removed systemic velocity
    (|weighted mean vz| <= 50 km/s and <= 3 weighted dispersions).

    Parameters
    ----------
    columns : mapping
        ``x``, ``y`` [kpc] and optionally ``vz``, ``vz_err`` [km/s] and
        ``p_member`` [0..1] (absent or None: not given), equal lengths.
    source : str
        File name used in messages.
    rows : iterable of int, optional
        1-based data-row numbers of the stars in the file (default 1..n), used
        in messages when a reader dropped rows before validating.

    Examples
    --------
    >>> x = np.linspace(0.01, 0.5, 30)
    >>> validate_columns({"x": x, "y": x[::-1], "vz": np.resize([-5.0, 5.0], 30)}, "mem")
    >>> validate_columns({"x": x[:5], "y": x[:5]}, "mem")
    Traceback (most recent call last):
    ...
    dsphnf.errors.CatalogError: mem: only 5 stars; at least 20 are needed
    """
    cols = {k: (None if columns.get(k) is None else np.asarray(columns[k], dtype=float))
            for k in ("x", "y", "vz", "vz_err", "p_member")}
    rows_arr = None if rows is None else np.asarray(list(rows), dtype=int)
    _check_values(cols, source, rows_arr)
    n = cols["x"].size
    w = cols["p_member"] if cols["p_member"] is not None else np.ones(n)
    n_pos = int(np.count_nonzero(w > 0))
    if n_pos < MIN_STARS:
        extra = f" with non-zero membership (of {n} rows)" if n_pos != n else ""
        raise CatalogError(f"{source}: only {n_pos} stars{extra}; at least {MIN_STARS} are needed")
    med_r = float(np.median(np.hypot(cols["x"], cols["y"])[w > 0]))
    if med_r > MAX_MEDIAN_R_KPC:
        raise CatalogError(
            f"{source}: median projected radius {med_r:.4g} kpc is implausible for a dwarf galaxy; "
            "x, y must be in kpc (convert angles with the distance)"
        )
    _check_duplicates(cols, source, rows_arr)
    if cols["vz"] is not None:
        m, s = weighted_mean_std(cols["vz"][w > 0], w[w > 0])
        if abs(m) > SYSTEMIC_MAX_KMS or abs(m) > SYSTEMIC_MAX_SIGMAS * s:
            raise CatalogError(
                f"{source}: column 'vz': weighted mean {m:.4g} km/s vs dispersion {s:.4g} km/s looks like the "
                f"systemic velocity was not removed; subtract it (vz - ({m:.4g})) before fitting"
            )


def _check_values(cols: dict, src: str, rows: np.ndarray | None) -> None:
    """Finite values, non-negative velocity errors, memberships in [0, 1]."""
    for name, arr in cols.items():
        if arr is None:
            continue
        i = _first_bad(~np.isfinite(arr))
        if i is not None:
            raise CatalogError(f"{src}: row {_row(rows, i)}, column {name!r}: value {arr[i]} is not finite")
    if cols["vz_err"] is not None:
        i = _first_bad(cols["vz_err"] < 0)
        if i is not None:
            raise CatalogError(
                f"{src}: row {_row(rows, i)}, column 'vz_err': negative velocity error {cols['vz_err'][i]:g} km/s"
            )
    if cols["p_member"] is not None:
        p = cols["p_member"]
        i = _first_bad((p < 0) | (p > 1))
        if i is not None:
            raise CatalogError(f"{src}: row {_row(rows, i)}, column 'p_member': membership {p[i]:g} is outside [0, 1]")


def _check_duplicates(cols: dict, src: str, rows: np.ndarray | None) -> None:
    has_v = cols["vz"] is not None
    key = np.column_stack([cols["x"], cols["y"]] + ([cols["vz"]] if has_v else []))
    _, first, inverse, counts = np.unique(key, axis=0, return_index=True, return_inverse=True, return_counts=True)
    inverse = np.ravel(inverse)
    dup = np.flatnonzero(counts[inverse] > 1)
    if dup.size:
        # first occurrence of a duplicated group, and the next star in it
        i = int(first[inverse[dup[0]]])
        j = int(next(k for k in dup if inverse[k] == inverse[i] and k != i))
        what = "x, y, vz" if has_v else "x, y"
        raise CatalogError(
            f"{src}: rows {_row(rows, i)} and {_row(rows, j)} are the same star (identical {what}); "
            f"{dup.size - np.count_nonzero(counts > 1)} duplicate rows in all, remove them"
        )

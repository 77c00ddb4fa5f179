"""The survey table: its columns and units, written as ECSV (astropy, units in the header) and CSV.

:data:`COLUMNS` is the one list of columns, in order, with units as astropy
spells them; ``survey.ecsv`` carries them in its header (read it back with
``astropy.table.Table.read(path)`` or :func:`read_table`), ``survey.csv`` has
the same columns without units.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..outputs import atomic_file
from .quantities import QUANTITIES

__all__ = ["COLUMNS", "write_table", "read_table"]


def _banded(name: str, unit: str, what: str) -> list[tuple[str, str, str]]:
    return [(name, unit, f"{what} (baseline: posterior median; flow: ensemble centre)"),
            (name + "_lo", unit, f"{what}, lower 68 % limit (baseline: 16th percentile; flow: Student-t bootstrap)"),
            (name + "_hi", unit, f"{what}, upper 68 % limit (baseline: 84th percentile; flow: Student-t bootstrap)")]


_WHAT = {"rho150": "dark-matter density at r = 150 pc", "slope150": "d ln rho / d ln r at 150 pc",
         "M_half": "mass inside the circularised half-light radius", "beta_half": "anisotropy at R_half",
         "log10_J05": "log10 J(0.5 deg)", "log10_Jmax": "log10 J within theta_max_deg (only when < 0.5 deg)"}

#: (name, unit, description) of every column of survey.ecsv / survey.csv, in order.
COLUMNS: list[tuple[str, str, str]] = [
    ("galaxy", "", "galaxy key (dsphnf.galaxies)"),
    ("method", "", "flow or baseline"),
    ("anisotropy", "", "beta(r) of the fit (dsphnf.anisotropy grammar)"),
    ("distance_kpc", "kpc", "distance (McConnachie 2012)"),
    ("distance_err_kpc", "kpc", "1-sigma distance error"),
    ("R_half_kpc", "kpc", "circularised projected half-light radius"),
    ("n_stars", "", "stars fitted"),
    ("n_members", "", "effective members (sum of weights, or (1 - f_fg) n_stars with a mixture)"),
    *[c for key, unit in QUANTITIES.items() for c in _banded(key, unit, _WHAT[key])],
    ("n_j_left_out", "", "posterior draws whose J diverges, or flow members whose density is not positive (left out of the J band)"),
    ("theta_max_deg", "deg", "angle of the largest projected radius of the stars fitted"),
    ("j_beyond_data", "", "True when theta_max_deg < 0.5: J(0.5 deg) reaches beyond the stars (the baseline "
                          "extends its halo, the flow continues its density with its outer slope, no shallower "
                          "than r^-2)"),
    *_banded("f_fg", "", "foreground fraction of the mixture (NaN without)"),
    ("converged", "", "baseline: emcee chain longer than 50 autocorrelation times; flow: every member met its "
                       "L-BFGS stop rule"),
    ("fit_note", "", "sampler or training length"),
    ("wall_s", "s", "wall time of the fit, reading included"),
]


def _cell(row: Mapping[str, Any], name: str) -> Any:
    v = row.get(name, float("nan"))
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and name not in ("n_stars",
                                                                                                  "n_j_left_out") else v


def write_table(rows: Sequence[Mapping[str, Any]], folder: str | Path, meta: Mapping[str, Any] | None = None) -> None:
    """Write ``survey.ecsv`` (astropy ECSV 1.0, units and descriptions in the header) and ``survey.csv``."""
    from astropy.table import Table

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = [c[0] for c in COLUMNS]
    data = {n: [_cell(r, n) for r in rows] for n in names}
    table = Table(data, names=names, meta=dict(meta or {}))
    for name, unit, text in COLUMNS:
        table[name].unit = unit or None
        table[name].description = text
    with atomic_file(folder / "survey.ecsv") as fh:
        table.write(fh, format="ascii.ecsv")
    with atomic_file(folder / "survey.csv") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for r in rows:
            w.writerow([_fmt(_cell(r, n)) for n in names])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def read_table(folder: str | Path):
    """``survey.ecsv`` of a survey folder as an astropy Table (with units)."""
    from astropy.table import Table

    return Table.read(Path(folder) / "survey.ecsv", format="ascii.ecsv")

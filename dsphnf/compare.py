"""Compare fitted profiles (``dsphnf fit`` / ``dsphnf baseline`` results) with each other and the truth.

A run is a :class:`dsphnf.result.Result` (as returned by ``fit_flow`` /
``fit_baseline``), a plain profile mapping, or a result folder, read with
:func:`dsphnf.result.load_result` whichever method wrote it.  Profiles have
columns r [kpc], rho [Msun/kpc^3] and M [Msun], with 68 % (``_lo``/``_hi``)
and 95 % (``_lo95``/``_hi95``) bands where the method gives them.  The truth
is a mapping or CSV as written by ``dsphnf mock --truth`` (columns r, nu,
sigma_r, beta, M, rho).

:func:`compare` tabulates, at chosen radii, log10(rho / rho_true)
and whether the truth lies inside the 68% and 95% bands (profiles are
interpolated linearly in log r - log rho); :func:`plot_comparison` overlays
the rho and M bands (:func:`dsphnf.plotting.plot_band`).
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import DsphnfError
from .result import Result, load_result

__all__ = ["DEFAULT_RADII", "read_run", "load_runs", "read_truth", "parse_radii", "compare",
           "loginterp", "format_table", "plot_comparison"]

#: Radii [kpc] of the Gaia Challenge benchmark table.
DEFAULT_RADII = (0.1, 0.15, 0.25, 0.5, 1.0)

#: Columns every compared profile needs (bands are optional: NaN when absent).
PROFILE_REQUIRED = ("r", "rho", "M")
TRUTH_REQUIRED = ("r", "rho")
BAND_KEYS = ("rho", "rho_lo", "rho_hi", "rho_lo95", "rho_hi95", "M")

Run = Any  # a Result, a profile mapping, or a result folder


def _check_r(r: np.ndarray, where: str) -> None:
    if not (np.all(np.isfinite(r)) and np.all(r > 0) and np.all(np.diff(r) > 0)):
        raise DsphnfError(f"{where}: column r must be positive and increasing [kpc]")


def _read_columns(path: Path, required: Sequence[str], what: str) -> dict[str, np.ndarray]:
    try:
        with open(path, newline="") as fh:
            rows = [row for row in csv.reader(fh) if row and not row[0].lstrip().startswith("#")]
    except (OSError, UnicodeDecodeError) as exc:
        raise DsphnfError(f"{path}: cannot read {what}: {exc.__class__.__name__}") from None
    if len(rows) < 3:
        raise DsphnfError(f"{path}: {what} needs a header and at least two rows")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in required if c not in header]
    if missing:
        raise DsphnfError(f"{path}: {what} lacks column(s) {', '.join(missing)} (has {', '.join(header)})")
    try:
        data = np.array([[float(x) for x in row] for row in rows[1:]], dtype=float)
    except ValueError:
        raise DsphnfError(f"{path}: {what} has a non-numeric value") from None
    if data.ndim != 2 or data.shape[1] != len(header):
        raise DsphnfError(f"{path}: {what} rows do not match the header's {len(header)} columns")
    out = {h: data[:, i] for i, h in enumerate(header)}
    _check_r(out["r"], str(path))
    return out


def _checked(profile: Mapping[str, np.ndarray], where: str) -> Mapping[str, np.ndarray]:
    """The profile, after checking it has r, rho and M (one-line DsphnfError otherwise)."""
    missing = [c for c in PROFILE_REQUIRED if c not in profile]
    if missing:
        raise DsphnfError(f"{where}: profile lacks {', '.join(missing)} (a positions-only fit has no mass "
                          "profile to compare)")
    _check_r(np.asarray(profile["r"], dtype=float), where)
    return profile


def read_run(folder: str | os.PathLike) -> Result:
    """Read a result folder of ``dsphnf fit`` or ``dsphnf baseline`` (:func:`dsphnf.result.load_result`).

    Raises
    ------
    DsphnfError
        One line naming the folder: missing, not a result folder, or without
        r, rho and M columns.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DsphnfError(f"{folder}: no such output folder")
    if not folder.is_dir():
        raise DsphnfError(f"{folder}: not a folder; give the output folder of dsphnf fit or dsphnf baseline")
    result = load_result(folder)
    _checked(result.profile, str(folder))
    return result


def load_runs(folders: Iterable[str | os.PathLike]) -> dict[str, Result]:
    """Read result folders, labelled by folder name (repeated names get primes)."""
    out: dict[str, Result] = {}
    for folder in folders:
        label = Path(folder).name or str(folder)
        while label in out:
            label += "'"
        out[label] = read_run(folder)
    return out


def read_truth(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a truth CSV (at least r [kpc] and rho [Msun/kpc^3]; M [Msun] optional)."""
    path = Path(path)
    if not path.is_file():
        raise DsphnfError(f"{path}: no such truth file")
    t = _read_columns(path, TRUTH_REQUIRED, "truth file")
    if not np.all(t["rho"] > 0):
        raise DsphnfError(f"{path}: truth rho must be > 0 Msun/kpc^3")
    return t


def parse_radii(text: str) -> np.ndarray:
    """Parse ``0.1,0.15,0.25`` into radii [kpc] (positive, finite)."""
    try:
        r = np.array([float(x) for x in str(text).split(",") if x.strip()], dtype=float)
    except ValueError:
        raise DsphnfError(f"bad --radii {text!r}: give comma-separated radii in kpc, e.g. 0.1,0.25,1") from None
    if r.size == 0 or not np.all(np.isfinite(r)) or not np.all(r > 0):
        raise DsphnfError(f"bad --radii {text!r}: give comma-separated positive radii in kpc, e.g. 0.1,0.25,1")
    return r


def loginterp(r: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """y(x) read at r, linear in ln x and ln y: how profiles are compared at given radii.

    Parameters
    ----------
    r, x : ndarray
        Radii to read at and the table's radii (increasing), in the same unit (kpc).
    y : ndarray
        The table's values at ``x`` (rho in Msun/kpc^3, M in Msun, ...).

    Returns
    -------
    ndarray
        y at ``r``; NaN outside [x[0], x[-1]] or next to a node where y <= 0.

    >>> loginterp(np.array([2.0, 8.0]), np.array([1.0, 4.0]), np.array([1.0, 1e-2])).round(6).tolist()
    [0.1, nan]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ly = np.where(y > 0, np.log(np.where(y > 0, y, 1.0)), np.nan)
        out = np.exp(np.interp(np.log(r), np.log(x), ly, left=np.nan, right=np.nan))
    return out


def _profile(run: Run, label: str) -> Mapping[str, np.ndarray]:
    """The profile columns of a Result (anything with ``.profile``), a mapping or a result folder."""
    if hasattr(run, "profile"):
        return _checked(run.profile, label)
    if isinstance(run, Mapping):
        return _checked(run, label)
    return read_run(run).profile


def _as_profiles(runs) -> dict[str, Mapping[str, np.ndarray]]:
    """Label -> profile for a mapping of runs, or a sequence of result folders."""
    if isinstance(runs, Mapping):
        return {str(k): _profile(v, str(k)) for k, v in runs.items()}
    return {label: r.profile for label, r in load_runs(runs).items()}


def compare(runs, truth: Mapping[str, np.ndarray] | str | Path | None = None,
                     radii: Sequence[float] = DEFAULT_RADII) -> list[dict]:
    """Table of each run's rho at ``radii`` [kpc] against the truth.

    Parameters
    ----------
    runs : mapping label -> run, or sequence of result folders
        A run is a :class:`dsphnf.result.Result`, a profile mapping (``r``,
        ``rho``, ``M`` and any bands) or a result folder.
    truth : mapping, path or None
        Truth columns (r, rho[, M]) or a truth CSV path.
    radii : sequence of float
        Radii [kpc].

    Returns
    -------
    list of dict
        One row per (run, radius): ``run``, ``r`` [kpc], ``rho``, ``rho_lo``,
        ``rho_hi``, ``rho_lo95``, ``rho_hi95`` [Msun/kpc^3]; with a truth also
        ``rho_true``, ``log10_err`` = log10(rho / rho_true), ``in68``,
        ``in95`` (booleans) and ``M``, ``M_true`` [Msun] where available.
        Radii outside a run's grid give NaN and ``in68 = in95 = None``, as
        does a band the run does not have.

    Examples
    --------
    >>> import numpy as np
    >>> r = np.geomspace(0.05, 2.0, 20)
    >>> truth = {"r": r, "rho": 1e8 / r}
    >>> run = {"r": r, "rho": 1.1e8 / r, "rho_lo": 0.9e8 / r, "rho_hi": 1.3e8 / r, "M": r}
    >>> row = compare({"fit": run}, truth=truth, radii=[0.5])[0]
    >>> round(row["log10_err"], 3), row["in68"]
    (0.041, True)
    """
    profiles = _as_profiles(runs)
    if isinstance(truth, (str, Path)):
        truth = read_truth(truth)
    radii = np.asarray(radii, dtype=float)
    rows = []
    for label, p in profiles.items():
        vals = {k: loginterp(radii, p["r"], p[k]) if k in p else np.full(radii.size, np.nan) for k in BAND_KEYS}
        if truth is not None:
            rt = loginterp(radii, truth["r"], truth["rho"])
            mt = loginterp(radii, truth["r"], truth["M"]) if "M" in truth else np.full(radii.size, np.nan)
        for i, r in enumerate(radii):
            row = {"run": label, "r": float(r), **{k: float(v[i]) for k, v in vals.items()}}
            if truth is not None:
                t = float(rt[i])
                row["rho_true"] = t
                row["M_true"] = float(mt[i])
                ok = math.isfinite(t) and math.isfinite(row["rho"])
                row["log10_err"] = math.log10(row["rho"] / t) if ok else float("nan")
                row["in68"] = _inside(t, row["rho_lo"], row["rho_hi"]) if ok else None
                row["in95"] = _inside(t, row["rho_lo95"], row["rho_hi95"]) if ok else None
            rows.append(row)
    return rows


def _inside(value: float, lo: float, hi: float) -> bool | None:
    """Whether lo <= value <= hi; None when the band is missing (NaN)."""
    return bool(lo <= value <= hi) if math.isfinite(lo) and math.isfinite(hi) else None


def format_table(rows: list[dict]) -> str:
    """Plain-text table of :func:`compare` rows (one block per run)."""
    has_truth = bool(rows) and "rho_true" in rows[0]
    head = f"{'run':<20s} {'r[kpc]':>7s} {'rho':>10s} {'68% band':>23s}"
    if has_truth:
        head += f" {'rho_true':>10s} {'log10 err':>9s} {'in68':>5s} {'in95':>5s}"
    lines = [head, "-" * len(head)]
    yn = lambda b: "-" if b is None else ("yes" if b else "no")
    for row in rows:
        s = (f"{row['run'][:20]:<20s} {row['r']:7.3g} {row['rho']:10.3e} "
             f"[{row['rho_lo']:10.3e},{row['rho_hi']:10.3e}]")
        if has_truth:
            s += f" {row['rho_true']:10.3e} {row['log10_err']:+9.3f} {yn(row['in68']):>5s} {yn(row['in95']):>5s}"
        lines.append(s)
    if has_truth:
        for label in dict.fromkeys(r["run"] for r in rows):
            sub = [r for r in rows if r["run"] == label and math.isfinite(r["log10_err"])]
            if sub:
                cover = {b: [r[b] for r in sub if r[b] is not None] for b in ("in68", "in95")}
                rms = math.sqrt(sum(r["log10_err"] ** 2 for r in sub) / len(sub))
                if cover["in68"] or cover["in95"]:
                    where = (f"truth inside 68% band at {sum(cover['in68'])}/{len(cover['in68'])} radii, "
                             f"inside 95% at {sum(cover['in95'])}/{len(cover['in95'])}")
                else:
                    where = "no bands (a single fit: use an ensemble of 2 or more for bands)"
                lines.append(f"{label}: {where}; rms log10 error {rms:.3f}")
    return "\n".join(lines)


def plot_comparison(runs, truth: Mapping[str, np.ndarray] | str | Path | None = None,
                    path: str | Path | None = None, radii: Sequence[float] | None = None):
    """Overlay rho(r) and M(<r) of each run with their bands (:func:`dsphnf.plotting.plot_band`) and the truth.

    Parameters
    ----------
    runs : mapping label -> run, or sequence of result folders
        As in :func:`compare`.
    truth : mapping, path or None
        Truth columns (r, rho[, M]) or a truth CSV path, drawn dashed.
    path : str or Path, optional
        Image to write atomically (format from the extension).
    radii : sequence of float, optional
        Radii [kpc] of the table, marked by thin vertical lines.

    Returns
    -------
    matplotlib Figure
    """
    from .plotting import plot_band, save_figure
    from .style import figure

    profiles = _as_profiles(runs)
    if isinstance(truth, (str, Path)):
        truth = read_truth(truth)
    fig, (a, b) = figure(2, height=3.6)
    for i, (label, p) in enumerate(profiles.items()):
        shown = truth if i == len(profiles) - 1 else None  # the truth once, on top
        plot_band(a, p, "rho", label=label, color=f"C{i}", truth=shown, band_labels=False)
        plot_band(b, p, "M", label=label, color=f"C{i}", truth=shown, band_labels=False)
    b.get_legend().remove()  # one legend (on the rho panel) for both panels
    a.legend(title="shading: 68 % and 95 % bands", frameon=False)
    for r in radii if radii is not None else ():
        a.axvline(r, color="0.7", lw=0.6, zorder=0)
    lo = min(p["r"][0] for p in profiles.values())
    hi = max(p["r"][-1] for p in profiles.values())
    for ax in (a, b):
        ax.set_xlim(lo, hi)
    if truth is not None:  # the truth's range, widened to every drawn rho
        shown = [np.asarray(truth["rho"])[(truth["r"] >= lo) & (truth["r"] <= hi)]]
        shown += [np.asarray(p[k]) for p in profiles.values() for k in ("rho", "rho_lo95", "rho_hi95") if k in p]
        v = np.concatenate(shown)
        v = v[np.isfinite(v) & (v > 0)]
        if v.size:
            a.set_ylim(0.5 * v.min(), 2.0 * v.max())
    if path is not None:
        save_figure(fig, path)
    return fig

"""Compare profile outputs (``dsphnf fit`` / ``dsphnf baseline``) with each other and the truth.

Reads ``OUT/profile.csv`` folders (columns r [kpc], rho [Msun/kpc^3] with
68% ``rho_lo``/``rho_hi`` and 95% ``rho_lo95``/``rho_hi95`` bands, M [Msun]
with ``M_lo``/``M_hi``, ...) and a truth CSV as written by
``dsphnf mock --truth`` (columns r, nu, sigma_r, beta, M, rho).

:func:`compare_profiles` tabulates, at chosen radii, log10(rho / rho_true)
and whether the truth lies inside the 68% and 95% bands (profiles are
interpolated linearly in log r - log rho); :func:`plot_comparison` overlays
the rho and M bands.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .errors import DsphnfError
from .outputs import atomic_file

__all__ = ["DEFAULT_RADII", "read_profile", "read_truth", "parse_radii", "compare_profiles", "format_table",
           "plot_comparison"]

#: Radii [kpc] of the Gaia Challenge benchmark table.
DEFAULT_RADII = (0.1, 0.15, 0.25, 0.5, 1.0)

PROFILE_REQUIRED = ("r", "rho", "rho_lo", "rho_hi", "rho_lo95", "rho_hi95", "M", "M_lo", "M_hi")
TRUTH_REQUIRED = ("r", "rho")


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
    r = out["r"]
    if not (np.all(np.isfinite(r)) and np.all(r > 0) and np.all(np.diff(r) > 0)):
        raise DsphnfError(f"{path}: column r must be positive and increasing [kpc]")
    return out


def read_profile(folder: str | Path) -> dict[str, np.ndarray]:
    """Columns of ``folder/profile.csv`` (or of a profile CSV given directly)."""
    folder = Path(folder)
    path = folder / "profile.csv" if folder.is_dir() else folder
    if not folder.exists():
        raise DsphnfError(f"{folder}: no such output folder")
    if not path.is_file():
        raise DsphnfError(f"{folder}: no profile.csv in this folder")
    return _read_columns(path, PROFILE_REQUIRED, "profile.csv")


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


def _loginterp(r: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log-log interpolation of y(x) at r; NaN outside [x0, x-1] or where y <= 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ly = np.where(y > 0, np.log(np.where(y > 0, y, 1.0)), np.nan)
        out = np.exp(np.interp(np.log(r), np.log(x), ly, left=np.nan, right=np.nan))
    return out


def _as_profiles(runs) -> dict[str, dict[str, np.ndarray]]:
    if isinstance(runs, Mapping):
        return {str(k): (v if isinstance(v, Mapping) else read_profile(v)) for k, v in runs.items()}
    out = {}
    for v in runs:
        label = Path(v).name or str(v)
        while label in out:
            label += "'"
        out[label] = read_profile(v)
    return out


def compare_profiles(runs, truth: Mapping[str, np.ndarray] | str | Path | None = None,
                     radii: Sequence[float] = DEFAULT_RADII) -> list[dict]:
    """Table of each run's rho at ``radii`` [kpc] against the truth.

    Parameters
    ----------
    runs : sequence of folders, or mapping label -> folder or profile dict
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
        Radii outside a run's grid give NaN and ``in68 = in95 = None``.
    """
    profiles = _as_profiles(runs)
    if isinstance(truth, (str, Path)):
        truth = read_truth(truth)
    radii = np.asarray(radii, dtype=float)
    rows = []
    for label, p in profiles.items():
        vals = {k: _loginterp(radii, p["r"], p[k]) for k in ("rho", "rho_lo", "rho_hi", "rho_lo95", "rho_hi95", "M")}
        if truth is not None:
            rt = _loginterp(radii, truth["r"], truth["rho"])
            mt = _loginterp(radii, truth["r"], truth["M"]) if "M" in truth else np.full(radii.size, np.nan)
        for i, r in enumerate(radii):
            row = {"run": label, "r": float(r), **{k: float(v[i]) for k, v in vals.items()}}
            if truth is not None:
                t = float(rt[i])
                row["rho_true"] = t
                row["M_true"] = float(mt[i])
                ok = math.isfinite(t) and math.isfinite(row["rho"])
                row["log10_err"] = math.log10(row["rho"] / t) if ok else float("nan")
                row["in68"] = bool(row["rho_lo"] <= t <= row["rho_hi"]) if ok else None
                row["in95"] = bool(row["rho_lo95"] <= t <= row["rho_hi95"]) if ok else None
            rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """Plain-text table of :func:`compare_profiles` rows (one block per run)."""
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
            sub = [r for r in rows if r["run"] == label and r["in68"] is not None]
            if sub:
                n68 = sum(r["in68"] for r in sub)
                n95 = sum(r["in95"] for r in sub)
                rms = math.sqrt(sum(r["log10_err"] ** 2 for r in sub) / len(sub))
                lines.append(f"{label}: truth inside 68% band at {n68}/{len(sub)} radii, inside 95% at "
                             f"{n95}/{len(sub)}; rms log10 error {rms:.3f}")
    return "\n".join(lines)


def plot_comparison(runs, truth: Mapping[str, np.ndarray] | str | Path | None = None,
                    path: str | Path | None = None, radii: Sequence[float] | None = None):
    """Overlay rho (68/95% bands) and M (68% band) of each run, with the truth.

    Returns the matplotlib figure; saves it atomically to ``path`` if given.
    """
    import matplotlib.pyplot as plt

    profiles = _as_profiles(runs)
    if isinstance(truth, (str, Path)):
        truth = read_truth(truth)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5))
    for i, (label, p) in enumerate(profiles.items()):
        c = f"C{i}"
        a.fill_between(p["r"], p["rho_lo95"], p["rho_hi95"], color=c, alpha=0.12)
        a.fill_between(p["r"], p["rho_lo"], p["rho_hi"], color=c, alpha=0.3)
        a.loglog(p["r"], p["rho"], color=c, label=label)
        b.fill_between(p["r"], p["M_lo"], p["M_hi"], color=c, alpha=0.3)
        b.loglog(p["r"], p["M"], color=c, label=label)
    if truth is not None:
        a.loglog(truth["r"], truth["rho"], "k--", label="truth")
        if "M" in truth:
            b.loglog(truth["r"], truth["M"], "k--", label="truth")
    if radii is not None:
        for r in radii:
            a.axvline(r, color="0.7", lw=0.6, zorder=0)
    lo = min(p["r"][0] for p in profiles.values())
    hi = max(p["r"][-1] for p in profiles.values())
    for ax in (a, b):
        ax.set_xlim(lo, hi)
        ax.set_xlabel("r [kpc]")
        ax.legend(fontsize=8)
    a.set_ylabel(r"$\rho_{\rm DM}$ [M$_\odot$ kpc$^{-3}$]")
    b.set_ylabel(r"$M(<r)$ [M$_\odot$]")
    if truth is not None:
        sel = (truth["r"] >= lo) & (truth["r"] <= hi)
        if np.any(sel):
            ylo = min(np.min(truth["rho"][sel]), min(np.nanmin(p["rho_lo95"]) for p in profiles.values()))
            yhi = max(np.max(truth["rho"][sel]), max(np.nanmax(p["rho_hi95"]) for p in profiles.values()))
            a.set_ylim(0.5 * ylo, 2.0 * yhi)
    fig.tight_layout()
    if path is not None:
        path = Path(path)
        with atomic_file(path, "wb") as fh:
            fig.savefig(fh, dpi=110, format=path.suffix.lstrip(".").lower() or "png")
        plt.close(fig)
    return fig

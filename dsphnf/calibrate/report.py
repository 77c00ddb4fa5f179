"""Reporting a calibration: the coverage/PIT figure and the plain-text coverage table."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .score import (NOMINAL68, NOMINAL95, RADII_OVER_RHALF, START_FAR_DEX, nominal_interval, pooled_coverage,
                    versus_start)

__all__ = ["plot_coverage", "format_coverage"]


def plot_coverage(cal: Any, path: str | Path | None = None):
    """Coverage per radius against the nominal 68/95 % (left) and the histogram of z (right).

    Returns the matplotlib Figure (saved atomically to ``path`` when given).
    """
    import matplotlib.pyplot as plt

    from ..plotting import save_figure

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.6))
    for i, method in enumerate(cal.spec.methods):
        cov = [c for c in cal.coverage if c["method"] == method]
        x = np.array([c["r_over_rhalf"] for c in cov])
        for j, (key, mark) in enumerate((("cover68", "o"), ("cover95", "s"))):
            y = np.array([c[key] for c in cov])
            if np.isfinite(y).any():  # methods and bands side by side around each radius
                a.errorbar(x * 1.05 ** (2 * i + j - 1.5), y, yerr=[c[key + "_err"] for c in cov], fmt=mark,
                           color=f"C{i}", mfc="none" if j else None, capsize=2, label=f"{method}, {key[-2:]} % band")
        z = np.array([r["z"] for r in cal.rows if r["method"] == method], dtype=float)
        z = np.clip(z[np.isfinite(z)], -3.99, 3.99)  # |z| > 4 counted in the end bins
        if z.size:
            b.hist(z, bins=np.linspace(-4, 4, 17), density=True, histtype="step", color=f"C{i}", label=method)
    for level in (NOMINAL68, NOMINAL95):
        a.axhline(level, color="0.5", ls="--", lw=0.8)
        a.text(RADII_OVER_RHALF[-1] * 1.45, level + 0.01, f"nominal {level:.0%}", ha="right", va="bottom",
               fontsize="small", color="0.4")
    u = np.linspace(-4, 4, 200)
    b.plot(u, np.exp(-0.5 * u**2) / math.sqrt(2 * math.pi), "k--", lw=0.8, label="N(0, 1)")
    a.set(xscale="log", xlabel=r"$r / R_{\rm half}$", ylabel="fraction of realisations inside the band",
          ylim=(-0.02, 1.05), xlim=(RADII_OVER_RHALF[0] / 1.5, RADII_OVER_RHALF[-1] * 1.5),
          title=f"{cal.spec.source.label()}: {cal.spec.realisations} x {cal.spec.stars} stars")
    a.set_xticks(RADII_OVER_RHALF, [f"{r:g}" for r in RADII_OVER_RHALF])
    a.minorticks_off()
    b.set(xlabel=r"$z = \log_{10}(\rho/\rho_{\rm true}) / w_{68}$ ($|z| > 4$ in the end bins)", ylabel="density")
    if a.get_legend_handles_labels()[0]:
        a.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    if b.get_legend_handles_labels()[0]:
        b.legend(frameon=False)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def format_coverage(cal: Any) -> str:
    """Plain-text coverage table: one line per method and radius, the coverage pooled over radii, and
    every method against the flow's untrained start when the ``start`` method ran
    (:func:`~dsphnf.calibrate.score.versus_start`).

    A coverage outside the central 95 % binomial interval around nominal for
    its number of realisations (:func:`~dsphnf.calibrate.score.nominal_interval`)
    is marked ``*``: a calibrated band lands there in one case of 20 or less.
    """
    head = (f"{'method':<9s} {'r/R_half':>8s} {'r[kpc]':>8s} {'n':>3s} {'68% cover':>14s} {'95% cover':>14s} "
            f"{'z mean':>7s} {'z std':>6s} {'rms log10 err':>13s}")
    lines = [head, "-" * len(head)]
    g = lambda v, w: f"{'-':>{w}s}" if not math.isfinite(v) else f"{v:{w}.2f}"
    for c in cal.coverage:
        cells = _cover_cells(c, "")
        lines.append(f"{c['method']:<9s} {c['r_over_rhalf']:8.3g} {c['r']:8.4f} {c['n_banded']:3d} "
                     f"{cells[0]:>14s} {cells[1]:>14s} {g(c['z_mean'], 7)} {g(c['z_std'], 6)} "
                     f"{g(c['log10_err_rms'], 13)}")
    lines += _quantity_lines(cal.coverage, "M_", "mean log10 M/M_true")
    lines += _quantity_lines(cal.coverage, "beta_", "mean beta-beta_true")
    lines.append("* outside the central 95 % interval of a calibrated band for that many realisations")
    for p in pooled_coverage(cal.rows):
        if p["n_pairs"]:
            lines.append(f"{p['method']}: pooled over {p['n_pairs']} (radius, realisation) pairs "
                         f"{p['cover68']:.2f} inside the 68 % band, {p['cover95']:.2f} inside the 95 % band "
                         "(radii of one fit are correlated: fewer independent numbers than pairs)")
    for p in pooled_coverage(cal.rows, "M_"):
        if p["n_pairs"]:
            lines.append(f"M(<r), {p['method']}: pooled over {p['n_pairs']} pairs {p['cover68']:.2f} inside the 68 % "
                         f"band, {p['cover95']:.2f} inside the 95 % band")
    lines += _beta_pooled_lines(cal.rows)
    for v in versus_start(cal.rows):
        lines.append(f"{v['method']}: mean |log10 err| over the radii {v['median_abs_err']:.3f} dex against "
                     f"{v['start_median_abs_err']:.3f} for the untrained start (medians over {v['n']} mocks); "
                     f"better than the start on {v['better']} of {v['n']}, within a third of its error on {v['third']}; "
                     f"where the start is >= {START_FAR_DEX:g} dex off ({v['far']} mocks), within a third "
                     f"on {v['far_third']}")
    return "\n".join(lines)


def _quantity_lines(table: list[dict[str, Any]], prefix: str, error: str) -> list[str]:
    """The same table for M(<r) (``prefix`` "M_") or beta(r) ("beta_"), for the methods with its bands (for beta:
    none when beta was given); ``error`` heads the mean-error column."""
    rows = [c for c in table if c.get(prefix + "n_banded", 0) > 0]
    if not rows:
        return []
    head = (f"{prefix[:-1]:<9s} {'r/R_half':>8s} {'r[kpc]':>8s} {'n':>3s} {'68% cover':>14s} {'95% cover':>14s} "
            f"{error:>19s} {'rms':>6s}")
    lines = [head, "-" * len(head)]
    for c in rows:
        cells = _cover_cells(c, prefix)
        lines.append(f"{c['method']:<9s} {c['r_over_rhalf']:8.3g} {c['r']:8.4f} {c[prefix + 'n_banded']:3d} "
                     f"{cells[0]:>14s} {cells[1]:>14s} {c[prefix + 'err_mean']:19.3f} {c[prefix + 'err_rms']:6.3f}")
    return lines


def _beta_pooled_lines(rows: list[dict[str, Any]]) -> list[str]:
    """beta's coverage pooled over the radii, and over the radii where the fit called beta constrained."""
    said = {c["method"]: c for c in pooled_coverage([r for r in rows if r.get("beta_constrained") == 1.0], "beta_")
            if c["n_pairs"]}
    lines = []
    for p in pooled_coverage(rows, "beta_"):
        if not p["n_pairs"]:
            continue
        con = said.get(p["method"])
        spoke = any(r["method"] == p["method"] and r.get("beta_constrained") == 0.0 for r in rows)
        where = (f"; where the fit called beta constrained ({con['n_pairs']} pairs) {con['cover68']:.2f} and "
                 f"{con['cover95']:.2f}" if con else "; the fit called beta constrained at none of them" if spoke
                 else "")  # fits stored before the statement was recorded say nothing
        lines.append(f"beta, {p['method']}: pooled over {p['n_pairs']} pairs {p['cover68']:.2f} inside the 68 % "
                     f"band, {p['cover95']:.2f} inside the 95 % band{where}")
    return lines


def _cover_cells(c: dict[str, Any], prefix: str) -> list[str]:
    """The 68 % and 95 % coverage cells of one coverage.csv row, for rho (``prefix`` ""), M ("M_") or beta
    ("beta_")."""
    return [_cover(c[prefix + key], c[prefix + key + "_err"], c[prefix + "n_banded"], nominal)
            for key, nominal in (("cover68", NOMINAL68), ("cover95", NOMINAL95))]


def _cover(p: float, err: float, n: int, nominal: float) -> str:
    """'0.65 +- 0.11', with '*' when outside the binomial 95 % interval around ``nominal`` for n realisations."""
    if not math.isfinite(p):
        return "-"
    lo, hi = nominal_interval(n, nominal)
    return f"{p:4.2f} +- {err:4.2f}{'*' if not lo <= p <= hi else ' '}"

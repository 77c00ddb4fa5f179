"""Reporting a survey: the table beside the literature (pulls), its figure and a plain-text summary."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..galaxies import GALAXIES
from ..outputs import atomic_file
from .literature import SOURCE_LABELS, published, pull

__all__ = ["COMPARED", "comparison", "write_comparison", "plot_literature", "format_survey"]

#: Quantities compared with the literature: column -> axis label.
COMPARED = {"rho150": r"$\rho_{\rm DM}(150\,{\rm pc})$ [$10^8$ M$_\odot$ kpc$^{-3}$]",
            "log10_J05": r"$\log_{10} J(0.5^\circ)$ [GeV$^2$ cm$^{-5}$]"}


def comparison(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per survey row, compared quantity and published value: ours, theirs, source, pull, tension.

    ``tension`` is True where |pull| > 2 (more than 2 sigma apart).
    """
    out = []
    for row in rows:
        for q in COMPARED:
            for lit in published(row["galaxy"], q):
                p = pull(row, lit)
                out.append({"galaxy": row["galaxy"], "method": row["method"], "quantity": q,
                            "ours": row.get(q, math.nan), "ours_lo": row.get(q + "_lo", math.nan),
                            "ours_hi": row.get(q + "_hi", math.nan), "published": lit.value,
                            "published_lo": lit.lo, "published_hi": lit.hi, "source": lit.source, "pull": p,
                            "tension": bool(abs(p) > 2.0) if np.isfinite(p) else False})
    return out


def write_comparison(rows: Sequence[Mapping[str, Any]], folder: str | Path) -> list[dict[str, Any]]:
    """Write ``literature.csv`` (see :func:`comparison`) into ``folder``; return its rows."""
    comp = comparison(rows)
    if comp:
        keys = list(comp[0])
        with atomic_file(Path(folder) / "literature.csv") as fh:
            w = csv.writer(fh)
            w.writerow(keys)
            for c in comp:
                w.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in (c[k] for k in keys)])
    return comp


def plot_literature(rows: Sequence[Mapping[str, Any]], path: str | Path | None = None):
    """Ours against the published values, one panel per compared quantity (1:1 line dashed).

    Returns the Figure (saved to ``path`` when given).
    """
    from .. import style
    from ..plotting import save_figure

    comp = comparison(rows)
    fig, axes = style.figure(len(COMPARED))
    sources = sorted({c["source"] for c in comp})
    marks = dict(zip(sources, "osD^v"))
    for ax, (q, label) in zip(np.atleast_1d(axes), COMPARED.items()):
        unit = 1e8 if q == "rho150" else 1.0  # rho in 1e8 Msun/kpc^3 on a linear axis
        scaled = ("ours", "ours_lo", "ours_hi", "published", "published_lo", "published_hi")
        sel = [{k: (v / unit if k in scaled else v) for k, v in c.items()} for c in comp
               if c["quantity"] == q and np.isfinite(c["ours"])]
        named: set[tuple[str, str]] = set()
        for c in sel:
            color = "C0" if c["method"] == "baseline" else "C1"
            ax.errorbar(c["published"], c["ours"], xerr=[[c["published"] - c["published_lo"]],
                        [c["published_hi"] - c["published"]]], yerr=[[c["ours"] - c["ours_lo"]],
                        [c["ours_hi"] - c["ours"]]], fmt=marks[c["source"]], color=color, ms=4, capsize=1.5,
                        mfc="none" if c["source"] != sources[0] else color, lw=0.8)
            if (c["galaxy"], c["method"]) not in named:  # one label per galaxy and method
                named.add((c["galaxy"], c["method"]))
                ax.annotate(GALAXIES[c["galaxy"]].name, (c["published"], c["ours"]), fontsize=6,
                            xytext=(3, 3), textcoords="offset points")
        if sel:
            v = [c[k] for c in sel for k in ("published", "ours_lo", "ours_hi")]
            lo, hi = min(v), max(v)
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.7)
        ax.set(xlabel="published " + label, ylabel="dsphnf " + label)
    handles = [ax.plot([], [], marks[s], color="0.3", mfc="none" if i else "0.3")[0] for i, s in enumerate(sources)]
    methods = [m for m in ("baseline", "flow") if any(c["method"] == m for c in comp)]
    handles += [ax.plot([], [], "s", color="C0" if m == "baseline" else "C1")[0] for m in methods]
    fig.legend(handles, [SOURCE_LABELS.get(s, s) for s in sources] + methods, loc="outside lower center", ncol=3,
               frameon=False, fontsize="small")
    if path is not None:
        save_figure(fig, path)
    return fig


def _band_text(row: Mapping[str, Any], key: str, fmt: str) -> str:
    v, lo, hi = (row.get(key + k, math.nan) for k in ("", "_lo", "_hi"))
    if not np.isfinite(v):
        return "-"
    return f"{v:{fmt}} (+{hi - v:{fmt}} -{v - lo:{fmt}})"


def format_survey(rows: Sequence[Mapping[str, Any]]) -> str:
    """Plain-text table: one line per galaxy and method, then the tensions with the literature (> 2 sigma)."""
    lines = [f"{'galaxy':10s} {'method':8s} {'rho(150 pc) [Msun/kpc^3]':30s} {'slope(150 pc)':22s} "
             f"{'log10 J(0.5 deg)':22s} {'members':>8s} {'wall [s]':>9s}"]
    for r in rows:
        flag = " (J beyond data)" if r.get("j_beyond_data") else ""
        if str(r.get("fit_note", "")).startswith("failed:"):
            flag += " FAILED: " + str(r["fit_note"])[len("failed: "):]
        lines.append(f"{r['galaxy']:10s} {r['method']:8s} {_band_text(r, 'rho150', '.3g'):30s} "
                     f"{_band_text(r, 'slope150', '.2f'):22s} {_band_text(r, 'log10_J05', '.2f'):22s} "
                     f"{r['n_members']:8.1f} {r['wall_s']:9.1f}{flag}")
    tense = [c for c in comparison(rows) if c["tension"]]
    for c in tense:
        f = ".3g" if c["quantity"] == "rho150" else ".2f"
        lines.append(f"tension: {c['galaxy']} {c['method']} {c['quantity']} = {c['ours']:{f}} against "
                     f"{c['published']:{f}} ({c['source']}): pull {c['pull']:+.1f}")
    return "\n".join(lines)

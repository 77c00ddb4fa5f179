"""A learned beta(r) side by side: `dsphnf calibrate --fit-anisotropy free` folders on the same mocks (not a test).

Each folder is one velocity family (or any other setting) fitted to the same mocks (same model, ``--seed``);
only the realisations every folder holds are compared. Per folder it prints beta(R_half) per realisation, how
often it came within 0.2 of the truth and how often its 68 / 95 % bands held it there, the mean 68 % half-width
at R_half, beta's mean error per radius and its coverage pooled and per radius, the coverage where the fit called
beta constrained (``beta_constrained``, folders written since 2026-12-06), rho's coverage and median log10 error
per radius, and the median over mocks of the mean |log10 rho/rho_true| over the five radii (with the untrained
start's, for folders run with ``--method flow,start``)::

    python benchmarks/beta_families.py elliptical=OUT_E separable=OUT_S mixed=OUT_M
"""
from __future__ import annotations

import argparse

import pandas as pd


def _join(values, fmt: str) -> str:
    return " / ".join(format(v, fmt) for v in values)


def _beta_lines(g: pd.DataFrame) -> list[str]:
    """beta at R_half per realisation and its scores, then per radius and pooled."""
    rad, h = g.groupby("r_over_rhalf"), g[g.r_over_rhalf == 1]
    half = (g.beta_hi - g.beta_lo) / 2
    lines = [f"  beta(R_half) {_join(h.beta, '+.2f')} (truth {h.beta_true.iloc[0]:+.2f}): within 0.2 on "
             f"{(h.beta_err.abs() <= 0.2).sum()} of {len(h)}, 68 % band covers {int(h.beta_in68.sum())}, "
             f"95 % {int(h.beta_in95.sum())}; mean error {h.beta_err.mean():+.2f}, "
             f"mean 68 % half-width {half[h.index].mean():.2f}",
             f"  beta mean error per radius {_join(rad.beta_err.mean(), '+.2f')}; 68 % half-width "
             f"{_join(half.groupby(g.r_over_rhalf).mean(), '.2f')}",
             f"  beta covered {g.beta_in68.mean():.2f} / {g.beta_in95.mean():.2f} pooled; per radius 68 %: "
             f"{_join(rad.beta_in68.mean(), '.2f')}; 95 %: {_join(rad.beta_in95.mean(), '.2f')}"]
    if "beta_constrained" in g and g.beta_constrained.notna().any():
        c = g[g.beta_constrained == 1]
        lines.append(f"  called constrained on {len(c)} of {len(g)} pairs, covered there "
                     f"{c.beta_in68.mean():.2f} / {c.beta_in95.mean():.2f}")
    return lines


def _rho_lines(g: pd.DataFrame, start: pd.DataFrame) -> list[str]:
    """rho's coverage and errors; the median over mocks of the mean |error|, beside the start's."""
    rad = g.groupby("r_over_rhalf")
    mean_abs = g.assign(a=g.log10_err.abs()).groupby("realisation").a.mean()
    lines = [f"  rho covered {g.in68.mean():.2f} / {g.in95.mean():.2f} pooled; per radius 68 %: "
             f"{_join(rad.in68.mean(), '.2f')}; 95 %: {_join(rad.in95.mean(), '.2f')}",
             f"  rho median log10 error per radius {_join(rad.log10_err.median(), '+.3f')}; mean |error| per mock "
             f"{_join(mean_abs, '.3f')}, median {mean_abs.median():.3f} dex"]
    if len(start):
        s = start.assign(a=start.log10_err.abs()).groupby("realisation").a.mean()
        lines.append(f"  untrained start: median {s.median():.3f} dex; better than it on "
                     f"{(mean_abs < s.reindex(mean_abs.index)).sum()} of {len(mean_abs)}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", metavar="NAME=OUT", help="a label and a calibrate folder")
    args = ap.parse_args()
    frames = {}
    for item in args.folders:
        name, _, out = item.partition("=")
        frames[name] = pd.read_csv(f"{out or name}/calibration.csv")
    common = set.intersection(*[set(f[f.method == "flow"].realisation) for f in frames.values()])
    print(f"realisations every folder holds: {sorted(common)}")
    for name, rows in frames.items():
        rows = rows[rows.realisation.isin(common)]
        print(f"== {name}")
        flow = rows[rows.method == "flow"]
        print("\n".join(_beta_lines(flow) + _rho_lines(flow, rows[rows.method == "start"])))


if __name__ == "__main__":
    main()

"""``dsphnf mock``: draw a Gaia-Challenge-like mock catalogue (and its truth)."""
from __future__ import annotations

import argparse

import numpy as np

from ..catalog import Catalog
from ..errors import DsphnfError
from ..outputs import write_csv

HELP = "draw a mock catalogue x, y [kpc], vz [km/s] from a known model (optionally its true profiles)"

TRUTH_COLUMNS = "r [kpc], nu [kpc^-3, one star in total], sigma_r [km/s], beta, M [Msun], rho [Msun/kpc^3]"

#: Points of the logarithmic radial grid of --truth, and its span in units of r*.
TRUTH_POINTS = 200
TRUTH_SPAN = (0.01, 10.0)


def _models() -> list[str]:
    try:
        from .. import mocks
    except ImportError:  # pragma: no cover - only while the package is incomplete
        return ["see dsphnf.mocks.MODELS"]
    return list(mocks.MODELS)


def register(subparsers: argparse._SubParsersAction) -> None:
    description = (
        "Draw N stars from an equilibrium model (Gaia Challenge family) and write the\n"
        "projected catalogue (observer along z) as CSV with header x,y,vz\n"
        "(x, y [kpc], vz [km/s]; plus vz_err [km/s] when --verr is given).\n\n"
        f"Models: {', '.join(_models())}.\n\n"
        f"--truth writes the true profiles on a {TRUTH_POINTS}-point logarithmic grid from "
        f"{TRUTH_SPAN[0]:g} to {TRUTH_SPAN[1]:g} r*\n(r* the stellar scale radius), columns: {TRUTH_COLUMNS}."
    )
    p = subparsers.add_parser(
        "mock", help=HELP, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("model", metavar="MODEL", help="model name, e.g. NonPlumCuspIso")
    p.add_argument("-n", type=int, default=1000, metavar="N", help="number of stars (default 1000)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("-o", "--output", required=True, metavar="STARS.csv", help="output catalogue (CSV)")
    p.add_argument("--truth", default=None, metavar="TRUTH.csv", help=f"also write the true profiles: {TRUTH_COLUMNS}")
    p.add_argument(
        "--verr", type=float, default=None, metavar="KMS",
        help="Gaussian velocity error [km/s] added to every vz and written as column vz_err",
    )
    p.set_defaults(func=run)


def resolve_model(name: str):
    """The mock model called ``name`` (case-insensitive), or a one-line DsphnfError."""
    from .. import mocks

    names = {m.lower(): m for m in mocks.MODELS}
    if name.lower() not in names:
        raise DsphnfError(f"unknown model {name!r}; choose one of {', '.join(mocks.MODELS)}")
    return mocks.get_model(names[name.lower()])


def truth_grid(model, xv: np.ndarray | None = None) -> np.ndarray:
    """Logarithmic radial grid [kpc]: 0.01 to 10 r*, or spanning the sample's 3-D radii."""
    rstar = _scale_radius(model)
    if rstar is not None:
        return np.geomspace(TRUTH_SPAN[0] * rstar, TRUTH_SPAN[1] * rstar, TRUTH_POINTS)
    r = np.linalg.norm(np.asarray(xv)[:, :3], axis=1)
    return np.geomspace(max(r.min(), 1e-3 * np.median(r)), r.max(), TRUTH_POINTS)


def _scale_radius(model) -> float | None:
    for attr in ("rstar", "r_star", "rs_star"):
        if getattr(model, attr, None) is not None:
            return float(getattr(model, attr))
    for attr in ("tracer", "nu", "stars"):
        rs = getattr(getattr(model, attr, None), "rs", None)
        if rs is not None:
            return float(rs)
    return None


def make_mock(name: str, n: int, seed: int = 0, verr: float | None = None) -> tuple[Catalog, dict, object]:
    """Draw a mock: (catalogue, truth profiles on :func:`truth_grid`, model).

    Parameters
    ----------
    name : str
        Model name (see ``dsphnf.mocks.MODELS``).
    n : int
        Number of stars (>= 1).
    seed : int
        Random seed.
    verr : float, optional
        Velocity error [km/s] added to the velocities and recorded as vz_err.
    """
    if n < 1:
        raise DsphnfError(f"-n must be at least 1, got {n}")
    if verr is not None and not (np.isfinite(verr) and verr >= 0):
        raise DsphnfError(f"--verr must be a non-negative velocity error in km/s, got {verr:g}")
    from .. import mocks

    model = resolve_model(name)
    xv = mocks.sample_stars(model, n, seed=seed, verr=0.0 if verr is None else float(verr))
    cat = Catalog.from_phase_space(xv, verr, source=f"mock:{name}", model=name, seed=seed)
    truth = mocks.truth_profiles(model, truth_grid(model, xv))
    return cat, truth, model


def truth_columns(truth: dict) -> dict:
    """The --truth CSV columns in their documented order."""
    return {k: np.asarray(truth[k], dtype=float) for k in ("r", "nu", "sigma_r", "beta", "M", "rho")}


def run(args: argparse.Namespace) -> int:
    cat, truth, _ = make_mock(args.model, args.n, args.seed, args.verr)
    cols = truth_columns(truth)
    # everything is computed before anything is written; each write is atomic
    cat.to_csv(args.output)
    if args.truth:
        write_csv(args.truth, cols)
    extra = f", vz_err = {args.verr:g} km/s" if args.verr is not None else ""
    print(f"wrote {cat.n} stars of {args.model} (seed {args.seed}{extra}) to {args.output}")
    if args.truth:
        print(f"wrote true profiles ({TRUTH_COLUMNS}) to {args.truth}")
    return 0

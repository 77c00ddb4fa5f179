"""The summary of a flow fit in the common schema of :mod:`dsphnf.result`, its J-factor band and plot data.

Everything here is JSON-ready: settings as spec strings, numbers as floats.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from .. import __version__
from ..executor import TASK_THREADS
from ..foreground import Foreground
from ..provenance import machine, software_versions
from .fit_setup import FitSetup, outer_threads
from .member import MemberStars, TrainedMember
from .member_j import ensemble_j_band, member_inner_slope, member_outer_slope
from .prior import HOLE_TAU, MASS_SLOPE_MAX, POSITIVITY_TAU
from .settings import fast_mode
from .student_t import t_centre, t_interval

__all__ = ["J_THETA_DEG", "centre_record", "ensemble_j_record", "fit_summary", "foreground_record", "plot_data",
           "settings_record"]

#: Integration angle of the J-factor [deg].
J_THETA_DEG = 0.5


def ensemble_j_record(members: list[dict], trained: list[TrainedMember], distance: float,
                      centre: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The J(0.5 deg) band (around ``centre``'s J, an all-star flow's profile, if given); each member's log10 J
    (None when left out) goes into its diagnostics."""
    own = [m.scales.get("distance_kpc", distance) for m in trained]  # a distance drawn per member, or the one
    band, each = ensemble_j_band(members, distance, J_THETA_DEG, own, centre)
    if any(d != distance for d in own):
        band["member_distances_kpc"] = own
    for m, j, member in zip(trained, each, members):
        m.info["log10_J"] = j
        m.info["j_inner_slope"] = member_inner_slope(member)
        m.info["j_outer_slope"] = member_outer_slope(member)
    return band


def centre_record(profile: dict[str, np.ndarray]) -> dict[str, Any]:
    """``diagnostics.centre`` of a fit centred on its all-star flow: the radii [kpc] where that flow's read-out
    was not physical, so that the members' own value and bands stand there.

    >>> centre_record({"r": np.array([0.1, 1.0]), "from_members": np.array([0.0, 1.0])})
    {'kind': 'all-stars', 'n_radii_from_members': 1, 'radii_from_members_kpc': [1.0]}
    """
    flag = np.asarray(profile["from_members"]) > 0
    return {"kind": "all-stars", "n_radii_from_members": int(flag.sum()),
            "radii_from_members_kpc": [float(r) for r in np.asarray(profile["r"])[flag]]}


def fit_summary(catalog, setup: FitSetup, stars: MemberStars, trained: list[TrainedMember], timings: dict[str, float],
             distance: float | None, jband: dict | None) -> dict[str, Any]:
    """The summary in the common schema of :mod:`dsphnf.result` (JSON-ready)."""
    info = [m.info for m in trained]
    val = None if info[0]["final_val_loss"] is None else float(np.mean([m["final_val_loss"] for m in info]))
    out = {
        "method": "flow",
        "source": str(getattr(catalog, "source", "<memory>")),
        "n_stars": int(catalog.n),
        "settings": settings_record(setup, distance),
        "timings_s": timings,
        "diagnostics": {
            "kinematic": stars.kinematic, "n_eff": float(np.sum(stars.raw["w"])), "scales": stars.scales,
            "members": info,
            "final_train_loss": float(np.mean([m["final_train_loss"] for m in info])),
            "final_val_loss": val,
        },
    }
    if jband is not None:
        out["jfactor"] = jband
    if setup.distance is not None:
        out["diagnostics"]["distance"] = {"distance_kpc": setup.distance[0], "distance_err_kpc": setup.distance[1],
                                          "member_distances_kpc": [m.scales["distance_kpc"] for m in trained]}
    if setup.foreground is not None:
        out["diagnostics"]["foreground"] = foreground_record(setup.foreground, info)
    out["dsphnf_version"] = __version__
    out["versions"] = software_versions()
    out["machine"] = machine()
    return out


def foreground_record(fg: Foreground, info: list[dict]) -> dict[str, Any]:
    """The foreground's settings and the members' fractions, with their mean and Student-t band (JSON-ready)."""
    f = np.array([m["foreground_fraction"] if fg.fraction is None else fg.fraction for m in info], dtype=float)
    band = t_interval(f) if f.size > 1 else {}
    return {**fg.spec(), "learned": fg.fraction is None, "member_fractions": f.tolist(),
            "fraction": float(t_centre(f)), **{"fraction" + k: float(v) for k, v in band.items()}}


def settings_record(setup: FitSetup, distance: float | None) -> dict[str, Any]:
    """The settings block of the summary (the anisotropy as its spec string)."""
    opts = setup.options
    return {
        "anisotropy": setup.anisotropy.spec(), "inner": setup.inner, "ensemble": setup.ensemble,
        "seed": setup.seed, "distance_kpc": None if distance is None else float(distance),
        "distance_err_kpc": None if setup.distance is None else setup.distance[1],
        "foreground": None if setup.foreground is None else setup.foreground.spec(),
        "device": str(setup.device), "dtype": str(opts.dtype).replace("torch.", ""),
        "bandwidth_factor": opts.bandwidth_factor, "val_fraction": opts.val_fraction, "fast_mode": fast_mode(),
        "threads": outer_threads(opts.threads) or TASK_THREADS, "executor": setup.executor.kind,
        "batched": setup.batched, "warm_start": opts.warm_start if setup.ensemble > 1 else 0,
        "centre": opts.centre if setup.ensemble > 1 else None,
        "flow": asdict(setup.flow), "train": setup.train.to_dict(),
        "prior": {"hole_tau": HOLE_TAU, "positivity_tau": POSITIVITY_TAU, "mass_slope_max": MASS_SLOPE_MAX,
                  "density_falls_outwards": True},
        "grid": "log-spaced over the 2nd-98th weighted percentile of R" if opts.r_grid is None else "user",
    }


def plot_data(catalog, stars: MemberStars) -> dict[str, np.ndarray]:
    """The stars kept for the figures: x, y [kpc], weights, v_z - v_sys and errors [km/s]."""
    data = {"x": np.asarray(catalog.x, float), "y": np.asarray(catalog.y, float), "w": stars.raw["w"]}
    if stars.kinematic:
        data["vz"] = np.asarray(catalog.vz, float) - stars.scales["v_sys"]
        if catalog.vz_err is not None:
            data["verr"] = np.asarray(catalog.vz_err, float)
    return data

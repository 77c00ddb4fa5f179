"""The data side of a flow fit: standardised units, the output grid, the device.

A catalogue is fitted in standardised units: positions in L, the weighted
median projected radius [kpc], velocities in V, the weighted standard
deviation of v_z [km/s] after removing the weighted mean v_sys. Every
ensemble member computes these scales from its own bootstrap resample
(:func:`scales_of`), so the spread of the members includes the sampling
noise of the standardisation. The output grid
spans the weighted 2nd-98th percentile of the projected radii, where the stars
constrain the flow.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..errors import FitError
from ..kinematics import half_number_radius, weighted_mean_std

__all__ = ["standardise", "raw_stars", "scales_of", "standardise_stars", "radial_grid", "fingerprint", "check_device"]


def standardise(catalog) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Standardised observables of a catalogue and the scales L, V, v_sys.

    Returns ``obs`` (n, 3) or (n, 2), ``verr`` (n,) or None, ``w`` (n,), and
    the scales in kpc and km/s (:func:`scales_of`).
    """
    raw = raw_stars(catalog)
    scales = scales_of(raw, source=getattr(catalog, "source", "catalogue"))
    return standardise_stars(raw, scales), scales


def raw_stars(catalog) -> dict[str, np.ndarray | None]:
    """The columns a flow fit uses, as float arrays: ``x``, ``y`` [kpc], ``vz``, ``verr`` [km/s] (or None), ``w``."""
    col = lambda a: None if a is None else np.asarray(a, dtype=float)  # noqa: E731
    return {"x": col(catalog.x), "y": col(catalog.y), "vz": col(catalog.vz), "verr": col(catalog.vz_err),
            "w": col(catalog.weights)}


def scales_of(raw: dict[str, np.ndarray | None], idx: np.ndarray | None = None,
              source: str = "catalogue") -> dict[str, float]:
    """L [kpc], V, v_sys [km/s] of the stars ``idx`` of ``raw`` (all stars when None).

    L is the weighted median projected radius, v_sys and V the weighted mean
    and standard deviation of v_z (V = 1, v_sys = 0 without velocities). A
    star drawn twice (a bootstrap resample) counts twice, so every ensemble
    member standardises by the scales of its own resample; the identity
    resample gives the catalogue's scales.

    >>> raw = {"x": np.array([1.0, 2.0, 4.0]), "y": np.zeros(3), "vz": np.array([-1.0, 0.0, 4.0]),
    ...        "verr": None, "w": np.ones(3)}
    >>> scales_of(raw)["L"], scales_of(raw, np.array([2, 2, 0]))["L"]
    (2.0, 4.0)
    """
    sel = slice(None) if idx is None else np.asarray(idx)
    w = raw["w"][sel]
    L = half_number_radius(raw["x"][sel], raw["y"][sel], w)
    if not L > 0:
        raise FitError(f"{source}: half-number radius is zero; are x, y in kpc?")
    if raw["vz"] is None:
        return {"L": L, "V": 1.0, "v_sys": 0.0}
    v_sys, V = weighted_mean_std(raw["vz"][sel], w)
    if not V > 0:
        raise FitError(f"{source}: all velocities are equal")
    return {"L": L, "V": V, "v_sys": v_sys}


def standardise_stars(raw: dict[str, np.ndarray | None], scales: dict[str, float]) -> dict[str, np.ndarray]:
    """``obs`` (n, 3) or (n, 2), ``verr`` (n,) or None and ``w`` (n,) of ``raw`` in the units ``scales``."""
    L, V = scales["L"], scales["V"]
    out = {"w": raw["w"], "verr": None}
    if raw["vz"] is None:
        out["obs"] = np.column_stack([raw["x"] / L, raw["y"] / L])
        return out
    out["obs"] = np.column_stack([raw["x"] / L, raw["y"] / L, (raw["vz"] - scales["v_sys"]) / V])
    if raw["verr"] is not None:
        out["verr"] = raw["verr"] / V
    return out


def radial_grid(R: np.ndarray, w: np.ndarray, n: int, lo_q: float = 2.0, hi_q: float = 98.0) -> np.ndarray:
    """``n`` log-spaced radii [kpc] from the ``lo_q``-th to the ``hi_q``-th weighted percentile of ``R``."""
    order = np.argsort(R)
    cw = (np.cumsum(w[order]) - 0.5 * w[order]) / w.sum()
    lo, hi = np.interp([lo_q / 100, hi_q / 100], cw, R[order])
    return np.logspace(np.log10(lo), np.log10(hi), n)


def fingerprint(*arrays) -> str:
    """Short hash of float arrays (None skipped): ties a checkpoint to the data it was trained on."""
    h = hashlib.sha256()
    for a in arrays:
        if a is not None:
            h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def check_device(device: str) -> torch.device:
    """The torch device for ``cpu`` or ``cuda``; a one-line FitError when it is unknown or unavailable."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise FitError(f"unknown device {device!r}: use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FitError("--device cuda requested but no CUDA GPU is available to torch")
    if dev.type not in ("cpu", "cuda"):
        raise FitError(f"unsupported device {device!r}: use cpu or cuda")
    return dev

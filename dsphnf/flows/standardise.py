"""The data side of a flow fit: standardised units, the output grid, the device.

A catalogue is fitted in standardised units: positions in L, the weighted
median projected radius [kpc], velocities in V, the weighted standard
deviation of v_z [km/s] after removing the weighted mean v_sys. The output grid
spans the weighted 2nd-98th percentile of the projected radii, where the stars
constrain the flow.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..errors import FitError
from ..kinematics import half_number_radius, weighted_mean_std

__all__ = ["standardise", "radial_grid", "fingerprint", "check_device"]


def standardise(catalog) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Standardised observables of a catalogue and the scales L, V, v_sys.

    Returns ``obs`` (n, 3) or (n, 2), ``verr`` (n,) or None, ``w`` (n,), and
    the scales in kpc and km/s.
    """
    x = np.asarray(catalog.x, dtype=float)
    y = np.asarray(catalog.y, dtype=float)
    w = np.asarray(catalog.weights, dtype=float)
    L = half_number_radius(x, y, w)
    if not L > 0:
        raise FitError(f"{getattr(catalog, 'source', 'catalogue')}: half-number radius is zero; are x, y in kpc?")
    scales = {"L": L, "V": 1.0, "v_sys": 0.0}
    out = {"w": w, "verr": None}
    if catalog.vz is not None:
        vz = np.asarray(catalog.vz, dtype=float)
        v_sys, V = weighted_mean_std(vz, w)
        if not V > 0:
            raise FitError(f"{getattr(catalog, 'source', 'catalogue')}: all velocities are equal")
        scales.update(V=V, v_sys=v_sys)
        out["obs"] = np.column_stack([x / L, y / L, (vz - v_sys) / V])
        if catalog.vz_err is not None:
            out["verr"] = np.asarray(catalog.vz_err, dtype=float) / V
    else:
        out["obs"] = np.column_stack([x / L, y / L])
    return out, scales


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

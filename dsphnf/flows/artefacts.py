"""What a flow fit keeps beside its profiles: the trained flows, and how they are saved and read back.

:class:`FlowArtefacts` is the ``artefacts`` of the :class:`~dsphnf.result.Result`
that :func:`~dsphnf.flows.fit.fit_flow` returns (the
:class:`~dsphnf.result.Artefacts` protocol): :meth:`~FlowArtefacts.write_into`
saves every flow as ``flows/flow_k.pt`` (settings, weights, the flow's own
standardisation scales and the catalogue's), :meth:`~FlowArtefacts.plot_into` draws the figures of
:mod:`dsphnf.flows.plots`, and :func:`load_flows` rebuilds the flows from a
saved folder.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..anisotropy import parse_anisotropy
from .cnf import SphericalFlow

if TYPE_CHECKING:  # pragma: no cover
    from ..result import Result

__all__ = ["FlowArtefacts", "load_flows", "load_member_scales", "FLOW_DIR"]

#: Folder of the saved flows inside a result folder.
FLOW_DIR = "flows"


@dataclass
class FlowArtefacts:
    """Method-specific outputs of a flow fit.

    Attributes
    ----------
    flows : list of SphericalFlow
        The trained ensemble members (standardised units).
    members : list of dict of ndarray
        The profile of every member on the output grid (``r`` [kpc], ``nu``
        [kpc^-3], and with velocities ``sigma_r`` [km/s], ``beta``, ``M``
        [Msun], ``rho`` [Msun/kpc^3], ...; see :func:`~dsphnf.flows.moments.flow_profiles`).
    history : list of dict
        Training history of every member (``step``, ``loss``, ``val_step``,
        ``val_loss``, ``events``).
    scales : dict
        ``L`` [kpc], ``V`` [km/s], ``v_sys`` [km/s] of the whole catalogue.
    data : dict of ndarray
        The stars kept for the figures: ``x``, ``y`` [kpc], ``w``, and with
        velocities ``vz`` [km/s, v_sys removed] and any ``verr`` [km/s].
    member_scales : list of dict
        The standardisation of every flow (each member's own resample; empty:
        every flow uses ``scales``); see :meth:`scales_of`.

    Examples
    --------
    >>> import tempfile
    >>> from dsphnf.flows import load_flows, random_flow
    >>> art = FlowArtefacts([random_flow(0, kinematic=False)], [], [], {"L": 0.3, "V": 1.0, "v_sys": 0.0})
    >>> folder = Path(tempfile.mkdtemp())
    >>> art.write_into(folder)
    ['flows/flow_0.pt']
    >>> flows, scales = load_flows(folder)
    >>> len(flows), scales["L"], flows[0].kinematic
    (1, 0.3, False)
    """

    flows: list[SphericalFlow]
    members: list[dict[str, np.ndarray]]
    history: list[dict]
    scales: dict[str, float]
    data: dict[str, np.ndarray] = field(default_factory=dict)
    member_scales: list[dict[str, float]] = field(default_factory=list)

    def scales_of(self, k: int) -> dict[str, float]:
        """``L`` [kpc], ``V``, ``v_sys`` [km/s]: the standardised units of flow ``k``."""
        return self.member_scales[k] if self.member_scales else self.scales

    def write_into(self, folder: Path) -> list[str]:
        """Save every flow as ``flows/flow_k.pt`` in ``folder``; return the names written."""
        (Path(folder) / FLOW_DIR).mkdir(exist_ok=True)
        names = []
        for k, flow in enumerate(self.flows):
            name = f"{FLOW_DIR}/flow_{k}.pt"
            torch.save({"spec": flow.spec(), "state": flow.state_dict(), "scales": self.scales_of(k),
                        "data_scales": self.scales}, Path(folder) / name)
            names.append(name)
        return names

    def plot_into(self, result: "Result", folder: Path) -> list[str]:
        """Draw profiles.png, data_vs_model.png and loss.png of ``result`` into ``folder``.

        The flows are sampled with the torch thread count of the fit
        (``summary["settings"]["threads"]``), restored afterwards.
        """
        from . import plots

        old = torch.get_num_threads()
        torch.set_num_threads(int(result.summary.get("settings", {}).get("threads") or old))
        try:
            return [p.name for p in plots.save_all(result, folder)]
        finally:
            torch.set_num_threads(old)


def load_flows(folder: str | os.PathLike) -> tuple[list[SphericalFlow], dict]:
    """Rebuild the flows saved by :meth:`FlowArtefacts.write_into` (and the scales).

    Parameters
    ----------
    folder : path
        A result folder (holding ``flows/flow_k.pt``).

    Returns
    -------
    flows : list of SphericalFlow
        In the order of ``k``, on the CPU.
    scales : dict
        ``L`` [kpc], ``V``, ``v_sys`` [km/s] of the whole catalogue (empty
        when no flow was saved); every flow's own are :func:`load_member_scales`.
    """
    flows, scales = [], {}
    for f in _flow_files(folder):
        st = torch.load(f, map_location="cpu", weights_only=False)
        # the file boundary: the saved anisotropy spelling is parsed once, here
        flow = SphericalFlow(**{**st["spec"], "anisotropy": parse_anisotropy(st["spec"]["anisotropy"])})
        flow.load_state_dict(st["state"])
        flows.append(flow)
        scales = st.get("data_scales", st["scales"])
    return flows, scales


def _flow_files(folder: str | os.PathLike) -> list[Path]:
    return sorted(Path(folder, FLOW_DIR).glob("flow_*.pt"), key=lambda p: int(p.stem.split("_")[1]))


def load_member_scales(folder: str | os.PathLike) -> list[dict[str, float]]:
    """The units (``L`` [kpc], ``V``, ``v_sys`` [km/s]) of every flow saved in ``folder``, in the order of ``k``."""
    return [torch.load(f, map_location="cpu", weights_only=False)["scales"] for f in _flow_files(folder)]

"""dsphnf: dark-matter density profiles of dwarf spheroidal galaxies from (x, y, v_z).

The public face, each with a short example in its docstring:

- :func:`read_catalog` — read and validate a star catalogue (x, y [kpc], vz [km/s], ...);
- :func:`draw_mock` — draw an equilibrium mock dwarf with its true profiles;
- :func:`fit_flow` — the equivariant-flow Jeans analysis (Lim, Hayashi,
  Horigome, Matsumoto, Nojiri 2025, arXiv:2505.00763);
- :func:`fit_baseline` — the parametric Jeans fit sampled with emcee;
- :func:`compare` — profiles against each other and the truth;
- :class:`Result` (and :func:`load_result`) — what both fits return and save.

Units everywhere: kpc, km/s, Msun; G in :mod:`dsphnf.constants`.

>>> import dsphnf
>>> cat, truth, model = dsphnf.draw_mock("NonPlumCuspIso", n=100, seed=0)
>>> import numpy as np
>>> cat.n, f"{np.interp(0.25, truth['r'], truth['rho']):.3g} Msun/kpc^3 at 0.25 kpc"
(100, '1.64e+08 Msun/kpc^3 at 0.25 kpc')
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from .compare import compare  # noqa: E402  (eager: the name is also a submodule's)
from .result import Result, load_result  # noqa: E402

__all__ = ["__version__", "read_catalog", "draw_mock", "fit_flow", "fit_baseline", "compare", "Result",
           "load_result"]

#: Public names imported on first use (torch and emcee take seconds to import, scipy's
#: quadrature a fraction of one; the layers below stay importable on their own).
_LAZY = {"fit_flow": "dsphnf.flows", "fit_baseline": "dsphnf.baseline", "read_catalog": "dsphnf.catalog",
         "draw_mock": "dsphnf.mocks"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dsphnf' has no attribute {name!r}")

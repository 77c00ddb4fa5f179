"""Diagnostic of one single flow's Jeans read-out against a mock's truth (not a test, not a benchmark).

Trains member 0 of a single-flow fit (the settings of ``fit_flow(catalog)``:
isotropic, default steps) through :class:`~dsphnf.flows.train.Trainer`, and
for the untrained flow and the trained one prints the likelihood part of the
objective and each prior term [nats per star] (the positivity term split into
its four :func:`~dsphnf.flows.prior.density_conditions`), and writes a pickle
with the read-out (:func:`~dsphnf.flows.moments.flow_profiles`) on 61 radii
in 0.005-5 kpc, the speed-table values of g, q and the four conditions, and
the mock's truth table, for comparing nu, sigma_r, g = G M/(r sigma_r^2),
q = 4 pi G r^2 rho/sigma_r^2 with the truth.

Usage::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/diag_readout.py --mock PlumCoreIso --mock-seed 2 [--n 4000] \
        [--steps 1] [--seed 0] --out readout.pkl
"""
from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsphnf import draw_mock  # noqa: E402
from dsphnf.anisotropy import anisotropy_from, require_form  # noqa: E402
from dsphnf.flows import prior as P  # noqa: E402
from dsphnf.flows.cnf import FLOW_FORMS  # noqa: E402
from dsphnf.flows.fit import _prepare  # noqa: E402
from dsphnf.flows.fit_setup import FitSetup, executor_setting, member_settings, train_config_for  # noqa: E402
from dsphnf.flows.kde import bandwidths  # noqa: E402
from dsphnf.flows.losvd import velocity_table  # noqa: E402
from dsphnf.flows.member import _star_data, member_data, new_flow  # noqa: E402
from dsphnf.flows.moments import flow_profiles  # noqa: E402
from dsphnf.flows.objective import flow_loss  # noqa: E402
from dsphnf.flows.settings import FitOptions, FlowConfig  # noqa: E402
from dsphnf.flows.standardise import check_device  # noqa: E402
from dsphnf.flows.surface import radial_table  # noqa: E402
from dsphnf.flows.train import Trainer  # noqa: E402


def state(flow, data, trainer, settings, scales) -> dict:
    """Objective parts [nats per star], speed-table g, q and conditions, and the read-out of ``flow``."""
    pr = trainer._prior
    lo, hi = pr.log_range
    with torch.no_grad():
        table, vtable = radial_table(flow), velocity_table(flow)
        nll = float(flow_loss(flow, data, settings.train, None, 0, prior=None))
        rough = (P.roughness(table[0], table[1], lo, hi) + P.roughness(vtable[0], P.sigma_r2_table(vtable), lo, hi))
        x, g, q = P.jeans_positivity(table, vtable)
        xc, c = P.density_conditions(table, vtable)
        cond = [float(P._integral_inside(xc, torch.relu(-c[i]) ** 2, lo, hi)) / (2 * pr.positivity_tau**2) / pr.n_eff
                for i in range(4)]
        out = {"nll": nll, "roughness": float(rough) / (2 * pr.tau**2) / pr.n_eff,
               "hole": float(P.hole_penalty(table[0], table[1], lo, hi)) / (2 * pr.hole_tau**2) / pr.n_eff,
               "conditions": cond, "lnr_table": x.numpy(), "g": g.numpy(), "q": q.numpy(),
               "lnr_conditions": xc.numpy(), "c": c.numpy()}
    r = np.logspace(-2.3, 0.7, 61)
    out["profile"] = {k: np.asarray(v) for k, v in flow_profiles(flow, r, scales["L"], scales["V"]).items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mock", default="PlumCoreIso")
    ap.add_argument("--mock-seed", type=int, default=2)
    ap.add_argument("--n", type=int, default=1000, help="stars drawn")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0, help="fit seed")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    mock = draw_mock(args.mock, n=args.n, seed=args.mock_seed)
    setup = FitSetup(anisotropy=require_form(anisotropy_from("isotropic"), FLOW_FORMS, "the diagnostic"),
                     inner="free", ensemble=1, seed=args.seed, device=check_device("cpu"),
                     options=FitOptions(threads=1), flow=FlowConfig(velocity="elliptical"),
                     train=train_config_for(args.steps, None),
                     checkpoints=None, resume=False, progress=False,
                     executor=executor_setting("local", None, None, "cpu"), batched=None, foreground=None,
                     distance=None)
    stars = _prepare(mock.catalog, setup)
    settings = member_settings(setup)
    tr, _, scales, std = member_data(stars, settings, 0)
    h = bandwidths(std["obs"][tr], std["w"][tr], settings.bandwidth_factor)
    torch.manual_seed(settings.seed * 1009)  # as member 0 of fit_flow
    flow = new_flow(stars, settings, scales["L"])
    data = _star_data(std, settings, tr, h, scales)
    trainer = Trainer(flow, data, None, settings.train, seed=settings.seed * 7919, progress=False)
    out = {"scales": scales, "log_range": trainer._prior.log_range, "truth": mock.truth,
           "R": np.hypot(mock.catalog.x, mock.catalog.y), "start": state(flow, data, trainer, settings, scales)}
    trainer.run()
    out["fit"] = state(flow, data, trainer, settings, scales)
    out["convergence"] = trainer.convergence()
    with open(args.out, "wb") as fh:
        pickle.dump(out, fh)
    for k in ("start", "fit"):
        d = out[k]
        print(f"{k}: nll {d['nll']:.6f}, roughness {d['roughness']:.2e}, hole {d['hole']:.2e}, "
              f"conditions (g, q, 3g - q, s) {', '.join(f'{v:.2e}' for v in d['conditions'])} [nats/star]")
    print(f"L {scales['L']:.4f} kpc, V {scales['V']:.3f} km/s, prior range "
          f"{np.exp(out['log_range'][0]) * scales['L']:.4f}-{np.exp(out['log_range'][1]) * scales['L']:.1f} kpc")


if __name__ == "__main__":
    main()

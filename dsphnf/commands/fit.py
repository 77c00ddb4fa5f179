"""``dsphnf fit``: the equivariant-flow Jeans analysis of a star catalogue."""
from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path

import numpy as np

from ..catalog import read_catalog
from ..errors import FitError
from ..executor import ExecutorError, add_executor_arguments, executor_from_args

#: Flows of a ``dsphnf fit`` without --ensemble: enough for Student-t bands (benchmarks/RESULTS.md).
DEFAULT_ENSEMBLE = 8

HELP = "fit SO(3)-equivariant flows to (x, y, vz) and read off rho(r), M(r) with bands"

DESCRIPTION = """\
Model-independent spherical Jeans analysis (the method of Lim et al. 2025,
arXiv:2505.00763): an ensemble of rotation-equivariant continuous normalizing
flows is trained on the projected stars by maximum likelihood (the exact
Abel-projected density of the sky positions times the exact line-of-sight
velocity distribution, for a given or an inferred anisotropy); nu(r),
sigma_r(r) and beta(r) are
read off every flow and the Jeans equation gives M(r) and rho(r) by automatic
differentiation.  A catalogue without vz fits the positional flow alone and
writes nu(r).

Anisotropy: isotropic, constant:B, om:RA, cuddeford:B0,RA, baes:B0,BINF,RA,ETA
(RA in kpc) imposed exactly, or inferred with the flow: constant, om,
cuddeford, baes (parameters learned per flow) or free (a smooth beta(r)),
with a fourth-order Jeans prior; weakly constrained by 1000 stars (see
benchmarks/RESULTS.md).
Velocity family (--velocity): auto (default: mixed for --anisotropy free with
an even --ensemble, elliptical otherwise), elliptical (one speed map, beta by the
anisotropy layer), separable (radial and tangential speed maps learned
separately, so the radial and tangential velocity distributions have shapes
of their own; beta(r) comes with them; needs --anisotropy free; measured
better than the elliptical family on tangential and isotropic mocks, too
radial where beta changes sign: see benchmarks/RESULTS.md) or angular
(one speed map and a learned law of the velocity's angle to the radius at
each radius and speed, which holds constant-beta f(E) L^(-2 beta) models;
needs --anisotropy free) or mixed (members alternate elliptical and
separable, so the bands span both families' beta(r); an even --ensemble and
--anisotropy free).
Inner slope: free (data-driven), cored (flat core), cuspy (inner power law
with learned slope).

Ensemble: --ensemble K flows (default 8), each trained on its own bootstrap
resample of the stars and standardised by that resample's scales; their
spread gives the 68 % and 95 % bands.  --ensemble 1 trains one flow on all
stars and writes NaN band columns (one flow says nothing about its scatter).
With --warm-start N one flow is trained on all stars first and every member
starts from it for at most N L-BFGS steps (a k-step bootstrap, about 3x
cheaper for 8 flows; its bands' coverage over four isotropic models is in
benchmarks/RESULTS.md).  It needs a given anisotropy: with a learned one
(free, om, ...) the members stay near the first flow's beta and the bands
under-cover, so that combination is refused.

Steps: --steps N per flow; without --steps the default is 400 (120 when the
environment variable DSPHNF_FAST=1 is set).  Every flow trains on all its
stars for all its steps, with a smoothness prior on nu(r) and sigma_r(r) and
a one-sided prior that keeps the read-out physical (M >= 0, M(r) non-decreasing);
with --val-fraction F a fraction F of the stars is held out instead and each
flow stops early, but not before step min(200, N) (60 in fast mode), when
their loss stops improving.

Outputs in OUT/: profile.csv (r [kpc], nu [kpc^-3, one star], sigma_r [km/s],
beta, M [Msun] with its 68 % band M_lo/M_hi, rho [Msun/kpc^3] with 68 % and
95 % bands, then beta's 68/95 % bands and sigma_r, sigma_t [km/s, one tangential
component] with 68 % bands; positions only: r, nu with bands; the value is the mean over
the flows (geometric for positive quantities) and the bands are Student-t
bootstrap intervals around it, which need --ensemble 2 or more: with one
flow the band columns are NaN), profile_bands.csv (every quantity with every
band, and n_used: the flows whose read-out is physical at that radius, M > 0
and rho > 0, which are the ones used there), summary.json (method, source,
n_stars, settings, timings_s, diagnostics with every member's steps, losses
and scales, the read-out count (readout), for an inferred anisotropy where
the data constrain beta (beta_constrained: 68 % band of beta/(2 - beta)
narrower than 0.5 and >= 100 stars within a factor 2 in projected radius;
printed in plain words), versions, machine (the CPU: a fit repeats bit for bit
on one CPU only), and with --distance the
jfactor block: log10 J(0.5 deg) with 68 % and 95 % bands over the members,
with n_used and n_left_out: members unphysical anywhere on the grid are left
out), flows/ (trained weights), profiles.png, data_vs_model.png,
loss.png.  OUT is replaced atomically when the fit succeeds.  While training,
checkpoints are kept in OUT.checkpoints/ beside OUT (every finished flow in
OUT.checkpoints/members/, and with --executor local each flow's training
state); after an interruption, the same command with --resume keeps the
finished flows and continues the others; they are removed after a
successful run.  Where fewer than half of the flows are physical at a radius
inside the data's range, the fit stops with one line (exit 2) and writes
nothing.

Scale-out: --executor ray trains the flows in parallel on Ray (a local Ray
instance, or the cluster at --ray-address), at most --workers at once, with
results bit-identical to --executor local for the same seed (CPU only).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fit", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("catalog", metavar="STARS", help="star catalogue (.csv, .ecsv, .fits, .dat)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (replaced atomically)")
    p.add_argument("--anisotropy", default="isotropic", metavar="SPEC",
                   help="isotropic | constant:B | om:RA | cuddeford:B0,RA | baes:B0,BINF,RA,ETA, or inferred: "
                        "constant | om | cuddeford | baes | free (default isotropic)")
    p.add_argument("--inner", default="free", metavar="MODE", help="free | cored | cuspy (default free)")
    p.add_argument("--velocity", default="auto", metavar="FAMILY",
                   help="velocity family: auto (mixed with --anisotropy free and an even --ensemble, else "
                        "elliptical) | elliptical (one speed map, beta by the anisotropy layer) | separable "
                        "(radial and tangential speed maps learned separately) | angular (one speed map and a "
                        "learned angular law) | mixed (members alternate elliptical and separable; an even "
                        "--ensemble); separable, angular and mixed need --anisotropy free (default auto)")
    p.add_argument("--ensemble", type=int, default=DEFAULT_ENSEMBLE, metavar="K",
                   help=f"flows on bootstrap resamples, for the bands (default {DEFAULT_ENSEMBLE}; 1: no bands)")
    p.add_argument("--steps", type=int, default=None, metavar="N", help="training steps per flow (default 400)")
    p.add_argument("--batch", type=int, default=None, metavar="N",
                   help="stars per training step (default: all). For catalogues of many thousands of stars: "
                        "each step then sees N random stars and trains by Adam alone (the objective is "
                        "stochastic), and summary.json reports every flow's objective on all its stars "
                        "(convergence.full_objective)")
    p.add_argument("--nu-mean", default="none", choices=["none", "zhao"],
                   help="what the smoothness prior measures the roughness of ln nu from: none (ln nu itself; "
                        "default) | zhao (a Zhao profile fitted to the stars' projected radii: an unbiased "
                        "Plummer core, but a wider scatter of rho in the centre; see dsphnf.flows.nu_mean)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--val-fraction", type=float, default=0.0, metavar="F",
                   help="hold out this fraction of the stars for early stopping (default 0: none)")
    p.add_argument("--device", default="cpu", metavar="DEV", help="cpu | cuda (default cpu)")
    p.add_argument("--distance", type=float, default=None, metavar="KPC",
                   help="distance [kpc]: converts Walker-format catalogues and gives the J(0.5 deg) band")
    p.add_argument("--distance-err", type=float, default=None, metavar="KPC",
                   help="error of --distance [kpc]: each ensemble member gets its own distance drawn from "
                        "N(distance, err), so the bands include it (default: the distance is exact)")
    p.add_argument("--membership", default="weights", metavar="KIND",
                   help="weights: membership probabilities weight the stars (default) | mixture: every star "
                        "counts once and a broad Gaussian foreground in v_z is mixed into the likelihood, "
                        "its fraction learned per member")
    p.add_argument("--threads", type=int, default=None, metavar="T",
                   help="torch CPU threads (default: 1 for members trained one by one, the faster of 1 and 2 "
                        "by a short probe for an ensemble trained as one batch; the probe's choice depends on "
                        "the machine's load and the count changes the last digits, so give T for reruns that "
                        "are the same bit for bit)")
    p.add_argument("--members-per-batch", type=int, default=None, metavar="B",
                   help="most members trained together as one batch (default: the whole ensemble locally; on Ray "
                        "ceil(ensemble / workers), one batch per worker); a member's result depends on its batch "
                        "in the last digits, so give B for the same result on either executor")
    p.add_argument("--warm-start", type=int, default=0, metavar="N",
                   help="a k-step bootstrap: first train one flow on all stars, then start every ensemble member "
                        "from it and train at most N L-BFGS steps on its resample (a fraction of a flow's cost "
                        "each; default 0: every member trains from scratch; a given --anisotropy only; its "
                        "calibration: benchmarks/RESULTS.md, \"Warm-started members\")")
    p.add_argument("--centre", default="auto", metavar="C",
                   help="what an ensemble's value and bands are centred on: auto (default: all-stars with a given "
                        "--anisotropy, else members) | members (the members' mean, bands "
                        "t s sqrt(1 + 1/K)) | all-stars (one more flow trained on all stars, bands t s around it; "
                        "a given --anisotropy only; its calibration: benchmarks/RESULTS.md, \"Twenty mocks per "
                        "model for both centres\")")
    p.add_argument("--resume", action="store_true", help="continue from OUT.checkpoints/ of an interrupted run")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_executor_arguments(p, "flows of the ensemble")
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace):
    from ..anisotropy import parse_anisotropy, require_form
    from ..flows.cnf import FLOW_FORMS
    from ..flows.fit_setup import velocity_refusal
    from ..flows.field import INNER_MODES
    from ..flows.standardise import check_device

    if args.steps is not None and args.steps <= 0:
        raise FitError(f"--steps must be a positive integer, got {args.steps}")
    if args.ensemble < 1:
        raise FitError(f"--ensemble must be at least 1, got {args.ensemble}")
    if args.batch is not None and args.batch < 2:
        raise FitError(f"--batch must be at least 2 stars, got {args.batch}")
    if args.inner not in INNER_MODES:
        raise FitError(f"bad --inner {args.inner!r}: use free, cored or cuspy")
    if not 0.0 <= args.val_fraction < 0.9:
        raise FitError(f"--val-fraction must be in [0, 0.9), got {args.val_fraction}")
    if args.distance is not None and not args.distance > 0:
        raise FitError(f"--distance must be > 0 kpc, got {args.distance}")
    if args.distance_err is not None and (args.distance is None or not args.distance_err >= 0):
        raise FitError(f"--distance-err needs --distance and an error >= 0 kpc, got {args.distance_err}")
    if args.membership not in ("weights", "mixture"):
        raise FitError(f"bad --membership {args.membership!r}: use weights or mixture")
    if args.threads is not None and args.threads < 1:
        raise FitError(f"--threads must be at least 1, got {args.threads}")
    if args.members_per_batch is not None and args.members_per_batch < 1:
        raise FitError(f"--members-per-batch must be at least 1, got {args.members_per_batch}")
    if args.warm_start < 0:
        raise FitError(f"--warm-start must be at least 0 (0: off), got {args.warm_start}")
    args.anisotropy = require_form(parse_anisotropy(args.anisotropy), FLOW_FORMS, "dsphnf fit")
    why = velocity_refusal(args.velocity, args.anisotropy, args.ensemble)
    if why is not None:
        raise FitError(f"bad --velocity {args.velocity!r}: {why}")
    args.executor = executor_from_args(args)
    if args.executor.kind == "ray" and args.device.strip().lower().startswith("cuda"):
        raise ExecutorError("--device cuda with --executor ray is not supported yet: use --executor local on a GPU")
    check_device(args.device)


def _train_config(args: argparse.Namespace):
    """The TrainConfig the flags ask for; None (fit_flow's defaults, fast mode included) when none of them is set."""
    from ..flows import TrainConfig, default_steps

    if args.batch is None and args.nu_mean == "none":
        return None
    return TrainConfig(steps=default_steps(), batch=args.batch, nu_mean=args.nu_mean)


def run(args: argparse.Namespace) -> int:
    from ..flows import FitOptions, FlowConfig, fit_flow

    _check_args(args)
    out = Path(args.output)
    cat = read_catalog(args.catalog, distance=args.distance)
    cat, foreground = _membership(cat, args.membership)
    ck = out.with_name(out.name + ".checkpoints")
    if args.resume and not ck.exists():
        print(f"dsphnf fit: no checkpoints in {ck}; starting afresh", file=sys.stderr)
    from ..flows.ensemble import UnphysicalReadout

    try:
        res = fit_flow(
            cat, args.anisotropy, args.inner, ensemble=args.ensemble, steps=args.steps, seed=args.seed,
            distance=args.distance, device=args.device, progress=not args.no_progress, checkpoint_dir=ck,
            resume=args.resume, options=FitOptions(val_fraction=args.val_fraction, threads=args.threads or "auto",
                                                       members_per_batch=args.members_per_batch,
                                                       warm_start=args.warm_start, centre=args.centre),
            executor=args.executor, flow_config=FlowConfig(velocity=args.velocity),
            distance_err=args.distance_err, foreground=foreground,
            train_config=_train_config(args),
        )
    except UnphysicalReadout:  # nothing to resume: the same flows would give the same read-out
        shutil.rmtree(ck, ignore_errors=True)
        raise
    res.save(out, plots=not args.no_plots)
    shutil.rmtree(ck, ignore_errors=True)
    _report(res.summary)
    files = "profile.csv, profile_bands.csv, summary.json, flows/" + ("" if args.no_plots else ", *.png")
    print(f"wrote {out}/ ({files})")
    return 0


def _membership(cat, membership: str):
    """The stars and the foreground of ``--membership`` (None for weights).

    With a mixture every star counts once (the likelihood's foreground decides
    who is a member); how many stars had a membership probability below 1 is
    printed, so that nothing changes silently.
    """
    if membership != "mixture":
        return cat, None
    from dataclasses import replace

    from ..foreground import Foreground

    if cat.vz is None:
        raise FitError("--membership mixture needs line-of-sight velocities (the foreground is a Gaussian in v_z)")
    if cat.p_member is not None:
        n = int(np.sum(np.asarray(cat.p_member) < 1.0))
        print(f"dsphnf fit: --membership mixture: the membership probabilities of {n} of {cat.n} stars "
              f"are replaced by unit weights", file=sys.stderr)
        cat = replace(cat, p_member=None, meta=dict(cat.meta))
    return cat, Foreground.broad(np.asarray(cat.vz, float))


def _grid_note(grid: dict | None) -> str:
    """How the flows ran, for the report: Ray workers and flows kept from an interrupted run."""
    if not grid:
        return ""
    note = ""
    if grid["executor"] == "ray":
        note += f", summed over flows; {grid['wall_s']:.1f} s on Ray with {grid['workers_used']} worker(s)"
    if grid["n_resumed"]:
        note += f"; {grid['n_resumed']} of {grid['n_tasks']} flow(s) kept from the interrupted run"
    anchor, warm = grid.get("anchor"), grid.get("warm_start")
    if anchor:
        trained = (f"one flow trained on all stars ({anchor['info']['steps']} steps, {anchor['wall_s']:.1f} s"
                   + (", kept from the interrupted run" if anchor["resumed"] else "") + ")")
        note += (f"; every flow started from {trained} for at most {warm['steps']} L-BFGS steps" if warm
                 else f"; the value and bands centred on {trained}")
    return note


def _family_note(d: dict) -> str:
    """The members' velocity families, for stars with velocities: one name, or each family's count (mixed)."""
    if not d.get("kinematic"):
        return ""
    families = [m["velocity"] for m in d["members"]]
    counts = {f: families.count(f) for f in dict.fromkeys(families)}
    return "; velocity family " + (families[0] if len(counts) == 1
                                   else " + ".join(f"{n} {f}" for f, n in counts.items()))


def _report(s: dict) -> None:
    """Print the members' steps and losses, the timings, the bands, the read-out count and any J-factor."""
    from ..flows.beta_constraint import beta_constraint_note
    from ..flows.ensemble import centre_note, readout_note
    from ..jfactor import INNER_GAMMA_MAX, OUTER_GAMMA_MIN
    d, t = s["diagnostics"], s["timings_s"]
    steps = ", ".join(str(m["steps"]) for m in d["members"])
    print(f"fit: {s['n_stars']} stars, {len(d['members'])} flow(s) ({steps} steps{_family_note(d)}), "
          f"train loss {d['final_train_loss']:.4f}"
          + (f", validation {d['final_val_loss']:.4f}" if d["final_val_loss"] is not None else "")
          + f"; {t['total_s']:.1f} s (training {t['train_s']:.1f} s, read-out {t['readout_s']:.1f} s"
          + _grid_note(d.get("grid")) + ")")
    print(readout_note(d.get("readout")))
    if d.get("centre"):
        print(centre_note(d["centre"]))
    if d.get("beta_constrained"):
        print(beta_constraint_note(d["beta_constrained"]))
    if d.get("foreground"):
        fg = d["foreground"]
        print(f"foreground fraction {fg['fraction']:.3f} (per flow: "
              + ", ".join(f"{f:.3f}" for f in fg["member_fractions"]) + ")")
    if d.get("distance"):
        print("distance per flow [kpc]: " + ", ".join(f"{x:.1f}" for x in d["distance"]["member_distances_kpc"]))
    jf = s.get("jfactor")
    if jf is None:
        return
    n = jf["n_used"] + jf["n_left_out"]
    used = f"; from {jf['n_used']} of {n} flow(s)" + (" (the others' density not positive somewhere)"
                                                     if jf["n_left_out"] else "")
    capped = sum(g is not None and g > INNER_GAMMA_MAX for g in (m.get("j_inner_slope") for m in d["members"]))
    if capped:
        used += (f"; {capped} continued inwards of the grid as an r^-{INNER_GAMMA_MAX:g} cusp "
                 "(their fitted inner slope is steeper)")
    floored = sum(g is not None and g < OUTER_GAMMA_MIN for g in (m.get("j_outer_slope") for m in d["members"]))
    if floored:
        used += (f"; {floored} continued outwards of the grid as r^-{OUTER_GAMMA_MIN:g} "
                 "(their fitted outer slope is shallower)")
    if jf["n_used"] == 0:
        print(f"log10 J({jf['theta_deg']:g} deg): no flow has a finite J-factor{used}")
        return
    j, lo, hi = jf["log10_J"], jf["log10_J_lo"], jf["log10_J_hi"]
    band = f" +{hi - j:.2f} -{j - lo:.2f}" if math.isfinite(lo) else " (no band: one flow; use --ensemble 2 or more)"
    print(f"log10 J({jf['theta_deg']:g} deg) = {j:.2f}{band} [GeV^2 cm^-5] at {jf['distance_kpc']:g} kpc{used}")

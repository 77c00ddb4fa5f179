"""The halo and tracer grammars of ``dsphnf mock``, parsed once into typed objects.

Halo (densities in Msun/kpc^3, radii in kpc)
    ``nfw:RHO0,RS``; ``zhao:RHO0,RS,ALPHA,BETA,GAMMA``
    (rho = RHO0 x^-GAMMA (1 + x^ALPHA)^((GAMMA - BETA)/ALPHA), x = r/RS);
    ``burkert:RHO0,RS``; ``einasto:RHO_S,R_S,ALPHA``.
Tracer (radii in kpc; every component normalised to one star)
    ``plummer:A``; ``zhao:RS,ALPHA,BETA,GAMMA``; weighted sums such as
    ``0.3*plummer:0.15+0.7*plummer:0.6`` (weights are number fractions and
    must add up to 1).

Examples
--------
>>> parse_halo("nfw:1e7,0.5")
Zhao(rho0=10000000.0, rs=0.5, alpha=1.0, beta=3.0, gamma=1.0)
>>> w, comps = parse_tracer("0.3*plummer:0.15+0.7*plummer:0.6")
>>> w, [c.rs for c in comps]
((0.3, 0.7), [0.15, 0.6])
>>> parse_halo("nfw:1e7")
Traceback (most recent call last):
...
dsphnf.errors.DsphnfError: bad halo 'nfw:1e7': nfw takes 2 numbers; use nfw:RHO0,RS | zhao:RHO0,RS,ALPHA,BETA,GAMMA | burkert:RHO0,RS | einasto:RHO_S,R_S,ALPHA (Msun/kpc^3, kpc)
"""
from __future__ import annotations

import math

from .errors import DsphnfError
from .halos import Burkert, Einasto
from .profiles import Zhao, tracer_zhao

__all__ = ["parse_halo", "parse_tracer", "halo_spec", "tracer_spec", "HALO_GRAMMAR", "TRACER_GRAMMAR"]

HALO_GRAMMAR = ("nfw:RHO0,RS | zhao:RHO0,RS,ALPHA,BETA,GAMMA | burkert:RHO0,RS | einasto:RHO_S,R_S,ALPHA "
                "(Msun/kpc^3, kpc)")
TRACER_GRAMMAR = "plummer:A | zhao:RS,ALPHA,BETA,GAMMA (kpc), or a weighted sum W*SPEC+W*SPEC with weights adding to 1"

_HALO_ARITY = {"nfw": 2, "zhao": 5, "burkert": 2, "einasto": 3}
_TRACER_ARITY = {"plummer": 1, "zhao": 4}


def _numbers(text: str, arity: dict[str, int], what: str, grammar: str) -> tuple[str, list[float]]:
    family, sep, args = text.strip().lower().partition(":")
    family = family.strip()
    if family not in arity or not sep:
        raise DsphnfError(f"bad {what} {text.strip()!r}: use {grammar}")
    try:
        values = [float(v) for v in args.split(",")]
    except ValueError:
        values = []
    if len(values) != arity[family] or not all(math.isfinite(v) for v in values):
        raise DsphnfError(f"bad {what} {text.strip()!r}: {family} takes {arity[family]} numbers; use {grammar}")
    return family, values


def parse_halo(spec: str):
    """A halo spelling -> :class:`~dsphnf.profiles.Zhao`, :class:`~dsphnf.halos.Burkert` or :class:`~dsphnf.halos.Einasto`.

    Raises
    ------
    DsphnfError
        One line naming the spelling and the grammar or the violated limit.
    """
    family, v = _numbers(spec, _HALO_ARITY, "halo", HALO_GRAMMAR)
    if v[0] <= 0 or v[1] <= 0:
        raise DsphnfError(f"bad halo {spec!r}: density and scale radius must be > 0; use {HALO_GRAMMAR}")
    try:
        if family == "nfw":
            return Zhao(v[0], v[1], 1.0, 3.0, 1.0)
        if family == "burkert":
            return Burkert(v[0], v[1])
        if family == "einasto":
            return Einasto(*v)
        halo = Zhao(*v)
    except ValueError as exc:
        raise DsphnfError(f"bad halo {spec!r}: {exc}") from None
    if not (halo.gamma < 2.0 and halo.beta > 2.0):
        raise DsphnfError(f"bad halo {spec!r}: a finite potential needs GAMMA < 2 and BETA > 2")
    return halo


def _parse_component(text: str) -> Zhao:
    family, v = _numbers(text, _TRACER_ARITY, "tracer", TRACER_GRAMMAR)
    if v[0] <= 0:
        raise DsphnfError(f"bad tracer {text.strip()!r}: the scale radius must be > 0 kpc")
    if family == "plummer":
        return tracer_zhao(v[0], 0.0, 5.0, 2.0)
    rs, alpha, beta, gamma = v
    if not (alpha > 0 and beta > 3.0 and 0.0 <= gamma < 3.0):
        raise DsphnfError(f"bad tracer {text.strip()!r}: a finite number of stars needs ALPHA > 0, BETA > 3 and "
                          "0 <= GAMMA < 3")
    return tracer_zhao(rs, gamma, beta, alpha)


def parse_tracer(spec: str) -> tuple[tuple[float, ...], tuple[Zhao, ...]]:
    """A tracer spelling -> (number fractions, normalised Zhao components).

    Raises
    ------
    DsphnfError
        One line naming the spelling and the grammar, a bad weight or a sum of weights other than 1.
    """
    weights, comps = [], []
    for term in str(spec).split("+"):
        w_text, star, body = term.partition("*")
        if not star:
            w_text, body = "1", term
        try:
            w = float(w_text)
        except ValueError:
            raise DsphnfError(f"bad tracer {spec!r}: weight {w_text.strip()!r} is not a number; use {TRACER_GRAMMAR}") from None
        if not (math.isfinite(w) and 0 < w <= 1):
            raise DsphnfError(f"bad tracer {spec!r}: weights must be in (0, 1], got {w:g}")
        weights.append(w)
        comps.append(_parse_component(body))
    if abs(sum(weights) - 1.0) > 1e-6:
        raise DsphnfError(f"bad tracer {spec!r}: the weights add up to {sum(weights):g}, not 1")
    return tuple(weights), tuple(comps)


def halo_spec(halo) -> str:
    """The spelling of a halo in the grammar of :func:`parse_halo`."""
    if isinstance(halo, Burkert):
        return f"burkert:{halo.rho0:g},{halo.rs:g}"
    if isinstance(halo, Einasto):
        return f"einasto:{halo.rho_s:g},{halo.rs:g},{halo.alpha:g}"
    if (halo.alpha, halo.beta, halo.gamma) == (1.0, 3.0, 1.0):
        return f"nfw:{halo.rho0:g},{halo.rs:g}"
    return f"zhao:{halo.rho0:g},{halo.rs:g},{halo.alpha:g},{halo.beta:g},{halo.gamma:g}"


def tracer_spec(weights: tuple[float, ...], components: tuple[Zhao, ...]) -> str:
    """The spelling of a (mixture) tracer in the grammar of :func:`parse_tracer`."""
    parts = []
    for w, c in zip(weights, components):
        body = (f"plummer:{c.rs:g}" if (c.alpha, c.beta, c.gamma) == (2.0, 5.0, 0.0)
                else f"zhao:{c.rs:g},{c.alpha:g},{c.beta:g},{c.gamma:g}")
        parts.append(body if len(weights) == 1 else f"{w:g}*{body}")
    return "+".join(parts)

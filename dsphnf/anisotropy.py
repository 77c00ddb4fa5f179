"""Velocity-anisotropy models beta(r) = 1 - sigma_t^2 / (2 sigma_r^2), and their grammar.

Every model carries its own ``beta(r)`` (numpy), ``beta_torch(r)`` (a
differentiable torch tensor) and the Jeans integrating factor
``ln g(r) = Int 2 beta / r dr`` (up to a constant), so that the radial Jeans
equation reads d(g nu sigma_r^2)/dr = -g nu G M / r^2.  Radii are in kpc.

The one spelling shared by ``dsphnf fit``, ``dsphnf baseline``,
``dsphnf mock`` and the Python API is parsed once, at the boundary, by
:func:`parse_anisotropy`:

given (parameters fixed)
    ``isotropic``; ``constant:B`` (B < 1); ``om:RA`` (Osipkov-Merritt,
    RA > 0 kpc); ``cuddeford:B0,RA`` (beta = (B0 + r^2/RA^2)/(1 + r^2/RA^2),
    Cuddeford 1991); ``baes:B0,BINF,RA,ETA`` (beta = B0 + (BINF - B0) /
    (1 + (RA/r)^ETA), Baes & van Hese 2007).
inferred (parameters fitted to the data)
    ``constant``, ``om``, ``cuddeford``, ``baes`` (the family, its
    parameters learned) and ``free`` (beta(r) learned by the flow).

A method that does not support a form refuses it with one line
(:func:`require_form`).

Examples
--------
>>> a = parse_anisotropy("cuddeford:0.2,0.5")
>>> round(float(a.beta(0.5)), 3)
0.6
>>> parse_anisotropy("om")
Inferred(family='om')
>>> parse_anisotropy("om:-1")
Traceback (most recent call last):
...
dsphnf.errors.AnisotropyError: bad anisotropy 'om:-1': Osipkov-Merritt needs RA > 0 kpc
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar, Union

import numpy as np

from .errors import AnisotropyError

__all__ = [
    "Anisotropy", "Isotropic", "ConstantBeta", "OsipkovMerritt", "Cuddeford", "Baes", "CallableBeta",
    "Inferred", "AnisotropySpec", "parse_anisotropy", "anisotropy_from", "require_form", "GIVEN_FORMS", "INFERRED_FORMS",
    "GRAMMAR",
]

#: Families that can be given with their parameters.
GIVEN_FORMS = ("isotropic", "constant", "om", "cuddeford", "baes")
#: Families whose parameters (or, for ``free``, the whole beta(r)) are inferred.
INFERRED_FORMS = ("constant", "om", "cuddeford", "baes", "free")
#: The grammar in one line, quoted by every error message.
GRAMMAR = ("isotropic | constant:B | om:RA | cuddeford:B0,RA | baes:B0,BINF,RA,ETA "
           "(given; RA in kpc) or constant | om | cuddeford | baes | free (inferred)")


class Anisotropy:
    """Base class: a spherical anisotropy profile beta(r), r in kpc."""

    name: ClassVar[str] = "anisotropy"

    def beta(self, r: np.ndarray | float) -> np.ndarray:  # pragma: no cover - abstract
        """beta at radii ``r`` [kpc] (numpy, shape of ``r``)."""
        raise NotImplementedError

    def beta_torch(self, r):  # pragma: no cover - overridden where closed forms exist
        """beta at radii ``r`` [kpc] as a differentiable torch tensor."""
        return _NumpyBeta.apply(r, self.beta)

    def __call__(self, r: np.ndarray | float) -> np.ndarray:
        return self.beta(r)

    def log_g(self, r: np.ndarray | float) -> np.ndarray:
        """ln of the integrating factor, Int_1^r 2 beta(s)/s ds (r in kpc).

        Generic version (closed forms override it): Int_0^{ln r} 2 beta(e^x) dx
        by 10-point Gauss-Legendre on panels of width 0.5 in x = ln r.
        """
        r = np.asarray(r, dtype=float)
        x = np.log(r).ravel()
        if x.size == 0:
            return np.zeros(r.shape)
        nodes, weights = np.polynomial.legendre.leggauss(10)
        nodes, weights = 0.5 * (nodes + 1.0), 0.5 * weights
        width = 0.5
        k_lo = int(np.floor(min(0.0, x.min()) / width))
        k_hi = int(np.ceil(max(0.0, x.max()) / width))
        edges = width * np.arange(k_lo, k_hi + 1)
        f = lambda y: 2.0 * np.asarray(self.beta(np.exp(y)), dtype=float)  # noqa: E731
        panel = width * (f(edges[:-1, None] + width * nodes[None, :]) @ weights)
        cum = np.concatenate([[0.0], np.cumsum(panel)])
        cum -= cum[-k_lo]
        k = np.clip(np.floor(x / width).astype(int) - k_lo, 0, len(edges) - 2)
        dx = x - edges[k]
        part = dx * (f(edges[k, None] + dx[:, None] * nodes[None, :]) @ weights)
        return (cum[k] + part).reshape(r.shape)

    def spec(self) -> str:
        """The spelling of this model in the grammar of :func:`parse_anisotropy`."""
        return self.name

    @property
    def beta_centre(self) -> float:
        """beta(r -> 0), for the central-anisotropy limit of a distribution function."""
        return float(self.beta(1e-12))


def _r(r) -> np.ndarray:
    return np.asarray(r, dtype=float)


@dataclass(frozen=True)
class Isotropic(Anisotropy):
    """beta = 0 everywhere.

    >>> Isotropic().spec()
    'isotropic'
    """

    name: ClassVar[str] = "isotropic"

    def beta(self, r):
        return np.zeros_like(_r(r))

    def beta_torch(self, r):
        return r * 0.0

    def log_g(self, r):
        return np.zeros_like(_r(r))


@dataclass(frozen=True)
class ConstantBeta(Anisotropy):
    """Constant anisotropy beta0 < 1 (radial > 0, tangential < 0).

    >>> ConstantBeta(-0.5).spec()
    'constant:-0.5'
    """

    beta0: float = 0.0
    name: ClassVar[str] = "constant"

    def __post_init__(self) -> None:
        _check(self.beta0 < 1.0, self.spec(), "constant anisotropy needs B < 1")

    def beta(self, r):
        return np.full_like(_r(r), self.beta0)

    def beta_torch(self, r):
        return r * 0.0 + float(self.beta0)

    def log_g(self, r):
        return 2.0 * self.beta0 * np.log(_r(r))

    def spec(self) -> str:
        return f"constant:{self.beta0:g}"


@dataclass(frozen=True)
class Cuddeford(Anisotropy):
    """Cuddeford (1991) beta(r) = (b0 + r^2/r_a^2) / (1 + r^2/r_a^2); r_a in kpc.

    b0 = 0 is Osipkov-Merritt, r_a -> infinity constant beta = b0.

    >>> float(Cuddeford(-0.5, 1.0).beta(1.0))
    0.25
    """

    b0: float = 0.0
    ra: float = 1.0
    name: ClassVar[str] = "cuddeford"

    def __post_init__(self) -> None:
        _check(self.b0 < 1.0, self.spec(), "Cuddeford needs B0 < 1")
        _check(self.ra > 0, self.spec(), "Cuddeford needs RA > 0 kpc")

    def beta(self, r):
        x2 = (_r(r) / self.ra) ** 2
        return (self.b0 + x2) / (1.0 + x2)

    def beta_torch(self, r):
        x2 = (r / float(self.ra)) ** 2
        return (float(self.b0) + x2) / (1.0 + x2)

    def log_g(self, r):
        r = _r(r)
        return 2.0 * self.b0 * np.log(r) + (1.0 - self.b0) * np.log(r * r + self.ra**2)

    @property
    def beta_centre(self) -> float:
        return float(self.b0)

    def spec(self) -> str:
        return f"cuddeford:{self.b0:g},{self.ra:g}"


@dataclass(frozen=True)
class OsipkovMerritt(Cuddeford):
    """Osipkov-Merritt beta(r) = r^2 / (r^2 + r_a^2), anisotropy radius r_a [kpc].

    >>> OsipkovMerritt(0.5).spec()
    'om:0.5'
    """

    b0: float = 0.0
    ra: float = 1.0
    name: ClassVar[str] = "om"

    def __init__(self, ra: float = 1.0) -> None:
        object.__setattr__(self, "b0", 0.0)
        object.__setattr__(self, "ra", float(ra))
        _check(self.ra > 0, self.spec(), "Osipkov-Merritt needs RA > 0 kpc")

    def spec(self) -> str:
        return f"om:{self.ra:g}"


@dataclass(frozen=True)
class Baes(Anisotropy):
    """Baes & van Hese (2007) beta(r) = b0 + (binf - b0) / (1 + (r_a/r)^eta); r_a in kpc.

    The family GravSphere fits: beta -> b0 inside r_a, -> binf outside, the
    transition sharpness set by eta > 0.

    >>> float(Baes(0.0, 0.5, 1.0, 2.0).beta(1.0))
    0.25
    """

    b0: float = 0.0
    binf: float = 0.0
    ra: float = 1.0
    eta: float = 2.0
    name: ClassVar[str] = "baes"

    def __post_init__(self) -> None:
        _check(self.b0 < 1.0 and self.binf < 1.0, self.spec(), "Baes needs B0 < 1 and BINF < 1")
        _check(self.ra > 0, self.spec(), "Baes needs RA > 0 kpc")
        _check(self.eta > 0, self.spec(), "Baes needs ETA > 0")

    def beta(self, r):
        y = (_r(r) / self.ra) ** self.eta
        return self.b0 + (self.binf - self.b0) * y / (1.0 + y)

    def beta_torch(self, r):
        y = (r / float(self.ra)) ** float(self.eta)
        return float(self.b0) + float(self.binf - self.b0) * y / (1.0 + y)

    def log_g(self, r):
        r = _r(r)
        return 2.0 * self.b0 * np.log(r) + 2.0 * (self.binf - self.b0) / self.eta * np.log1p(
            (r / self.ra) ** self.eta)

    @property
    def beta_centre(self) -> float:
        return float(self.b0)

    def spec(self) -> str:
        return f"baes:{self.b0:g},{self.binf:g},{self.ra:g},{self.eta:g}"


class CallableBeta(Anisotropy):
    """Any user function beta(r) (vectorised over r in kpc, values < 1); Python API only.

    >>> float(CallableBeta(lambda r: 0.1 * r).beta(2.0))
    0.2
    """

    name: ClassVar[str] = "callable"

    def __init__(self, func: Callable[[np.ndarray], np.ndarray]) -> None:
        self.func = func

    def beta(self, r):
        return np.asarray(self.func(_r(r)), dtype=float)


@dataclass(frozen=True)
class Inferred:
    """An anisotropy whose parameters (``free``: the whole beta(r)) are fitted to the data.

    >>> Inferred("baes").spec()
    'baes'
    """

    family: str

    def __post_init__(self) -> None:
        if self.family not in INFERRED_FORMS:
            raise AnisotropyError(f"bad anisotropy {self.family!r}: use {GRAMMAR}")

    def spec(self) -> str:
        return self.family


#: What the methods take: a given model or a family to infer.
AnisotropySpec = Union[Anisotropy, Inferred]


def _check(ok: bool, spec: str, why: str) -> None:
    if not ok:
        raise AnisotropyError(f"bad anisotropy {spec!r}: {why}")


_ARITY = {"constant": 1, "om": 1, "cuddeford": 2, "baes": 4}
_ALIASES = {"iso": "isotropic", "const": "constant", "beta": "constant", "osipkov-merritt": "om"}


def parse_anisotropy(spec: str) -> AnisotropySpec:
    """Parse the anisotropy grammar (see the module docstring) into a model or :class:`Inferred`.

    Parameters
    ----------
    spec : str
        E.g. ``"isotropic"``, ``"constant:-0.5"``, ``"om:0.3"``,
        ``"cuddeford:0.1,0.5"``, ``"baes:0,0.5,0.3,2"``, ``"om"``, ``"free"``.

    Raises
    ------
    AnisotropyError
        One line naming the bad spelling and the grammar or the violated limit.
    """
    text = str(spec).strip().lower()
    family, sep, args = text.partition(":")
    family = _ALIASES.get(family, family)
    if family == "isotropic" and not sep:
        return Isotropic()
    if not sep:
        if family in INFERRED_FORMS:
            return Inferred(family)
        raise AnisotropyError(f"bad anisotropy {spec!r}: use {GRAMMAR}")
    if family not in _ARITY:
        raise AnisotropyError(f"bad anisotropy {spec!r}: use {GRAMMAR}")
    try:
        values = [float(v) for v in args.split(",")]
    except ValueError:
        values = []
    if len(values) != _ARITY[family] or not all(math.isfinite(v) for v in values):
        raise AnisotropyError(f"bad anisotropy {spec!r}: {family} takes {_ARITY[family]} number(s); use {GRAMMAR}")
    if family == "constant":
        return ConstantBeta(values[0])
    if family == "om":
        return OsipkovMerritt(values[0])
    if family == "cuddeford":
        return Cuddeford(*values)
    return Baes(*values)


def anisotropy_from(value: "str | AnisotropySpec | Callable | None") -> AnisotropySpec:
    """The boundary of the Python API: a spelling, a model, a callable beta(r [kpc]) or None (isotropic).

    Public entry points (``fit_flow``, ``fit_baseline``, ``draw_mock``) call
    this once; everything behind them takes the parsed object.

    >>> anisotropy_from(None)
    Isotropic()
    >>> anisotropy_from("constant:0.25")
    ConstantBeta(beta0=0.25)
    """
    if value is None:
        return Isotropic()
    if isinstance(value, (Anisotropy, Inferred)):
        return value
    if isinstance(value, str):
        return parse_anisotropy(value)
    if callable(value):
        return CallableBeta(value)
    raise AnisotropyError(f"bad anisotropy of type {type(value).__name__}: use {GRAMMAR}")


def require_form(anisotropy: AnisotropySpec, supported: tuple[str, ...], who: str) -> AnisotropySpec:
    """Return ``anisotropy`` if ``who`` supports its form, else raise one line saying so.

    ``supported`` names forms as ``"given:FAMILY"`` / ``"inferred:FAMILY"``
    (``"given:*"`` accepts every given model).

    >>> require_form(Inferred("baes"), ("given:*", "inferred:free"), "dsphnf fit")
    Traceback (most recent call last):
    ...
    dsphnf.errors.AnisotropyError: dsphnf fit does not support the inferred anisotropy 'baes' yet; it takes a given model or free
    """
    if isinstance(anisotropy, Inferred):
        key, kind = f"inferred:{anisotropy.family}", "inferred"
    else:
        key, kind = f"given:{anisotropy.name}", "given"
    if key in supported or f"{kind}:*" in supported:
        return anisotropy
    return _refuse(anisotropy, supported, who, kind)


def _refuse(anisotropy: AnisotropySpec, supported: tuple[str, ...], who: str, kind: str):
    words = []
    if "given:*" in supported:
        words.append("a given model")
    words += [f"given {s.split(':')[1]}" for s in supported if s.startswith("given:") and s != "given:*"]
    words += [s.split(":")[1] for s in supported if s.startswith("inferred:")]
    takes = ", ".join(words[:-1]) + (" or " if len(words) > 1 else "") + words[-1]
    raise AnisotropyError(f"{who} does not support the {kind} anisotropy {anisotropy.spec()!r} yet; it takes {takes}")


def _numpy_beta_function():
    import torch

    class NumpyBeta(torch.autograd.Function):
        """beta(r) from a numpy function, with a central-difference derivative."""

        @staticmethod
        def forward(ctx, r, func):  # type: ignore[override]
            rn = r.detach().cpu().double().numpy()
            h = 1e-5 * np.maximum(np.abs(rn), 1e-3)
            d = (func(rn + h) - func(rn - h)) / (2 * h)
            ctx.save_for_backward(torch.as_tensor(d, dtype=r.dtype, device=r.device))
            return torch.as_tensor(np.asarray(func(rn), dtype=float), dtype=r.dtype, device=r.device)

        @staticmethod
        def backward(ctx, grad):  # type: ignore[override]
            (d,) = ctx.saved_tensors
            return grad * d, None

    return NumpyBeta


class _LazyNumpyBeta:
    """Builds the torch autograd function on first use (numpy users need no torch)."""

    fn = None

    def apply(self, r, func):
        if self.fn is None:
            self.fn = _numpy_beta_function()
        return self.fn.apply(r, func)


_NumpyBeta = _LazyNumpyBeta()

"""The anisotropy grammar and models: closed forms against brute force, one-line errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dsphnf.anisotropy import (
    GIVEN_FORMS, Anisotropy, Baes, CallableBeta, ConstantBeta, Cuddeford, Inferred, Isotropic, OsipkovMerritt,
    anisotropy_from, parse_anisotropy, require_form,
)
from dsphnf.errors import AnisotropyError

MODELS = [Isotropic(), ConstantBeta(-0.5), ConstantBeta(0.3), OsipkovMerritt(0.4), Cuddeford(-0.3, 0.25),
          Cuddeford(0.5, 2.0), Baes(-0.2, 0.6, 0.3, 1.5), Baes(0.4, -0.5, 1.0, 4.0)]
R = np.geomspace(1e-3, 30.0, 41)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.spec())
def test_spec_round_trips(model):
    assert parse_anisotropy(model.spec()) == model


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.spec())
def test_closed_form_integrating_factor_matches_quadrature(model):
    """ln g(r) - ln g(1) equals Int_1^r 2 beta / s ds done by the generic quadrature."""
    generic = Anisotropy.log_g(model, R)
    closed = model.log_g(R) - model.log_g(np.array(1.0))
    np.testing.assert_allclose(closed, generic, atol=1e-10)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.spec())
def test_torch_beta_equals_numpy_beta_with_gradient(model):
    r = torch.tensor(R, dtype=torch.float64, requires_grad=True)
    b = model.beta_torch(r)
    np.testing.assert_allclose(b.detach().numpy(), model.beta(R), rtol=1e-13, atol=1e-15)
    (grad,) = torch.autograd.grad(b.sum(), r)
    h = 1e-6 * R
    np.testing.assert_allclose(grad.numpy(), (model.beta(R + h) - model.beta(R - h)) / (2 * h), rtol=1e-5, atol=1e-7)


def test_families_reduce_to_each_other():
    np.testing.assert_allclose(Cuddeford(0.0, 0.7).beta(R), OsipkovMerritt(0.7).beta(R))
    np.testing.assert_allclose(Cuddeford(0.3, 1e8).beta(R), 0.3, atol=1e-12)
    np.testing.assert_allclose(Baes(0.0, 1.0 - 1e-15, 0.7, 2.0).beta(R), OsipkovMerritt(0.7).beta(R), atol=1e-12)
    assert Cuddeford(-0.4, 1.0).beta_centre == -0.4 and OsipkovMerritt(1.0).beta_centre == 0.0


def test_callable_beta_goes_through_torch_with_a_numerical_derivative():
    model = CallableBeta(lambda r: 0.5 * r / (r + 0.5))
    r = torch.tensor([0.1, 1.0], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(model.beta_torch(r).sum(), r)
    np.testing.assert_allclose(grad.numpy(), 0.25 / (r.detach().numpy() + 0.5) ** 2, rtol=1e-6)


@pytest.mark.parametrize("family", ["constant", "om", "cuddeford", "baes", "free"])
def test_bare_family_is_inferred(family):
    assert parse_anisotropy(family) == Inferred(family)


@pytest.mark.parametrize("spec, message", [
    ("radial", "use isotropic"), ("om:", "1 number"), ("om:0.3,1", "1 number"), ("cuddeford:0.1", "2 number"),
    ("constant:1", "B < 1"), ("om:0", "RA > 0"), ("baes:0,0.5,1,-2", "ETA > 0"), ("constant:nan", "1 number"),
    ("isotropic:0.2", "use isotropic"),
])
def test_malformed_specs_are_one_line_errors(spec, message):
    with pytest.raises(AnisotropyError) as err:
        parse_anisotropy(spec)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_every_given_form_parses():
    for spec in ("isotropic", "constant:0.1", "om:1", "cuddeford:0.1,1", "baes:0,0.2,1,2"):
        assert parse_anisotropy(spec).name in GIVEN_FORMS


def test_require_form_names_what_a_method_takes():
    assert require_form(OsipkovMerritt(1.0), ("given:om",), "x") == OsipkovMerritt(1.0)
    with pytest.raises(AnisotropyError, match="x does not support the given anisotropy 'baes:0,0.5,1,2' yet; "
                                              "it takes given isotropic or om"):
        require_form(Baes(0, 0.5, 1, 2), ("given:isotropic", "inferred:om"), "x")


def test_api_boundary():
    assert anisotropy_from(None) == Isotropic()
    assert anisotropy_from("om:0.5") == OsipkovMerritt(0.5)
    assert isinstance(anisotropy_from(lambda r: 0 * r), CallableBeta)
    with pytest.raises(AnisotropyError):
        anisotropy_from(3.0)

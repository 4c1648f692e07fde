"""Algebraic claims of the thread as property tests (hypothesis) and ea.properties reports."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import embalg as ea

from embalg_testing import make_vectors

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def operands(draw, k=3):
    n = draw(st.integers(1, 12))
    d = draw(st.sampled_from([2, 3, 16, 384, 1536]))
    seed = draw(st.integers(0, 2**31 - 1))
    cone = draw(st.sampled_from([0.0, 1.0, 3.0]))
    return [make_vectors(n, d, seed=seed + i, cone=cone) for i in range(k)]


def cos_dist(a, b):
    return 1.0 - ea.cosine(a, b)


@SETTINGS
@given(operands(2), st.sampled_from(["numpy", "numba"]))
def test_commutativity_is_exact(xy, backend):
    x, y = xy
    for f in (ea.hadamard, ea.nsum, ea.geomean):
        np.testing.assert_array_equal(f(x, y, backend=backend), f(y, x, backend=backend))
    np.testing.assert_array_equal(ea.geomean(x, y, variant="agree", on_zero="zero", backend=backend),
                                  ea.geomean(y, x, variant="agree", on_zero="zero", backend=backend))


@SETTINGS
@given(operands(3), st.sampled_from(["numpy", "numba"]))
def test_normalized_hadamard_is_associative_in_float64(xyz, backend):
    x, y, z = xyz
    lhs = ea.hadamard(ea.hadamard(x, y, backend=backend), z, backend=backend)
    rhs = ea.hadamard(x, ea.hadamard(y, z, backend=backend), backend=backend)
    assert np.max(np.abs(cos_dist(lhs, rhs))) <= 1e-9


@SETTINGS
@given(operands(2), st.sampled_from([1e-6, 1e-3, 1e-2]), st.sampled_from(["numpy", "numba"]))
def test_division_undoes_raw_product(xy, eps, backend):
    x, y = xy
    back = ea.hadamard_div(ea.hadamard(x, y, normalize=False, backend=backend), y, eps=eps,
                           normalize=False, backend=backend)
    ok = np.abs(y) >= eps
    np.testing.assert_allclose(back[ok], x[ok], rtol=1e-12, atol=0)
    assert np.isfinite(back).all()


def test_nsum_is_not_associative_and_report_says_so():
    x, y, z = (make_vectors(200, 384, seed=s, cone=2.0) for s in range(3))
    r = ea.properties("nsum", x, y, z)
    s = r.summary
    assert s["commutativity"]["max"] <= 1e-15
    assert s["associativity"]["max"] > 1e-3  # (x+y)/|x+y| + z  !=  x + (y+z)/|y+z|
    assert s["identity"] is None and "no identity" in r.notes["identity"]


def test_properties_hadamard_and_division():
    x, y, z = (make_vectors(300, 1536, seed=s, cone=3.0) for s in range(3))
    s = ea.properties("hadamard", x, y, z, eps=1e-12).summary
    assert s["associativity"]["max"] < 1e-12
    assert s["identity"]["max"] < 1e-12
    assert s["inverse"]["max"] < 1e-12
    # with the default clamp, the few components with |y| < 1e-6 cannot be undone: measured, not hidden
    clamped = ea.properties("hadamard", x, y, z).summary["inverse"]
    assert clamped["q50"] < 1e-12 and clamped["max"] > 1e-6
    d = ea.properties("hadamard_div", x, y, z, eps=1e-12).summary
    assert d["commutativity"]["mean"] > 0.5  # x / y is far from y / x
    assert d["inverse"]["max"] < 1e-12


def test_closure_measures_leaving_the_cone():
    """The thread's extreme example: product with the all-negative direction lands 180 degrees away."""
    x = make_vectors(100, 1536, seed=1, cone=3.0)
    y = make_vectors(100, 1536, seed=2, cone=3.0)
    neg = np.full(1536, -1.0 / np.sqrt(1536))
    flipped = ea.hadamard(x, neg)
    np.testing.assert_allclose(ea.cosine(flipped, x), -1.0, atol=1e-12)
    r = ea.properties("hadamard", x, np.broadcast_to(neg, x.shape), y, reference=x)
    assert r.closure["fraction_outside_cone"] == 1.0
    inside = ea.properties("nsum", x, y, x, reference=np.concatenate([x, y]))
    assert inside.closure["fraction_outside_cone"] == 0.0  # a sum of cone vectors stays in the cone
    assert set(inside.to_dict()) >= {"op", "commutativity", "associativity", "identity", "inverse", "closure"}


def test_properties_errors():
    x = make_vectors(5, 8, seed=1)
    with pytest.raises(ValueError, match="properties needs an operator name"):
        ea.properties(lambda a, b: a, x, x, x)
    y = make_vectors(5, 8, seed=2)
    with pytest.raises(ValueError, match="reference has d = 4"):
        ea.properties("nsum", x, y, x, reference=np.ones((3, 4)))

"""Minimal plane rotations: properties (hypothesis), edge cases, errors, backends vs the reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

import embalg as ea
from embalg.kernels import rotation_numpy as ref
from embalg.plane_rotation import AS_MATRIX_MAX_DIM, Rotation

BACKENDS = ["numpy", "numba"]
#: tolerance of a rotated float32/float64 result relative to the input norm
TOL = {np.float32: 2e-6, np.float64: 1e-12}


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def cone(n, d, spread, seed):
    """Unit vectors around a common direction (anisotropic, like real embeddings)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * spread + np.ones(d) / np.sqrt(d)
    return unit(x)


def dense_matrix(a, b):
    """Independent float64 oracle: I + (cos-1)(uu^T + ww^T) + sin (w u^T - u w^T)."""
    a, b = unit(a), unit(b)
    c = a @ b
    r = b - c * a
    w = r / np.linalg.norm(r)
    t = np.arctan2(np.linalg.norm(r), c)
    return (np.eye(len(a)) + (np.cos(t) - 1) * (np.outer(a, a) + np.outer(w, w))
            + np.sin(t) * (np.outer(w, a) - np.outer(a, w)))


finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@st.composite
def vector_pairs(draw):
    d = draw(st.integers(2, 40))
    v0 = draw(arrays(np.float64, d, elements=finite))
    v1 = draw(arrays(np.float64, d, elements=finite))
    x = draw(arrays(np.float64, (3, d), elements=finite))
    from hypothesis import assume
    assume(np.linalg.norm(v0) > 1e-3 and np.linalg.norm(v1) > 1e-3)
    return v0, v1, x


@settings(max_examples=150, deadline=None)
@given(vector_pairs())
def test_properties_hypothesis(pair):
    v0, v1, x = pair
    r = ea.rotation(v0, v1, backend="numpy")
    scale = 1 + np.abs(x).max()
    # maps v0 to v1 (as directions) and keeps the norm
    np.testing.assert_allclose(unit(r.apply(v0)), unit(v1), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(r.apply(v0)), np.linalg.norm(v0), rtol=1e-12)
    # preserves norms and inner products
    y = r.apply(x)
    np.testing.assert_allclose(y @ y.T, x @ x.T, atol=1e-12 * scale * scale)
    # the inverse undoes it, and maps v1 back to v0
    np.testing.assert_allclose(r.inv().apply(y), x, atol=1e-12 * scale)
    np.testing.assert_allclose(unit(r.inv().apply(v1)), unit(v0), atol=1e-12)
    # as_matrix agrees with apply and is orthogonal
    M = r.as_matrix()
    np.testing.assert_allclose(x @ M.T, y, atol=1e-12 * scale)
    np.testing.assert_allclose(M @ M.T, np.eye(len(v0)), atol=1e-12)
    # acts only in the plane: the component orthogonal to span{v0, v1} is unchanged
    # (checked where the plane is well defined; (anti)parallel pairs have their own tests)
    a, b = unit(v0), unit(v1)
    if np.linalg.norm(b - (a @ b) * a) > 1e-6:
        Q, _ = np.linalg.qr(np.stack([v0, v1], axis=1))
        perp = x - (x @ Q) @ Q.T
        np.testing.assert_allclose(r.apply(perp), perp, atol=1e-9 * scale)
    assert 0.0 <= float(r.angle) <= np.pi


@settings(max_examples=60, deadline=None)
@given(vector_pairs(), vector_pairs())
def test_composition_is_sequential_application(p1, p2):
    d = min(len(p1[0]), len(p2[0]))
    a0, a1, x = p1[0][:d], p1[1][:d], p1[2][:, :d]
    b0, b1 = p2[0][:d], p2[1][:d]
    from hypothesis import assume
    assume(min(map(np.linalg.norm, (a0, a1, b0, b1))) > 1e-3)
    r1 = ea.rotation(a0, a1)
    r2 = ea.rotation(b0, b1)
    both = r2 * r1
    scale = 1 + np.abs(x).max()
    np.testing.assert_allclose(both.apply(x), r2.apply(r1.apply(x)), atol=1e-12 * scale)
    np.testing.assert_allclose(both.as_matrix(), r2.as_matrix() @ r1.as_matrix(), atol=1e-12)
    np.testing.assert_allclose(both.inv().apply(both.apply(x)), x, atol=1e-12 * scale)
    assert both.n_stages == 2 and r2.compose(r1).n_stages == 2


def test_matches_dense_oracle(backend):
    rng = np.random.default_rng(3)
    for d in (2, 3, 7, 64):
        v0, v1 = rng.standard_normal((2, d))
        r = ea.rotation(v0, v1, backend=backend)
        np.testing.assert_allclose(r.as_matrix(), dense_matrix(v0, v1), atol=1e-13)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 1001])
@pytest.mark.parametrize("d", [2, 3, 127, 128, 129])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_backend_matches_reference(backend, n, d, dtype):
    """Batched build and apply on fresh random and anisotropic inputs vs the float64 reference."""
    rng = np.random.default_rng(n * 1000 + d)
    v0 = rng.standard_normal((n, d))
    v1 = cone(n, d, 0.3, seed=n + d) if n else np.zeros((0, d))
    u, w, cm1, s = ref.plane_from_pairs(v0.astype(np.float64), v1.astype(np.float64))
    r = ea.rotation(v0.astype(dtype), v1.astype(dtype), backend=backend)
    x = rng.standard_normal((n, d)).astype(dtype)
    got = r.apply(x, backend=backend)
    want = np.empty((n, d))
    ref.apply_plane(x.astype(np.float64), u, w, cm1, s, want)
    cdt = np.float32 if dtype == np.float16 else dtype
    assert got.dtype == cdt and got.shape == (n, d)
    # the plane is built in float64 from the (rounded) inputs, so compare against
    # the reference on those same inputs
    u2, w2, cm2, s2 = ref.plane_from_pairs(v0.astype(dtype).astype(np.float64),
                                           v1.astype(dtype).astype(np.float64))
    want2 = np.empty((n, d))
    ref.apply_plane(x.astype(np.float64), u2, w2, cm2, s2, want2)
    tol = TOL[cdt] * (1 + np.abs(want2).max(initial=0)) * (4 if cdt == np.float32 else 1)
    np.testing.assert_allclose(got, want2, atol=tol)
    if dtype == np.float64:
        np.testing.assert_allclose(got, want, atol=tol)


def test_numba_plane_matches_numpy_plane():
    from embalg.kernels import rotation_numba as nbk
    rng = np.random.default_rng(5)
    v0 = np.concatenate([rng.standard_normal((50, 33)), np.eye(33)[:3], np.eye(33)[:3]])
    v1 = np.concatenate([cone(50, 33, 0.2, 1), np.eye(33)[:3], -np.eye(33)[:3]])
    for a, b in zip(ref.plane_from_pairs(v0, v1), nbk.plane_from_pairs(v0, v1)):
        np.testing.assert_allclose(a, b, atol=1e-14)


def test_single_rotation_broadcasts_over_rows(backend):
    rng = np.random.default_rng(6)
    v0, v1 = rng.standard_normal((2, 16))
    x = rng.standard_normal((40, 16))
    r = ea.rotation(v0, v1, backend=backend)
    y = r.apply(x)
    assert y.shape == (40, 16)
    np.testing.assert_allclose(y, x @ dense_matrix(v0, v1).T, atol=1e-12)
    assert r.apply(x[0]).shape == (16,)
    assert r.angle.shape == ()


def test_batch_applies_row_by_row(backend):
    rng = np.random.default_rng(7)
    v0, v1, x = rng.standard_normal((3, 9, 12))
    r = ea.rotation(v0, v1, backend=backend)
    assert len(r) == 9 and r.angle.shape == (9,)
    y = r.apply(x)
    for i in range(9):
        np.testing.assert_allclose(y[i], dense_matrix(v0[i], v1[i]) @ x[i], atol=1e-12)
        np.testing.assert_allclose(r[i].apply(x[i]), y[i], atol=1e-12)
    # one vector, every rotation
    y1 = r.apply(x[0])
    assert y1.shape == (9, 12)
    np.testing.assert_allclose(y1[3], dense_matrix(v0[3], v1[3]) @ x[0], atol=1e-12)
    # a batch of mats agrees
    np.testing.assert_allclose(np.einsum("nij,nj->ni", r.as_matrix(), x), y, atol=1e-12)
    # one v0, many v1 broadcasts to a batch
    rb = ea.rotation(v0[0], v1)
    assert len(rb) == 9
    np.testing.assert_allclose(unit(rb.apply(v0[0])), unit(v1), atol=1e-12)


def test_batch_composition_broadcasts_single():
    rng = np.random.default_rng(8)
    v0, v1, x = rng.standard_normal((3, 5, 6))
    batch = ea.rotation(v0, v1)
    one = ea.rotation(v1[0], v0[2])
    comp = one * batch
    assert len(comp) == 5
    np.testing.assert_allclose(comp.apply(x), one.apply(batch.apply(x)), atol=1e-12)
    np.testing.assert_allclose(comp.as_matrix(), one.as_matrix() @ batch.as_matrix(), atol=1e-12)
    with pytest.raises(ValueError, match="composition"):
        comp.angle
    with pytest.raises(ValueError, match="do not broadcast"):
        batch * ea.rotation(v0[:3], v1[:3])
    with pytest.raises(ValueError, match="dimension mismatch"):
        batch * ea.rotation(v0[0, :4], v1[0, :4])
    with pytest.raises(TypeError):
        batch.compose(np.eye(6))


@pytest.mark.parametrize("d", [2, 3, 5, 384])
def test_antipodal_maps_exactly(backend, d):
    rng = np.random.default_rng(d)
    a = rng.standard_normal(d)
    a[d // 2] = 1e-3                      # the smallest |a_k|: the documented plane axis
    r = ea.rotation(a, -2.5 * a, backend=backend)
    np.testing.assert_allclose(r.apply(a), -a, atol=1e-12 * np.abs(a).max())
    assert float(r.angle) == pytest.approx(np.pi, abs=1e-15)
    u, w = r.plane
    assert abs(u @ w) < 1e-15 and np.linalg.norm(w) == pytest.approx(1, abs=1e-15)
    # documented choice: w lies in span{a, e_k} with k = argmin |a_k|
    e = np.zeros(d)
    e[d // 2] = 1
    Q, _ = np.linalg.qr(np.stack([a, e], axis=1))
    np.testing.assert_allclose(Q @ (Q.T @ w), w, atol=1e-14)
    x = rng.standard_normal((4, d))
    np.testing.assert_allclose(np.linalg.norm(r.apply(x), axis=1), np.linalg.norm(x, axis=1), rtol=1e-13)
    np.testing.assert_allclose(r.inv().apply(r.apply(x)), x, atol=1e-13)


def test_parallel_is_identity(backend):
    rng = np.random.default_rng(9)
    a = rng.standard_normal((3, 10))
    r = ea.rotation(a, 3.0 * a, backend=backend)
    x = rng.standard_normal((3, 10))
    np.testing.assert_array_equal(r.apply(x), x)
    np.testing.assert_array_equal(r.angle, 0.0)


def test_near_antipodal_and_near_parallel_are_accurate(backend):
    rng = np.random.default_rng(10)
    a = unit(rng.standard_normal(50))
    for eps in (1e-6, 1e-9, 1e-13):
        for sign in (1.0, -1.0):
            b = unit(sign * a + eps * unit(rng.standard_normal(50)))
            r = ea.rotation(a, b, backend=backend)
            np.testing.assert_allclose(r.apply(a), b, atol=1e-12)
            M = r.as_matrix()
            np.testing.assert_allclose(M @ M.T, np.eye(50), atol=1e-12)


def test_float32_accuracy_stated(backend):
    """float32 in, float32 out: rotated rows within 2e-6 (relative) of the float64 answer."""
    v = cone(2000, 384, 0.5, seed=11).astype(np.float32)
    r = ea.rotation(v[:1000], v[1000:], backend=backend)
    y = r.apply(v[:1000])
    assert y.dtype == np.float32
    exact = ea.rotation(v[:1000].astype(np.float64), v[1000:].astype(np.float64)).apply(
        v[:1000].astype(np.float64))
    assert np.abs(y - exact).max() < 2e-6


def test_out_and_in_place(backend):
    rng = np.random.default_rng(12)
    v0, v1 = rng.standard_normal((2, 8))
    x = rng.standard_normal((5, 8))
    r = ea.rotation(v0, v1)
    want = r.apply(x)
    out = np.empty_like(x)
    assert r.apply(x, out=out, backend=backend) is out
    np.testing.assert_allclose(out, want, atol=1e-14)
    x2 = x.copy()
    r.apply(x2, out=x2, backend=backend)
    np.testing.assert_allclose(x2, want, atol=1e-14)
    with pytest.raises(TypeError, match="never cast"):
        r.apply(x, out=np.empty((5, 8), np.float32))
    with pytest.raises(ValueError, match="shape"):
        r.apply(x, out=np.empty((4, 8)))


def test_fortran_order_input(backend):
    rng = np.random.default_rng(13)
    v0, v1 = rng.standard_normal((2, 6, 20))
    x = np.asfortranarray(rng.standard_normal((6, 20)))
    r = ea.rotation(np.asfortranarray(v0), v1, backend=backend)
    np.testing.assert_allclose(r.apply(x), r.apply(np.ascontiguousarray(x)), atol=1e-15)


def test_bad_inputs():
    v = np.ones(4)
    with pytest.raises(ValueError, match="v0 has a zero vector"):
        ea.rotation(np.zeros(4), v)
    with pytest.raises(ValueError, match=r"v1 has a zero vector \(first at row 1\)"):
        ea.rotation(np.ones((2, 4)), np.array([[1.0, 0, 0, 0], [0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="v1 contains NaN"):
        ea.rotation(v, np.array([1.0, np.nan, 0, 0]))
    with pytest.raises(ValueError, match="v0 contains NaN or inf"):
        ea.rotation(np.array([1.0, np.inf, 0, 0]), v)
    with pytest.raises(ValueError, match="dimension mismatch"):
        ea.rotation(np.ones(4), np.ones(5))
    with pytest.raises(ValueError, match="do not broadcast"):
        ea.rotation(np.ones((2, 4)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="d >= 2"):
        ea.rotation(np.ones(1), -np.ones(1))
    with pytest.raises(TypeError, match="floating-point"):
        ea.rotation(np.ones(4, int), v)
    with pytest.raises(ValueError, match="backend"):
        ea.rotation(v, v[::-1], backend="fortran")
    r = ea.rotation(v, np.arange(4.0) + 1)
    with pytest.raises(ValueError, match="dimension mismatch"):
        r.apply(np.ones(5))
    with pytest.raises(ValueError, match="x contains NaN"):
        r.apply(np.array([np.nan, 0, 0, 0]))
    for be in ("numpy", "numba"):
        bad = np.ones((6, 4))
        bad[4, 3] = np.inf
        with pytest.raises(ValueError, match=r"x contains NaN or inf \(first at row 4\)"):
            r.apply(bad, backend=be)
        bad[4, 3] = 1.0
        bad[2, 0] = np.nan
        with pytest.raises(ValueError, match=r"first at row 2"):
            rb6 = ea.rotation(np.ones((6, 4)), np.eye(4)[[0, 1, 2, 3, 0, 1]])
            rb6.apply(bad, backend=be)
    rb = ea.rotation(np.ones((3, 4)), np.eye(4)[:3])
    with pytest.raises(ValueError, match="row counts do not broadcast"):
        rb.apply(np.ones((2, 4)))
    with pytest.raises(TypeError):
        len(r)
    with pytest.raises(IndexError):
        rb[3]


def test_as_matrix_refuses_large():
    d = AS_MATRIX_MAX_DIM + 1
    r = ea.rotation(np.eye(d)[0], np.eye(d)[1])
    with pytest.raises(ValueError, match="use Rotation.apply"):
        r.as_matrix()
    rb = ea.rotation(np.ones((300, 300)), np.eye(300))
    with pytest.raises(ValueError, match="entries"):
        rb.as_matrix()
    # but apply still works at that size, exactly
    y = r.apply(np.eye(d)[0])
    np.testing.assert_allclose(y, np.eye(d)[1], atol=1e-15)


def test_empty_batch(backend):
    r = ea.rotation(np.zeros((0, 5)), np.zeros((0, 5)), backend=backend)
    assert len(r) == 0 and r.angle.shape == (0,)
    assert r.apply(np.zeros((0, 5))).shape == (0, 5)
    assert r.apply(np.ones(5)).shape == (0, 5)


def test_callable_after_module_import():
    import importlib

    importlib.import_module("embalg.plane_rotation")
    r = ea.rotation(np.eye(3)[0], np.eye(3)[2])
    assert isinstance(r, Rotation)
    np.testing.assert_allclose(r.apply(np.eye(3)[0]), np.eye(3)[2], atol=1e-15)

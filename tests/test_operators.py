"""The element-wise operators: every backend against the float64 NumPy reference."""
import numpy as np
import pytest

import embalg as ea
from embalg.kernels import elementwise_numpy as ref

from embalg_testing import TOLERANCE, make_vectors

BINARY = {
    "hadamard": (lambda x, y, **k: ea.hadamard(x, y, **k), "hadamard", {}),
    "nsum": (lambda x, y, **k: ea.nsum(x, y, **k), "nsum", {}),
    "nsum_weighted": (lambda x, y, **k: ea.nsum(x, y, weights=[0.3, -1.7], **k), "nsum",
                      {"weights": [0.3, -1.7]}),
    "hadamard_div": (lambda x, y, **k: ea.hadamard_div(x, y, **k), "hadamard_div", {}),
    "geomean_signed": (lambda x, y, **k: ea.geomean(x, y, **k), "geomean_signed", {}),
    "geomean_agree": (lambda x, y, **k: ea.geomean(x, y, variant="agree", on_zero="zero", **k),
                      "geomean_agree", {}),
}


def expected(op, arrays, *, weights=None, eps=1e-6, normalize=True):
    vs = [np.asarray(a, np.float64) for a in arrays]
    w = np.ones(len(vs)) if weights is None else np.asarray(weights, np.float64)
    z = np.atleast_2d(ref.raw(op, [np.atleast_2d(v) for v in vs], w, eps))
    if normalize:
        nrm = np.linalg.norm(z, axis=1, keepdims=True)
        z = z / np.where(nrm > 0, nrm, 1.0)
    return z


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("n", [0, 1, 2, 7, 8, 9, 1001])
@pytest.mark.parametrize("d", [1, 3, 384, 1536, 3072])
def test_binary_matches_reference(name, n, d, backend, dtype):
    fn, op, kw = BINARY[name]
    x = make_vectors(n, d, seed=n + d, dtype=dtype)
    y = make_vectors(n, d, seed=n + d + 1, dtype=dtype)
    got = fn(x, y, backend=backend, on_zero="zero") if "agree" not in name else fn(x, y, backend=backend)
    assert got.dtype == dtype and got.shape == (n, d)
    want = expected(op, (x, y), weights=kw.get("weights"))
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[dtype])


@pytest.mark.parametrize("name", list(BINARY))
def test_cone_inputs_and_sizes_around_powers_of_two(name, backend, dtype):
    fn, op, kw = BINARY[name]
    for n in (15, 16, 17, 255, 256, 257):
        x = make_vectors(n, 1536, seed=n, cone=3.0, dtype=dtype)
        y = make_vectors(n, 1536, seed=n + 1000, cone=3.0, dtype=dtype)
        want = expected(op, (x, y), weights=kw.get("weights"))
        np.testing.assert_allclose(fn(x, y, backend=backend), want, rtol=0, atol=TOLERANCE[dtype])


@pytest.mark.parametrize("order", ["C", "F"])
def test_memory_order_and_strided_views(order, backend):
    x = make_vectors(33, 65, seed=1, order=order)
    y = make_vectors(66, 65, seed=2, order=order)[::2]
    want = expected("hadamard", (x, y))
    np.testing.assert_allclose(ea.hadamard(x, y, backend=backend), want, atol=1e-12, rtol=0)


def test_broadcasting_single_vector_against_many(backend, dtype):
    x = make_vectors(50, 384, seed=3, dtype=dtype)
    v = make_vectors(1, 384, seed=4, dtype=dtype)[0]
    for fn, op in [(ea.hadamard, "hadamard"), (ea.nsum, "nsum"), (ea.hadamard_div, "hadamard_div")]:
        want = expected(op, (x, v[None, :]))
        np.testing.assert_allclose(fn(x, v, backend=backend), want, atol=TOLERANCE[dtype], rtol=0)
        np.testing.assert_allclose(fn(x, v[None, :], backend=backend), want, atol=TOLERANCE[dtype], rtol=0)
    one = ea.hadamard(v, v, backend=backend)
    assert one.shape == (384,)


@pytest.mark.parametrize("k", [3, 4])
def test_nary_forms(k, backend):
    xs = [make_vectors(20, 384, seed=s, cone=2.0) for s in range(k)]
    np.testing.assert_allclose(ea.hadamard(*xs, backend=backend), expected("hadamard", xs), atol=1e-12, rtol=0)
    w = np.linspace(0.5, 2.0, k)
    np.testing.assert_allclose(ea.nsum(*xs, weights=w, backend=backend),
                               expected("nsum", xs, weights=w), atol=1e-12, rtol=0)
    np.testing.assert_allclose(ea.geomean(*xs, backend=backend), expected("geomean_signed", xs),
                               atol=1e-12, rtol=0)
    np.testing.assert_allclose(ea.geomean(*xs, variant="agree", on_zero="zero", backend=backend),
                               expected("geomean_agree", xs), atol=1e-12, rtol=0)


def test_geomean_formula_by_hand():
    x = np.array([4.0, -1.0, 2.0, -3.0, 0.0])
    y = np.array([1.0, 4.0, -1.0, -3.0, 5.0])
    z = np.sign(x + y) * np.sqrt(np.abs(x * y))
    np.testing.assert_allclose(ea.geomean(x, y), z / np.linalg.norm(z), atol=1e-15)
    agree = np.array([2.0, 0.0, 0.0, -3.0, 0.0])
    np.testing.assert_allclose(ea.geomean(x, y, variant="agree"), agree / np.linalg.norm(agree), atol=1e-15)


def test_raw_hadamard_sums_to_dot_product(backend):
    x = make_vectors(10, 384, seed=5)
    y = make_vectors(10, 384, seed=6)
    raw = ea.hadamard(x, y, normalize=False, backend=backend)
    np.testing.assert_allclose(raw.sum(axis=1), np.einsum("ij,ij->i", x, y), atol=1e-14)


def test_division_policy_never_inf_and_sign_preserving(backend):
    x = np.array([[1.0, 1.0, 1.0, 1.0]])
    y = np.array([[0.0, -0.0, 1e-9, -1e-9]])
    got = ea.hadamard_div(x, y, eps=1e-3, normalize=False, backend=backend)
    np.testing.assert_array_equal(got, [[1e3, 1e3, 1e3, -1e3]])
    assert np.isfinite(ea.hadamard_div(x, y, backend=backend)).all()


def test_division_undoes_raw_product_where_y_is_large(backend):
    x = make_vectors(100, 384, seed=7)
    y = make_vectors(100, 384, seed=8)
    eps = 1e-6
    back = ea.hadamard_div(ea.hadamard(x, y, normalize=False, backend=backend), y, eps=eps,
                           normalize=False, backend=backend)
    big = np.abs(y) >= eps
    np.testing.assert_allclose(back[big], x[big], rtol=1e-12, atol=0)


def test_normalize_and_cosine(backend, dtype):
    x = make_vectors(257, 384, seed=9, dtype=dtype) * 3.5
    y = make_vectors(257, 384, seed=10, cone=2.0, dtype=dtype)
    got = ea.normalize(x, backend=backend)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(got, x64 / np.linalg.norm(x64, axis=1, keepdims=True), atol=TOLERANCE[dtype], rtol=0)
    cos = ea.cosine(x, y, backend=backend)
    y64 = y.astype(np.float64)
    want = np.einsum("ij,ij->i", x64, y64) / np.linalg.norm(x64, axis=1) / np.linalg.norm(y64, axis=1)
    assert cos.dtype == dtype and cos.shape == (257,)
    np.testing.assert_allclose(cos, want, atol=TOLERANCE[dtype], rtol=0)
    assert ea.cosine(x[0], y[0], backend=backend).shape == ()


def test_half_precision_inputs_compute_in_float32(backend):
    x = make_vectors(40, 384, seed=11).astype(np.float16)
    y = make_vectors(40, 384, seed=12).astype(np.float16)
    got = ea.hadamard(x, y, backend=backend)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected("hadamard", (x, y)), atol=2e-6, rtol=0)


def test_bfloat16_inputs_compute_in_float32(backend):
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 needs ml_dtypes (in the test extra)")
    x = make_vectors(10, 64, seed=11).astype(ml_dtypes.bfloat16)
    y = make_vectors(10, 64, seed=12).astype(ml_dtypes.bfloat16)
    got = ea.geomean(x, y, backend=backend)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected("geomean_signed", (x.astype(np.float64), y.astype(np.float64))),
                               atol=2e-6, rtol=0)


def test_mixed_float32_float64_promotes(backend):
    x = make_vectors(5, 8, seed=1).astype(np.float32)
    y = make_vectors(5, 8, seed=2)
    assert ea.nsum(x, y, backend=backend).dtype == np.float64


def test_out_is_written_in_place_and_inputs_untouched(backend):
    x = make_vectors(30, 64, seed=13, dtype=np.float32)
    y = make_vectors(30, 64, seed=14, dtype=np.float32)
    x0, y0 = x.copy(), y.copy()
    out = np.empty_like(x)
    res = ea.hadamard(x, y, out=out, backend=backend)
    assert res is out
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    ea.nsum(x, y, out=x, backend=backend)  # out may alias an input
    np.testing.assert_allclose(x, expected("nsum", (x0, y0)), atol=2e-6, rtol=0)


def test_batches_split_and_agree(monkeypatch, backend):
    from embalg import operators

    k = __import__(f"embalg.kernels.elementwise_{backend}", fromlist=["rowwise"])
    monkeypatch.setattr(operators, "BATCH_BYTES", 8 * 64 * 4 * 7)  # 7 rows per batch
    monkeypatch.setattr(k, "BATCH_BYTES", 8 * 64 * 4 * 7, raising=False)
    calls = []
    orig = k.rowwise

    def counting(*a, **kw):
        calls.append(a[2].shape[0])
        return orig(*a, **kw)

    monkeypatch.setattr(k, "rowwise", counting)
    x = make_vectors(100, 64, seed=15)
    y = make_vectors(100, 64, seed=16)
    got = ea.hadamard(x, y, backend=backend)
    assert len(calls) > 10 and sum(calls) == 100
    np.testing.assert_allclose(got, expected("hadamard", (x, y)), atol=1e-12, rtol=0)


def test_combine_is_a_left_fold(backend):
    xs = np.stack([make_vectors(10, 32, seed=s) for s in range(4)])
    got = ea.combine("nsum", xs, backend=backend)
    want = ea.nsum(ea.nsum(ea.nsum(xs[0], xs[1]), xs[2]), xs[3])
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(ea.combine("hadamard", list(xs)), expected("hadamard", list(xs)), atol=1e-12)
    np.testing.assert_allclose(ea.combine(ea.hadamard, xs[:1]), xs[0], atol=1e-12)
    with pytest.raises(ValueError, match="at least one"):
        ea.combine("nsum", [])
    with pytest.raises(ValueError, match="unknown operator"):
        ea.combine("plus", xs)


def test_auto_backend_picks_numba_for_large_numpy_inputs():
    from embalg.backends import resolve_backend

    assert resolve_backend("auto", np.zeros((1000, 1536), np.float32)) == "numba"
    assert resolve_backend("auto", np.zeros((2, 3))) == "numpy"

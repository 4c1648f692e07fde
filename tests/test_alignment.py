"""Procrustes and linear maps: against SciPy and exact answers, cross-dimension, rank warnings, files."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.linalg import orthogonal_procrustes

import embalg as ea
from embalg.alignment import AlignmentMap, RankWarning


def random_orthogonal(d, seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def cone(n, d, spread, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * spread + np.ones(d) / np.sqrt(d)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def objective(X, Y, R, s=1.0):
    return np.linalg.norm(s * X @ R - Y)


@pytest.mark.parametrize("kind", ["isotropic", "anisotropic"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(200, 8), (1001, 64), (300, 127)])
def test_procrustes_matches_scipy(kind, dtype, shape):
    n, d = shape
    rng = np.random.default_rng(n + d)
    X = rng.standard_normal((n, d)) if kind == "isotropic" else cone(n, d, 0.2, seed=d)
    Y = X @ random_orthogonal(d, 1) + 0.3 * rng.standard_normal((n, d)) / np.sqrt(d)
    X, Y = X.astype(dtype), Y.astype(dtype)
    m = ea.procrustes(X, Y)
    R_scipy, s_scipy = orthogonal_procrustes(X.astype(np.float64), Y.astype(np.float64))
    tol = 1e-10 if dtype == np.float64 else 2e-3
    np.testing.assert_allclose(m.matrix, R_scipy, atol=tol)
    np.testing.assert_allclose(m.matrix @ m.matrix.T, np.eye(d), atol=1e-12)
    assert m.kind == "procrustes" and m.rank == d and m.scale == 1.0
    # the fit is optimal: no worse than SciPy's, better than a perturbed rotation
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    assert objective(X64, Y64, m.matrix) <= objective(X64, Y64, R_scipy) * (1 + 1e-6)
    pert = m.matrix @ random_orthogonal(d, 2) if d < 10 else m.matrix @ ea.rotation(
        np.eye(d)[0], np.eye(d)[0] + 0.05 * np.eye(d)[1]).as_matrix()
    assert objective(X64, Y64, m.matrix) < objective(X64, Y64, pert)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 12), st.integers(0, 10_000), st.floats(0.1, 10.0))
def test_procrustes_recovers_rotation_and_scale(d, seed, s):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((3 * d + 2, d))
    Q = random_orthogonal(d, seed + 1)
    m = ea.procrustes(X, s * X @ Q, scale=True)
    np.testing.assert_allclose(m.matrix, Q, atol=1e-9)
    assert m.scale == pytest.approx(s, rel=1e-10)
    np.testing.assert_allclose(m.apply(X), s * X @ Q, atol=1e-9 * s * np.abs(X).max())


@pytest.mark.parametrize("d1,d2", [(384, 1536), (96, 256), (256, 96), (20, 3)])
def test_procrustes_across_dimensions(d1, d2):
    """d1 -> d2: semi-orthogonal R, optimal against the SVD oracle and against brute force."""
    rng = np.random.default_rng(d1 * d2)
    n = 4 * min(d1, d2) + 50
    X = rng.standard_normal((n, d1)).astype(np.float32)
    Y = rng.standard_normal((n, d2)).astype(np.float32) + X @ rng.standard_normal((d1, d2)).astype(np.float32)
    m = ea.procrustes(X, Y)
    R = m.matrix
    assert R.shape == (d1, d2) and m.dims == (d1, d2)
    k = min(d1, d2)
    gram = R @ R.T if d1 <= d2 else R.T @ R
    np.testing.assert_allclose(gram, np.eye(k), atol=1e-12)
    U, _, Vt = np.linalg.svd(X.astype(np.float64).T @ Y.astype(np.float64), full_matrices=False)
    np.testing.assert_allclose(R, U @ Vt, atol=1e-4)
    # optimality: trace(R^T X^T Y) is maximal, so random semi-orthogonal maps do worse
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    best = objective(X64, Y64, R)
    for seed in range(3):
        q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((max(d1, d2), k)))
        Q = q.T if d1 <= d2 else q                       # (d1, d2), orthonormal rows or columns
        assert best < objective(X64, Y64, Q)
    assert m.apply(X[:5]).shape == (5, d2) and m.apply(X[0]).dtype == np.float32


def test_procrustes_rank_warning_and_finite():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((10, 32))
    Y = rng.standard_normal((10, 32))
    with pytest.warns(RankWarning, match=r"numerical rank 10 < min\(d1, d2\) = 32"):
        m = ea.procrustes(X, Y)
    assert np.isfinite(m.matrix).all() and m.rank == 10
    np.testing.assert_allclose(m.matrix @ m.matrix.T, np.eye(32), atol=1e-12)
    # all-zero Y: rank 0, still a finite orthogonal matrix
    with pytest.warns(RankWarning, match="rank 0"):
        m0 = ea.procrustes(X, np.zeros_like(Y))
    assert np.isfinite(m0.matrix).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ea.procrustes(rng.standard_normal((100, 32)), rng.standard_normal((100, 32)))


def test_linear_map_exact_and_ridge():
    rng = np.random.default_rng(4)
    X = cone(500, 24, 0.3, seed=5)
    W = rng.standard_normal((24, 40))
    m = ea.linear_map(X, X @ W)
    np.testing.assert_allclose(m.matrix, W, atol=1e-7)
    assert m.kind == "linear" and m.rank == 24 and m.dims == (24, 40)
    lam = 0.5
    mr = ea.linear_map(X, X @ W, ridge=lam)
    want = np.linalg.solve(X.T @ X + lam * np.eye(24), X.T @ (X @ W))
    np.testing.assert_allclose(mr.matrix, want, atol=1e-10)
    assert mr.ridge == lam
    # float32 data: GEMM in float32, answer close to the float64 least squares
    Y = X @ W + 0.01 * rng.standard_normal((500, 40))
    m32 = ea.linear_map(X.astype(np.float32), Y.astype(np.float32), ridge=1e-3)
    want32 = np.linalg.solve(X.T @ X + 1e-3 * np.eye(24), X.T @ Y)
    np.testing.assert_allclose(m32.matrix, want32, atol=5e-3)


def test_linear_map_underdetermined_warns_min_norm():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((5, 12))
    Y = rng.standard_normal((5, 3))
    with pytest.warns(RankWarning, match=r"numerical rank 5 < d1 = 12 .*minimum-norm"):
        m = ea.linear_map(X, Y)
    np.testing.assert_allclose(m.matrix, np.linalg.pinv(X) @ Y, atol=1e-10)
    np.testing.assert_allclose(X @ m.matrix, Y, atol=1e-10)
    with pytest.warns(RankWarning, match="ridge keeps the solution unique"):
        mr = ea.linear_map(X, Y, ridge=1e-3)
    assert np.isfinite(mr.matrix).all()
    # duplicated rows: rank-deficient even with many rows
    Xd = np.repeat(X, 10, axis=0)
    with pytest.warns(RankWarning, match="rank 5"):
        ea.linear_map(Xd, np.repeat(Y, 10, axis=0))


def test_bad_inputs():
    X = np.ones((4, 3))
    with pytest.raises(ValueError, match="same texts row by row: X has 4 rows while Y has 3"):
        ea.procrustes(X, np.ones((3, 3)))
    with pytest.raises(ValueError, match="X contains NaN"):
        ea.procrustes(np.array([[1.0, np.nan], [0, 1]]), np.eye(2))
    with pytest.raises(ValueError, match="Y contains NaN or inf"):
        ea.linear_map(np.eye(2), np.array([[1.0, np.inf], [0, 1]]))
    with pytest.raises(ValueError, match="empty"):
        ea.procrustes(np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="2-D"):
        ea.procrustes(np.ones(3), np.ones(3))
    with pytest.raises(TypeError, match="floating-point"):
        ea.linear_map(np.ones((3, 3), int), X[:3])
    with pytest.raises(ValueError, match="ridge"):
        ea.linear_map(X, X, ridge=-1.0)
    with pytest.raises(ValueError, match="X is all zeros"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RankWarning)
            ea.procrustes(np.zeros((4, 3)), X, scale=True)
    m = ea.procrustes(np.eye(3), np.eye(3))
    with pytest.raises(ValueError, match="dimension mismatch"):
        m.apply(np.ones(4))
    with pytest.raises(ValueError, match="x contains NaN"):
        m.apply(np.array([np.nan, 0, 0]))


def test_save_load_roundtrip(tmp_path):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((50, 6))
    m = ea.procrustes(X, 3.0 * X @ random_orthogonal(6, 8)[:, :4], scale=True)
    p = tmp_path / "map.npz"
    m.save(p)
    m2 = AlignmentMap.load(p)
    np.testing.assert_array_equal(m2.matrix, m.matrix)
    assert (m2.scale, m2.kind, m2.rank, m2.ridge) == (m.scale, m.kind, m.rank, m.ridge)
    np.testing.assert_array_equal(m2.apply(X), m.apply(X))
    assert sorted(q.name for q in tmp_path.iterdir()) == ["map.npz"]  # no temp file left
    lin = ea.linear_map(X, X[:, :2], ridge=0.1)
    lin.save(tmp_path / "lin.npz")
    assert AlignmentMap.load(tmp_path / "lin.npz").ridge == 0.1


def test_load_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        AlignmentMap.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable .npz"):
        AlignmentMap.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", matrix=np.eye(2))
    with pytest.raises(ValueError, match="not an embalg AlignmentMap"):
        AlignmentMap.load(tmp_path / "other.npz")
    np.savez(tmp_path / "nan.npz", matrix=np.full((2, 2), np.nan), scale=1.0, kind="linear",
             rank=2, ridge=0.0, format="embalg.AlignmentMap/1")
    with pytest.raises(ValueError, match="NaN"):
        AlignmentMap.load(tmp_path / "nan.npz")
    with pytest.raises(ValueError, match="kind"):
        AlignmentMap(np.eye(2), kind="affine")

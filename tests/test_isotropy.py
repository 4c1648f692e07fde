"""The cone / isotropy metrics against direct float64 computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import embalg as ea
from embalg_testing import make_vectors
from embalg.io import open_npy, save_npy
from embalg.studies import isotropy as iso


def cone_set(n, d, *, spread, seed=0, dtype=np.float64):
    """Unit vectors in a cone (anisotropic, like real embeddings); larger ``spread`` is wider."""
    return make_vectors(n, d, seed=seed, cone=1.0 / spread, dtype=dtype)


def direct(x):
    """Reference figures computed the plain way in float64."""
    u = np.asarray(x, np.float64)
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    mu = u.mean(axis=0)
    c = u @ (mu / np.linalg.norm(mu))
    g = u @ u.T
    iu = np.triu_indices(len(u), 1)
    return {"u": u, "mu": mu, "cos_c": c, "half": math.degrees(math.acos(min(1, c.min()))),
            "pairs": g[iu], "cov": np.cov(u, rowvar=False, bias=True)}


SETS = {
    "cone_narrow": lambda: cone_set(301, 24, spread=0.6, seed=1),
    "cone_wide": lambda: cone_set(257, 48, spread=3.0, seed=2),
    "isotropic": lambda: make_vectors(200, 16, seed=3),
    "unnormalized_f32": lambda: (np.random.default_rng(4).standard_normal((129, 8)) * 5 + 1
                                 ).astype(np.float32),
}


@pytest.fixture(params=sorted(SETS))
def vecs(request):
    return SETS[request.param]()


def test_moments_match_direct(vecs):
    ref = direct(vecs)
    m = iso.set_moments(vecs, progress=False)
    np.testing.assert_allclose(m.mean, ref["mu"], atol=1e-12)
    np.testing.assert_allclose(m.cov, ref["cov"], atol=1e-12)


def test_moments_chunked_equal_whole_and_really_chunk(vecs):
    d = vecs.shape[1]
    wm = 4 * 8 * d * 7                     # 7 rows per block
    starts = [s for s, _ in iso.iter_unit_blocks(vecs, working_memory=wm, progress=False)]
    assert len(starts) == math.ceil(len(vecs) / 7) > 1
    whole = iso.set_moments(vecs, progress=False)
    parts = iso.set_moments(vecs, working_memory=wm, progress=False)
    np.testing.assert_allclose(parts.mean, whole.mean, atol=1e-13)
    np.testing.assert_allclose(parts.cov, whole.cov, atol=1e-13)


def test_half_angle_and_cone_width(vecs):
    ref = direct(vecs)
    m = iso.set_moments(vecs, progress=False)
    cos = iso.cosine_to_centroid(vecs, m.mean, working_memory=4 * 8 * vecs.shape[1] * 5,
                                 progress=False)
    np.testing.assert_allclose(cos, ref["cos_c"], atol=1e-12)
    angles = iso.cone_angles(cos)
    assert angles["half_angle_deg"] == pytest.approx(ref["half"], abs=1e-9)
    assert angles["cone_width_deg"] == pytest.approx(2 * ref["half"], abs=1e-9)
    # the widest pair never exceeds the cone width
    widest = math.degrees(math.acos(ref["pairs"].min()))
    assert widest <= angles["cone_width_deg"] + 1e-9


def test_mean_pairwise_cosine_exact_equals_all_pairs(vecs):
    ref = direct(vecs)
    m = iso.set_moments(vecs, progress=False)
    assert iso.mean_pairwise_cosine(m) == pytest.approx(ref["pairs"].mean(), abs=1e-12)
    st = ea.pairwise_stats(vecs, bins=50, progress=False)
    assert st.mean == pytest.approx(ref["pairs"].mean(), abs=1e-5)


def test_anisotropy_estimates_the_all_pairs_mean(vecs):
    ref = direct(vecs)
    r = iso.anisotropy(vecs, n_pairs=40_000, seed=5)
    assert r["n_pairs"] == 40_000
    assert abs(r["estimate"] - ref["pairs"].mean()) < 5 * r["stderr"] + 1e-12
    again = iso.anisotropy(vecs, n_pairs=40_000, seed=5)
    assert again == r


def test_anisotropy_never_pairs_a_row_with_itself():
    # two orthogonal rows: every valid pair has cosine 0, a self pair would give 1
    r = iso.anisotropy(np.eye(2), n_pairs=5000, seed=0)
    assert r["estimate"] == 0.0


def test_isoscore_isotropic_gaussian_is_one():
    x = np.random.default_rng(0).standard_normal((40_000, 12))
    assert iso.isoscore(x) > 0.99


def test_isoscore_one_dimensional_is_zero():
    rng = np.random.default_rng(1)
    direction = rng.standard_normal(10)
    x = rng.standard_normal((500, 1)) * direction + 3.0
    assert iso.isoscore(x) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("k,d", [(2, 4), (3, 7), (5, 5), (1, 9), (8, 16)])
def test_isoscore_k_equal_directions_of_d(k, d):
    # the published property: k of d dimensions used equally -> IsoScore (k - 1) / (d - 1)
    var = np.zeros(d)
    var[:k] = 2.5
    assert iso.isoscore_from_variances(var) == pytest.approx((k - 1) / (d - 1), abs=1e-12)


def test_isoscore_invariant_to_rotation_and_scale():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2000, 6)) * [5, 3, 1, 1, 0.5, 0.1]
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    assert iso.isoscore(x @ q.T * 7.0) == pytest.approx(iso.isoscore(x), abs=1e-9)
    assert 0.0 < iso.isoscore(x) < 1.0


def test_isoscore_bad_input():
    with pytest.raises(ValueError, match="dimension >= 2"):
        iso.isoscore_from_variances([1.0])
    with pytest.raises(ValueError, match="identical"):
        iso.isoscore_from_variances([0.0, 0.0])
    with pytest.raises(ValueError, match="at least 2"):
        iso.isoscore(np.ones((1, 3)))


def test_pca_spectrum_and_components_for():
    s = iso.pca_spectrum([1.0, 6.0, 3.0], top=3)
    assert s["explained_variance_ratio"] == pytest.approx([0.6, 0.3, 0.1])
    assert s["cumulative"] == pytest.approx([0.6, 0.9, 1.0])
    assert s["components_for"] == {"50%": 1, "90%": 2, "99%": 3}


def test_rogue_dimension_found():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, 32)) * 0.1
    x[:, 17] += 4.0                        # a coordinate with a large mean: rogue
    x[:, 5] *= 30.0                        # a coordinate with a large variance
    r = iso.rogue_dimensions(iso.set_moments(x, progress=False), top=3)
    assert r["by_mean"][0]["dim"] == 17
    assert r["by_variance"][0]["dim"] == 5
    assert r["top1_cosine_share"] > 0.5
    m = iso.set_moments(x, progress=False)
    shares = m.mean**2 / (m.mean**2).sum()
    assert r["by_mean"][0]["cosine_share"] == pytest.approx(shares.max())
    assert r["by_mean"][0]["fold"] == pytest.approx(shares.max() * 32)


@pytest.mark.parametrize("D", [0, 1, 3])
def test_all_but_the_top_removes_mean_and_top_components(D):
    x = cone_set(300, 20, spread=1.0, seed=6)
    x[:, 2] += np.linspace(-1, 1, 300)     # a strong principal direction
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    c = u - u.mean(axis=0)
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    top = vt[:D]
    y = iso.all_but_the_top(x, D)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-12)
    if D:
        np.testing.assert_allclose(y @ top.T, 0.0, atol=1e-10)
    # direct: remove the components from the centered rows, renormalize
    expect = c - (c @ top.T) @ top
    expect /= np.linalg.norm(expect, axis=1, keepdims=True)
    np.testing.assert_allclose(y, expect, atol=1e-10)


def test_postprocess_streaming_matches_small_path():
    x = cone_set(120, 10, spread=0.8, seed=7)
    m = iso.set_moments(x, progress=False)
    tf = iso.all_but_the_top_transform(m, 2)
    streamed = iso.set_moments(x, transform=tf, working_memory=4 * 8 * 10 * 9, progress=False)
    y = iso.all_but_the_top(x, 2)
    np.testing.assert_allclose(streamed.mean, y.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(streamed.cov, np.cov(y, rowvar=False, bias=True), atol=1e-12)
    with pytest.raises(ValueError, match="exceeds the dimension"):
        iso.all_but_the_top_transform(m, 11)


def test_memmap_input(tmp_path):
    x = cone_set(150, 12, spread=0.7, seed=8, dtype=np.float32)
    save_npy(tmp_path / "v.npy", x)
    mm = open_npy(tmp_path / "v.npy")
    assert isinstance(mm, np.memmap)
    a, b = iso.set_moments(mm, progress=False), iso.set_moments(np.array(x), progress=False)
    np.testing.assert_array_equal(a.cov, b.cov)
    assert iso.anisotropy(mm, n_pairs=100) == iso.anisotropy(x, n_pairs=100)


def test_bad_rows_named():
    x = cone_set(20, 4, spread=1.0)
    x[13] = 0.0
    with pytest.raises(ValueError, match="zero vector at row 13"):
        iso.set_moments(x, working_memory=4 * 8 * 4 * 5, progress=False)
    x[13] = np.nan
    with pytest.raises(ValueError, match="NaN or inf .*row 13"):
        iso.cosine_to_centroid(x, np.ones(4), progress=False)
    with pytest.raises(TypeError, match="floating-point"):
        iso.set_moments(np.ones((3, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="0 rows"):
        iso.set_moments(np.ones((0, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        iso.anisotropy(np.ones((1, 4)))
    with pytest.raises(ValueError, match="zero or not finite"):
        iso.cosine_to_centroid(np.eye(2), np.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        iso.cosine_to_centroid(np.eye(2), np.ones(3))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 40), d=st.integers(2, 12), seed=st.integers(0, 2**31 - 1),
       spread=st.floats(0.1, 5.0))
def test_figures_invariant_under_rotation_and_row_scaling(n, d, seed, spread):
    rng = np.random.default_rng(seed)
    x = cone_set(n, d, spread=spread, seed=seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    y = (x @ q.T) * rng.uniform(0.5, 3.0, (n, 1))          # rotate, rescale rows
    mx, my = iso.set_moments(x, progress=False), iso.set_moments(y, progress=False)
    assert iso.mean_pairwise_cosine(my) == pytest.approx(iso.mean_pairwise_cosine(mx), abs=1e-9)
    hx = iso.cone_angles(iso.cosine_to_centroid(x, mx.mean, progress=False))["half_angle_deg"]
    hy = iso.cone_angles(iso.cosine_to_centroid(y, my.mean, progress=False))["half_angle_deg"]
    assert hy == pytest.approx(hx, abs=1e-5)
    wx, wy = mx.eigh()[0], my.eigh()[0]
    np.testing.assert_allclose(wy, wx, atol=1e-10)
    if wx.sum() > 1e-12:
        assert iso.isoscore_from_variances(wy) == pytest.approx(iso.isoscore_from_variances(wx),
                                                                abs=1e-6)


def test_pair_cosines_equal_cosines_of_postprocessed_rows():
    x = cone_set(60, 9, spread=0.9, seed=9)
    m = iso.set_moments(x, progress=False)
    for D in (0, 2):
        tf = iso.all_but_the_top_transform(m, D)
        y = tf(x)
        np.testing.assert_allclose(tf.pair_cosines(x[:30], x[30:]),
                                   np.einsum("ij,ij->i", y[:30], y[30:]), atol=1e-12)
        r = iso.anisotropy(x, n_pairs=30_000, seed=1, transform=tf)
        iu = np.triu_indices(60, 1)
        assert abs(r["estimate"] - (y @ y.T)[iu].mean()) < 5 * r["stderr"]


def test_eigen_decomposition_cached_and_consistent():
    m = iso.set_moments(cone_set(50, 7, spread=1.0, seed=10), progress=False)
    w_only = m.eigenvalues()
    w, v = m.eigh()
    assert m.eigh()[1] is v                      # cached
    np.testing.assert_allclose(w_only, w, atol=1e-14)
    assert (np.diff(w) <= 0).all()
    np.testing.assert_allclose(m.cov @ v[:, 0], w[0] * v[:, 0], atol=1e-12)

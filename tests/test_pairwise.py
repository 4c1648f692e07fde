"""pairwise_stats / cosine_matrix against a dense float64 NumPy computation.

Every streaming result is compared with the dense reference on fresh random
data (isotropic and anisotropic: unit vectors in a cone), for many tile sizes
(tile=1, tiles that do not divide n), both CPU backends, self-pairs and x vs y.
Histogram counts must agree except for pairs within 1e-6 of a bin edge.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as hs

import embalg as ea
from embalg import pairwise as pw

BACKENDS = ["numpy", "numba"]
#: float32 tiles vs the float64 reference: cosines agree to ~1e-7
TOL = {"float32": 2e-6, "float64": 1e-12}


def rows(n, d, *, seed, cone=0.0, scale=True):
    """Random rows; ``cone`` adds a common direction; ``scale`` gives non-unit norms."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    if cone:
        x += cone * np.ones(d) / np.sqrt(d) * np.sqrt(d)
    if scale:
        x *= rng.uniform(0.5, 3.0, size=(n, 1))
    return x


def dense(x, y=None):
    """(cosines (n, m) float64, values of the counted pairs, their (i, j))."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = xn if y is None else y / np.linalg.norm(y, axis=1, keepdims=True)
    c = np.clip(xn @ yn.T, -1.0, 1.0)
    if y is None:
        i, j = np.triu_indices(len(x), k=1)
    else:
        i, j = (a.ravel() for a in np.indices(c.shape))
    return c, c[i, j], np.stack([i, j], axis=1)


def near_edge(v, edges, eps=1e-6):
    return np.min(np.abs(v[:, None] - edges[None, :]), axis=1) < eps


def check_stats(st, x, y=None, *, bins, rng=(-1.0, 1.0), topk=0, threshold=None, tol=2e-6):
    c, v, ij = dense(x, y)
    assert st.n_pairs == v.size
    edges = np.linspace(rng[0], rng[1], bins + 1)
    np.testing.assert_allclose(st.edges, edges)
    ref, _ = np.histogram(v, bins=edges)
    diff = np.abs(st.counts - ref).sum()
    assert diff <= 2 * near_edge(v, edges).sum(), (diff, near_edge(v, edges).sum())
    assert st.below == np.count_nonzero(v < rng[0] - 1e-6) or near_edge(v, edges[:1]).any()
    assert st.counts.sum() + st.below + st.above == v.size
    assert st.mean == pytest.approx(v.mean(), abs=tol)
    assert st.std == pytest.approx(v.std(), abs=tol)
    assert st.min == pytest.approx(v.min(), abs=tol)
    assert st.max == pytest.approx(v.max(), abs=tol)
    # the reported pairs hold the extremes (ties within rounding may pick another pair)
    assert c[st.argmin] == pytest.approx(v.min(), abs=tol)
    assert c[st.argmax] == pytest.approx(v.max(), abs=tol)
    if y is None:
        assert st.argmin[0] < st.argmin[1] and st.argmax[0] < st.argmax[1]
    if topk:
        cc = c.copy()
        if y is None:
            np.fill_diagonal(cc, -np.inf)
        ref_vals = -np.sort(-cc, axis=1)[:, :topk]
        np.testing.assert_allclose(st.topk_values, ref_vals, atol=tol)
        got = np.take_along_axis(cc, st.topk_indices, axis=1)
        np.testing.assert_allclose(got, st.topk_values, atol=tol)
        if y is None:
            assert not np.any(st.topk_indices == np.arange(len(x))[:, None])
        assert np.all(np.diff(st.topk_values, axis=1) <= 0)
    if threshold is not None:
        exact = np.count_nonzero(v >= threshold)
        loose = np.count_nonzero(np.abs(v - threshold) < 1e-6)
        assert abs(st.threshold_count - exact) <= loose
        np.testing.assert_allclose(c[tuple(st.threshold_pairs.T)], st.threshold_values, atol=tol)
        assert np.all(st.threshold_values >= threshold)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tile", [1, 2, 7, 16, 33, 64, 200])
def test_self_pairs_match_dense_for_many_tile_sizes(backend, tile):
    x = rows(29 if tile <= 2 else 61, 24, seed=tile, cone=0.8)
    st = ea.pairwise_stats(x, bins=37, topk=3, threshold=0.6, tile=tile, backend=backend)
    check_stats(st, x, bins=37, topk=3, threshold=0.6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tile", [1, 5, 16, 64])
def test_x_vs_y_match_dense(backend, tile):
    x = rows(23, 16, seed=1)
    y = rows(41, 16, seed=2, cone=0.5)
    st = ea.pairwise_stats(x, y, bins=50, range=(-0.5, 0.9), topk=4, threshold=0.2, tile=tile,
                           backend=backend)
    check_stats(st, x, y, bins=50, rng=(-0.5, 0.9), topk=4, threshold=0.2)
    assert st.topk_values.shape == (23, 4)
    _, v, _ = dense(x, y)
    assert st.below == np.count_nonzero(v < -0.5)
    assert st.above == np.count_nonzero(v > 0.9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_precisions_and_dtypes(backend, precision, dtype):
    x = rows(300, 48, seed=3, cone=1.5).astype(dtype)
    st = ea.pairwise_stats(x, bins=400, topk=2, tile=128, backend=backend, precision=precision)
    tol = TOL[precision] if dtype != np.float16 else TOL["float32"]
    check_stats(st, x.astype(np.float64), bins=400, topk=2, tol=tol)
    assert st.precision == precision


def test_float32_deviation_from_float64_is_small():
    """The docstring's measured deviation: float32 tiles within ~1e-7 of float64."""
    x = rows(300, 1536, seed=4, cone=1.0).astype(np.float32)
    c32 = pw.cosine_matrix(x)
    c64 = pw.cosine_matrix(x.astype(np.float64))
    assert np.max(np.abs(c32 - c64)) < 5e-7
    s32 = ea.pairwise_stats(x, bins=1000, precision="float32")
    s64 = ea.pairwise_stats(x, bins=1000, precision="float64")
    assert abs(s32.mean - s64.mean) < 1e-8
    assert np.abs(s32.counts - s64.counts).sum() <= 2 * near_edge(dense(x)[1], s64.edges, 5e-7).sum()


def exact_tie_rows(n, *, seed):
    """Rows from {-0.5, 0.5}^4: unit length exactly, cosines multiples of 1/4: many exact ties."""
    rng = np.random.default_rng(seed)
    return rng.choice([-0.5, 0.5], size=(n, 4))


def brute_topk(c, k, exclude_self):
    """Top-k by (value desc, index asc) per row, in plain Python."""
    out_v, out_i = [], []
    for i, row in enumerate(c):
        cand = [(-row[j], j) for j in range(len(row)) if not (exclude_self and j == i)]
        best = sorted(cand)[:k]
        out_v.append([-v for v, _ in best])
        out_i.append([j for _, j in best])
    return np.array(out_v), np.array(out_i)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tile", [1, 3, 8, 40])
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_exact_ties_resolve_to_lower_index(backend, tile, precision):
    x = exact_tie_rows(37, seed=tile)
    st = ea.pairwise_stats(x, bins=8, topk=5, threshold=0.5, max_pairs=10**6, tile=tile,
                           backend=backend, precision=precision)
    c, v, ij = dense(x)
    bv, bi = brute_topk(c, 5, True)
    np.testing.assert_array_equal(st.topk_values, bv)
    np.testing.assert_array_equal(st.topk_indices, bi)
    # cosines sit exactly on the bin edges here: the last bin is closed, like numpy.histogram
    np.testing.assert_array_equal(st.counts, np.histogram(v, bins=8, range=(-1, 1))[0])
    # extremes: the first pair in (i, j) order
    assert tuple(st.argmin) == tuple(ij[np.argmin(v)])
    assert tuple(st.argmax) == tuple(ij[np.argmax(v)])
    sel = v >= 0.5
    np.testing.assert_array_equal(st.threshold_pairs, ij[sel])
    np.testing.assert_array_equal(st.threshold_values, v[sel])


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_ties_x_vs_y(backend):
    x, y = exact_tie_rows(13, seed=1), exact_tie_rows(29, seed=2)
    st = ea.pairwise_stats(x, y, bins=8, topk=7, tile=4, backend=backend)
    bv, bi = brute_topk(dense(x, y)[0], 7, False)
    np.testing.assert_array_equal(st.topk_values, bv)
    np.testing.assert_array_equal(st.topk_indices, bi)


@pytest.mark.parametrize("backend", BACKENDS)
def test_forced_many_tiles_prove_chunking(backend, monkeypatch):
    seen = []
    real = pw.reduce_tile

    def spy(s, i0, j0, **kw):
        seen.append((i0, j0, s.shape))
        return real(s, i0, j0, **kw)

    monkeypatch.setattr(pw, "reduce_tile", spy)
    x = rows(100, 512, seed=5, cone=0.3)
    # 0.2 MiB of working memory for d = 512 float64: tiles of ~24 rows
    st = ea.pairwise_stats(x, bins=100, topk=2, working_memory=0.2, backend=backend,
                           precision="float64")
    assert len(seen) > 3
    side = max(max(shape) for _, _, shape in seen)
    assert side < 100
    assert side * side + 2 * side * 512 <= 0.2 * 2**20 / 8
    n_blocks = -(-100 // side)
    assert len(seen) == n_blocks * (n_blocks + 1) // 2  # upper triangle of tiles only
    assert all(i0 <= j0 for i0, j0, _ in seen)
    monkeypatch.setattr(pw, "reduce_tile", real)
    whole = ea.pairwise_stats(x, bins=100, topk=2, tile=100, backend=backend, precision="float64")
    np.testing.assert_array_equal(st.counts, whole.counts)
    np.testing.assert_array_equal(st.topk_indices, whole.topk_indices)
    assert st.mean == pytest.approx(whole.mean, abs=1e-12)
    assert st.std == pytest.approx(whole.std, abs=1e-9)
    assert (st.min, st.argmin, st.max, st.argmax) == (whole.min, whole.argmin, whole.max, whole.argmax)


def test_tile_schedule_covers_each_pair_once():
    for n, t in [(10, 3), (9, 3), (1, 5), (0, 2), (17, 1)]:
        seen = np.zeros((n, n), int)
        for i0, i1, j0, j1 in pw.tile_schedule(n, None, t):
            assert (i0, i1) == (j0, j1) or i1 <= j0  # diagonal tiles or strictly above
            seen[i0:i1, j0:j1] += 1
        assert np.all(seen[np.triu_indices(n, 1)] == 1)
    cover = np.zeros((7, 11), int)
    for i0, i1, j0, j1 in pw.tile_schedule(7, 11, 4):
        cover[i0:i1, j0:j1] += 1
    assert np.all(cover == 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_partials_added_in_any_order_equal_streaming(backend):
    """What a GPU or Dask driver does: reduce each tile to a TilePartial, add in any order."""
    x = rows(90, 20, seed=6, cone=0.7)
    kw = dict(bins=64, topk=4, threshold=0.7, max_pairs=50)
    whole = ea.pairwise_stats(x, tile=25, backend=backend, precision="float64", **kw)
    edges = np.linspace(-1, 1, 65)
    acc = pw.PairwiseStats.empty(90, edges, topk=4, threshold=0.7, max_pairs=50,
                                 precision="float64")
    sched = pw.tile_schedule(90, None, 25)
    order = np.random.default_rng(0).permutation(len(sched))
    for t in order:
        i0, i1, j0, j1 = sched[t]
        a = pw.unit_rows(x[i0:i1], "x", np.float64)
        b = pw.unit_rows(x[j0:j1], "x", np.float64)
        part = pw.reduce_tile(a @ b.T, i0, j0, diagonal=i0 == j0, symmetric=True, bins=64,
                              topk=4, threshold=0.7, max_pairs=50, backend=backend)
        assert isinstance(part, pw.TilePartial)
        acc.add(part, backend=backend)
    np.testing.assert_array_equal(acc.counts, whole.counts)
    np.testing.assert_array_equal(acc.topk_indices, whole.topk_indices)
    np.testing.assert_allclose(acc.topk_values, whole.topk_values, atol=1e-15)
    np.testing.assert_array_equal(acc.threshold_pairs, whole.threshold_pairs)
    assert acc.truncated == whole.truncated and acc.threshold_count == whole.threshold_count
    assert acc.mean == pytest.approx(whole.mean, abs=1e-14)
    assert acc.std == pytest.approx(whole.std, rel=1e-10)
    assert (acc.min, acc.argmin, acc.max, acc.argmax) == (whole.min, whole.argmin, whole.max,
                                                         whole.argmax)


@pytest.mark.parametrize("backend", BACKENDS)
def test_merge_of_blocks_equals_whole(backend):
    x = rows(40, 12, seed=7)
    y = rows(53, 12, seed=8, cone=0.5)
    kw = dict(bins=30, topk=3, threshold=0.3, max_pairs=20, backend=backend, precision="float64")
    whole = ea.pairwise_stats(x, y, **kw)
    # split the columns (y) and the rows (x)
    cols = ea.pairwise_stats(x, y[:20], **kw).merge(ea.pairwise_stats(x, y[20:], **kw).shifted(cols=20))
    top = ea.pairwise_stats(x[:15], y, **kw).shifted(n_rows=40)
    rows_ = top.merge(ea.pairwise_stats(x[15:], y, **kw).shifted(rows=15, n_rows=40))
    for got in (cols, rows_):
        np.testing.assert_array_equal(got.counts, whole.counts)
        assert got.n_pairs == whole.n_pairs
        assert got.mean == pytest.approx(whole.mean, abs=1e-14)
        assert got.std == pytest.approx(whole.std, rel=1e-10)
        assert (got.min, got.argmin, got.max, got.argmax) == (whole.min, whole.argmin, whole.max,
                                                             whole.argmax)
        np.testing.assert_array_equal(got.topk_indices, whole.topk_indices)
        np.testing.assert_array_equal(got.threshold_pairs, whole.threshold_pairs)
        assert got.threshold_count == whole.threshold_count and got.truncated == whole.truncated
    # self-pairs of x = self(x1) + self(x2) + cross(x1, x2)
    kw.pop("topk")
    s = ea.pairwise_stats(x, **kw)
    parts = (ea.pairwise_stats(x[:15], **kw).shifted(n_rows=40),
             ea.pairwise_stats(x[15:], **kw).shifted(rows=15, cols=15, n_rows=40),
             ea.pairwise_stats(x[:15], x[15:], **kw).shifted(cols=15, n_rows=40))
    got = parts[0].merge(parts[1]).merge(parts[2])
    np.testing.assert_array_equal(got.counts, s.counts)
    assert got.mean == pytest.approx(s.mean, abs=1e-14) and got.std == pytest.approx(s.std, rel=1e-10)
    np.testing.assert_array_equal(got.threshold_pairs, s.threshold_pairs)
    assert (got.min, got.argmin, got.max, got.argmax) == (s.min, s.argmin, s.max, s.argmax)


def test_merge_refuses_incompatible():
    x = rows(10, 4, seed=9)
    a = ea.pairwise_stats(x, bins=10)
    with pytest.raises(ValueError, match="edges"):
        a.merge(ea.pairwise_stats(x, bins=11))
    with pytest.raises(ValueError, match="threshold"):
        a.merge(ea.pairwise_stats(x, bins=10, threshold=0.5))
    with pytest.raises(ValueError, match="top-k"):
        ea.pairwise_stats(x, topk=2).merge(ea.pairwise_stats(x[:5], topk=2))


@pytest.mark.parametrize("backend", BACKENDS)
def test_threshold_pairs_truncated_to_first_in_ij_order(backend):
    x = rows(80, 8, seed=10, cone=2.0)
    st = ea.pairwise_stats(x, threshold=0.5, max_pairs=7, tile=9, backend=backend,
                           precision="float64")
    c, v, ij = dense(x)
    sel = ij[v >= 0.5]
    assert st.threshold_count == len(sel) > 7
    assert st.truncated
    np.testing.assert_array_equal(st.threshold_pairs, sel[:7])
    none = ea.pairwise_stats(x, threshold=0.5, max_pairs=0, backend=backend)
    assert none.threshold_count == len(sel) and none.truncated and len(none.threshold_pairs) == 0
    full = ea.pairwise_stats(x, threshold=0.5, backend=backend)
    assert not full.truncated and len(full.threshold_pairs) == len(sel)


def test_quantiles_from_histogram():
    x = rows(200, 32, seed=11, cone=1.0)
    st = ea.pairwise_stats(x, bins=2000)
    _, v, _ = dense(x)
    q = [0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0]
    np.testing.assert_allclose(st.quantiles(q), np.quantile(v, q), atol=2 * 2 / 2000)
    assert st.quantiles(0.0) == pytest.approx(v.min(), abs=1e-6)
    assert st.quantiles(1.0) == pytest.approx(v.max(), abs=1e-6)
    assert isinstance(st.quantiles(0.5), float)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        st.quantiles(1.5)
    with pytest.raises(ValueError, match="no pairs"):
        ea.pairwise_stats(x[:1]).quantiles(0.5)


def test_to_dict_is_json_ready():
    import json

    x = rows(30, 8, seed=12)
    st = ea.pairwise_stats(x, bins=20, topk=2, threshold=0.3)
    d = json.loads(json.dumps(st.to_dict(topk=True)))
    for key in ("n_pairs", "mean", "std", "min", "max", "argmin", "argmax", "counts", "edges",
                "quantiles", "threshold_count", "threshold_pairs", "truncated", "topk_indices"):
        assert key in d
    assert d["n_pairs"] == 435 and len(d["counts"]) == 20 and len(d["edges"]) == 21
    assert "topk_values" not in st.to_dict()


def test_no_pairs():
    st = ea.pairwise_stats(rows(1, 5, seed=0))
    assert st.n_pairs == 0 and st.counts.sum() == 0 and np.isnan(st.mean) and np.isnan(st.std)
    assert st.argmin == (-1, -1)
    assert ea.pairwise_stats(np.empty((0, 5))).n_pairs == 0


def test_non_unit_rows_are_normalized_on_the_fly():
    x = rows(20, 6, seed=13, scale=False)
    scaled = x * np.arange(1, 21)[:, None] * 1e3
    a = ea.pairwise_stats(x, bins=50, topk=2, precision="float64")
    b = ea.pairwise_stats(scaled, bins=50, topk=2, precision="float64")
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.topk_indices, b.topk_indices)
    assert a.mean == pytest.approx(b.mean, abs=1e-14)
    huge = ea.pairwise_stats(x * 1e200, bins=50, precision="float64")  # squares overflow float64
    assert huge.mean == pytest.approx(a.mean, abs=1e-12)


# ------------------------------------------------------------------ cosine_matrix

def test_cosine_matrix_matches_dense():
    x, y = rows(30, 10, seed=14), rows(17, 10, seed=15)
    np.testing.assert_allclose(ea.cosine_matrix(x, y), dense(x, y)[0], atol=1e-12)
    c32 = ea.cosine_matrix(x.astype(np.float32))
    assert c32.dtype == np.float32 and c32.shape == (30, 30)
    np.testing.assert_allclose(c32, dense(x)[0], atol=1e-6)
    assert np.all(np.abs(c32) <= 1.0)
    out = np.empty((30, 17))
    assert ea.cosine_matrix(x, y, out=out) is out
    with pytest.raises(TypeError, match="never cast"):
        ea.cosine_matrix(x, y, out=np.empty((30, 17), np.float32))
    with pytest.raises(ValueError, match="shape"):
        ea.cosine_matrix(x, y, out=np.empty((17, 30)))


def test_cosine_matrix_refuses_above_budget():
    x = rows(100, 4, seed=16)
    with pytest.raises(ValueError, match=r"80,000 bytes .* max_bytes=1,000"):
        ea.cosine_matrix(x, max_bytes=1000)
    assert ea.cosine_matrix(x, max_bytes=80_000).shape == (100, 100)
    with pytest.raises(ValueError, match="zero vector at row 3"):
        ea.cosine_matrix(np.vstack([x[:3], np.zeros((1, 4))]))


# ------------------------------------------------------------------ merge algebra (hypothesis)

@settings(max_examples=25, deadline=None)
@given(seed=hs.integers(0, 2**31 - 1), w1=hs.integers(3, 12), w2=hs.integers(3, 12))
def test_merge_commutes_exactly_and_associates_to_rounding(seed, w1, w2):
    """Column blocks of x vs y: merge order never changes counts, extremes, top-k, pairs."""
    x = rows(12, 6, seed=seed)
    y = rows(30, 6, seed=seed + 1, cone=0.5)
    a_, b_ = w1, w1 + w2  # three column blocks, each at least topk wide
    kw = dict(bins=16, topk=3, threshold=0.2, max_pairs=7, precision="float64", backend="numpy")
    p, q, r = (ea.pairwise_stats(x, y[lo:hi], **kw).shifted(cols=lo)
               for lo, hi in ((0, a_), (a_, b_), (b_, 30)))
    left, right = p.merge(q).merge(r), p.merge(q.merge(r))
    swapped = r.merge(p).merge(q)
    whole = ea.pairwise_stats(x, y, **kw)
    for got in (left, right, swapped):
        np.testing.assert_array_equal(got.counts, whole.counts)
        np.testing.assert_array_equal(got.topk_indices, whole.topk_indices)
        np.testing.assert_array_equal(got.threshold_pairs, whole.threshold_pairs)
        assert (got.min, got.argmin, got.max, got.argmax) == (whole.min, whole.argmin, whole.max,
                                                             whole.argmax)
        assert got.mean == pytest.approx(whole.mean, abs=1e-14)
        assert got.std == pytest.approx(whole.std, rel=1e-9)
    np.testing.assert_array_equal(p.merge(q).counts, q.merge(p).counts)


# ------------------------------------------------------------------ kernels: numba vs the reference

@pytest.mark.parametrize("shape, diagonal", [((1, 1), True), ((37, 37), True), ((64, 64), True),
                                             ((1, 9), False), ((33, 65), False), ((128, 17), False)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lo, hi, bins", [(-0.5, 0.75, 40), (-0.45, 0.85, 37)])
def test_numba_tile_kernel_equals_numpy_reference(shape, diagonal, dtype, lo, hi, bins):
    from embalg.kernels import pairwise_numba as fast
    from embalg.kernels import pairwise_numpy as ref

    rng = np.random.default_rng(shape[0] * 131 + shape[1])
    s = rng.uniform(-1.05, 1.05, size=shape).astype(dtype)  # overshoots: clipping is tested
    s[0, -1] = 1.0
    s[-1, 0] = -0.25  # an exact bin edge
    h, w = shape
    floor_r = np.where(rng.random(h) < 0.5, rng.uniform(-1, 1, h), -np.inf)
    floor_c = np.where(rng.random(w) < 0.5, rng.uniform(-1, 1, w), -np.inf)
    kw = dict(diagonal=diagonal, lo=lo, hi=hi, bins=bins, center=0.1, topk=4,
              col_topk=not diagonal, threshold=0.3, max_pairs=11, row_floor=floor_r,
              col_floor=floor_c)
    a, b = ref.reduce_tile(s, **kw), fast.reduce_tile(s, **kw)
    for key in ("n", "below", "above", "min", "argmin", "max", "argmax", "thr_count"):
        assert a[key] == b[key], key
    np.testing.assert_array_equal(a["counts"], b["counts"])
    for key in ("thr_rows", "thr_cols", "thr_vals"):
        np.testing.assert_array_equal(a[key], b[key])
    for key in ("row_topk", "col_topk"):
        if a[key] is None:
            assert b[key] is None
            continue
        np.testing.assert_array_equal(a[key][0], b[key][0])
        np.testing.assert_array_equal(a[key][1], b[key][1])
    assert b["s1"] == pytest.approx(a["s1"], abs=1e-9)
    assert b["s2"] == pytest.approx(a["s2"], abs=1e-9)


def test_merge_topk_backends_agree():
    from embalg.kernels import pairwise_numba as fast
    from embalg.kernels import pairwise_numpy as ref

    rng = np.random.default_rng(3)
    vals = np.round(rng.uniform(-1, 1, (50, 12)), 1)  # many exact ties
    va, ia = ref.topk_of_rows(vals[:, :6], 4, False)  # partners 0..5
    vb, ib = ref.topk_of_rows(vals[:, 6:], 4, False)
    ib += 6  # partners 6..11
    va[:5, 2:], ia[:5, 2:] = -np.inf, -1  # short lists (padding)
    got_ref, got_fast = ref.merge_topk(va, ia, vb, ib), fast.merge_topk(va, ia, vb, ib)
    np.testing.assert_array_equal(got_ref[0], got_fast[0])
    np.testing.assert_array_equal(got_ref[1], got_fast[1])
    assert np.all(np.diff(got_ref[0], axis=1) <= 0)
    whole = ref.topk_of_rows(vals, 4, False)
    np.testing.assert_array_equal(got_ref[1][5:], whole[1][5:])  # merge of halves = top-k of all

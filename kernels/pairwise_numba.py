"""All-pairs cosine tile reductions: fused Numba CPU kernels.

Same function names, arguments and results as :mod:`embalg.kernels.pairwise_numpy`
(the reference; read its docstring for the conventions). One parallel pass over
the tile does everything a row needs: clip, moments, min/max, histogram, the
threshold count and the row top-k. Rows are dealt round-robin to ``nchunk``
chunks (a few per thread, which balances the triangular diagonal tiles); each
chunk has its own histogram and scalars, summed at the end, so there are no
atomics. Column top-k (self-pairs off-diagonal tiles) is a second pass over
column groups of :data:`COL_GROUP` columns, each owned by one chunk.

No ``nnan``/``ninf`` fast-math flags: only reassociation-type flags, so the
row sums vectorize without changing how NaN/inf behave.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .pairwise_numpy import empty_topk

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

#: columns per task in the column top-k pass (64 bytes of float32: one cache line)
COL_GROUP = 16

#: chunks per thread (load balance over triangular tiles)
CHUNKS_PER_THREAD = 4


@njit(cache=True, inline="always")
def _insert(vals, idx, r, v, j):
    """Insert (v, j) into row r's sorted top-k if it beats the last entry.

    Called with candidates in increasing j per row, so an equal value never
    displaces an existing entry (ties go to the lower index).
    """
    k = vals.shape[1]
    if v <= vals[r, k - 1]:
        return
    p = k - 1
    while p > 0 and vals[r, p - 1] < v:
        vals[r, p] = vals[r, p - 1]
        idx[r, p] = idx[r, p - 1]
        p -= 1
    vals[r, p] = v
    idx[r, p] = j


@njit(cache=True, fastmath=FASTMATH)
def _row_moments(s, r, j0, w, center):
    """Clipped sum, sum of squares (centered), min and max of s[r, j0:w]."""
    s1 = 0.0
    s2 = 0.0
    mn = np.inf
    mx = -np.inf
    for j in range(j0, w):
        v = min(max(np.float64(s[r, j]), -1.0), 1.0)
        d = v - center
        s1 += d
        s2 += d * d
        mn = min(mn, v)
        mx = max(mx, v)
    return s1, s2, mn, mx


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _reduce_rows(s, diagonal, edges, center, do_topk, top_v, top_i, do_thr, threshold,
                 thr_row, nchunk):
    h, w = s.shape
    bins = edges.size - 1
    lo = edges[0]
    hi = edges[bins]
    scale = bins / (hi - lo)
    hist = np.zeros((nchunk, bins), np.int64)
    ints = np.zeros((nchunk, 7), np.int64)  # below, above, argmin r, c, argmax r, c, thr
    flts = np.zeros((nchunk, 4))  # s1, s2, min, max
    for c in prange(nchunk):
        s1 = 0.0
        s2 = 0.0
        cmin = np.inf
        cmax = -np.inf
        amin_r = -1
        amin_c = -1
        amax_r = -1
        amax_c = -1
        below = 0
        above = 0
        tcount = 0
        for r in range(c, h, nchunk):
            j0 = r + 1 if diagonal else 0
            if j0 < w:
                rs1, rs2, rmin, rmax = _row_moments(s, r, j0, w, center)
                s1 += rs1
                s2 += rs2
                if rmin < cmin:
                    cmin = rmin
                    amin_r = r
                    for j in range(j0, w):
                        if min(max(np.float64(s[r, j]), -1.0), 1.0) == rmin:
                            amin_c = j
                            break
                if rmax > cmax:
                    cmax = rmax
                    amax_r = r
                    for j in range(j0, w):
                        if min(max(np.float64(s[r, j]), -1.0), 1.0) == rmax:
                            amax_c = j
                            break
                # histogram (numpy.histogram's bin rule, including its edge fix-up)
                rt = 0
                for j in range(j0, w):
                    v = min(max(np.float64(s[r, j]), -1.0), 1.0)
                    if v < lo:
                        below += 1
                    elif v > hi:
                        above += 1
                    else:
                        b = int((v - lo) * scale)
                        if b >= bins:
                            b = bins - 1
                        if v < edges[b]:
                            b -= 1
                        elif b < bins - 1 and v >= edges[b + 1]:
                            b += 1
                        hist[c, b] += 1
                    if do_thr and v >= threshold:
                        rt += 1
                thr_row[r] = rt
                tcount += rt
            if do_topk:
                for j in range(w):
                    if diagonal and j == r:
                        continue
                    v = min(max(np.float64(s[r, j]), -1.0), 1.0)
                    if v > top_v[r, top_v.shape[1] - 1]:
                        _insert(top_v, top_i, r, v, j)
        flts[c, 0] = s1
        flts[c, 1] = s2
        flts[c, 2] = cmin
        flts[c, 3] = cmax
        ints[c, 0] = below
        ints[c, 1] = above
        ints[c, 2] = amin_r
        ints[c, 3] = amin_c
        ints[c, 4] = amax_r
        ints[c, 5] = amax_c
        ints[c, 6] = tcount
    return hist.sum(axis=0), ints, flts


@njit(cache=True, parallel=True)
def _reduce_cols(s, top_v, top_i, group):
    """Top-k of each column of s (candidates = rows, in increasing row order)."""
    h, w = s.shape
    ngroups = (w + group - 1) // group
    for g in prange(ngroups):
        c0 = g * group
        c1 = min(w, c0 + group)
        for r in range(h):
            for j in range(c0, c1):
                v = min(max(np.float64(s[r, j]), -1.0), 1.0)
                if v > top_v[j, top_v.shape[1] - 1]:
                    _insert(top_v, top_i, j, v, r)


@njit(cache=True, parallel=True)
def _gather_threshold(s, diagonal, threshold, thr_row, offsets, limit, rows, cols, vals):
    """Write the first ``limit`` pairs with v >= threshold, row-major, at ``offsets``."""
    h, w = s.shape
    for r in prange(h):
        if thr_row[r] == 0 or offsets[r] >= limit:
            continue
        p = offsets[r]
        j0 = r + 1 if diagonal else 0
        for j in range(j0, w):
            if p >= limit:
                break
            v = min(max(np.float64(s[r, j]), -1.0), 1.0)
            if v >= threshold:
                rows[p] = r
                cols[p] = j
                vals[p] = v
                p += 1


def _first_extreme(ints, flts, which):
    """Combine per-chunk (value, r, c): extreme value, ties to the first pair row-major."""
    col, ir = (2, 2) if which == "min" else (3, 4)
    best = None
    for ch in range(flts.shape[0]):
        r, c = int(ints[ch, ir]), int(ints[ch, ir + 1])
        if r < 0:
            continue
        v = float(flts[ch, col])
        key = (v, r, c) if which == "min" else (-v, r, c)
        if best is None or key < best[0]:
            best = (key, v, (r, c))
    if best is None:
        return (np.inf if which == "min" else -np.inf), (-1, -1)
    return best[1], best[2]


def reduce_tile(s, *, diagonal: bool, edges, center: float, topk: int, col_topk: bool,
                threshold, max_pairs: int) -> dict:
    """Reduce one tile of cosines; see :func:`embalg.kernels.pairwise_numpy.reduce_tile`."""
    h, w = s.shape
    nchunk = max(1, min(h, numba.get_num_threads() * CHUNKS_PER_THREAD))
    do_thr = threshold is not None
    thr = float(threshold) if do_thr else 0.0
    row_v, row_i = empty_topk(h if topk else 0, max(topk, 1))
    thr_row = np.zeros(h, np.int64)
    edges = np.ascontiguousarray(edges, dtype=np.float64)
    counts, ints, flts = _reduce_rows(s, diagonal, edges, float(center), topk > 0, row_v, row_i,
                                      do_thr, thr, thr_row, nchunk)
    mn, amin = _first_extreme(ints, flts, "min")
    mx, amax = _first_extreme(ints, flts, "max")
    n = h * w - (h * (h + 1)) // 2 if diagonal else h * w
    res = {"n": int(n), "counts": counts, "below": int(ints[:, 0].sum()),
           "above": int(ints[:, 1].sum()), "s1": float(flts[:, 0].sum()),
           "s2": float(flts[:, 1].sum()), "min": mn, "argmin": amin, "max": mx, "argmax": amax,
           "row_topk": (row_v, row_i) if topk else None, "col_topk": None}
    if topk and col_topk:
        col_v, col_i = empty_topk(w, topk)
        _reduce_cols(s, col_v, col_i, COL_GROUP)
        res["col_topk"] = (col_v, col_i)
    thr_count = int(ints[:, 6].sum())
    limit = min(thr_count, int(max_pairs))
    rows = np.empty(limit, np.int64)
    cols = np.empty(limit, np.int64)
    vals = np.empty(limit)
    if limit:
        offsets = np.concatenate(([0], np.cumsum(thr_row)[:-1])).astype(np.int64)
        _gather_threshold(s, diagonal, thr, thr_row, offsets, limit, rows, cols, vals)
    res.update(thr_count=thr_count, thr_rows=rows, thr_cols=cols, thr_vals=vals)
    return res


def merge_topk(va, ia, vb, ib):
    """Merge two top-k lists per row; see :func:`embalg.kernels.pairwise_numpy.merge_topk`."""
    out_v = np.empty_like(va)
    out_i = np.empty_like(ia)
    _merge_topk(va, ia, vb, ib, out_v, out_i)
    return out_v, out_i


@njit(cache=True)
def _before(v1, i1, v2, i2):
    """(v1, i1) ranks before (v2, i2): larger value, then lower index; sentinels (-1) last."""
    if v1 != v2:
        return v1 > v2
    if i2 < 0:
        return True
    if i1 < 0:
        return False
    return i1 < i2


@njit(cache=True, parallel=True)
def _merge_topk(va, ia, vb, ib, out_v, out_i):
    n, k = va.shape
    for r in prange(n):
        a = 0
        b = 0
        for p in range(k):
            if _before(va[r, a], ia[r, a], vb[r, b], ib[r, b]):
                out_v[r, p] = va[r, a]
                out_i[r, p] = ia[r, a]
                a += 1
            else:
                out_v[r, p] = vb[r, b]
                out_i[r, p] = ib[r, b]
                b += 1

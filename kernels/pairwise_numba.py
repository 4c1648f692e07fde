"""All-pairs cosine tile reductions: fused Numba CPU kernels.

Same function names, arguments and results as :mod:`embalg.kernels.pairwise_numpy`
(the reference; read its docstring for the conventions). One parallel pass over
the tile does everything a row needs. Per row, a loop that LLVM vectorizes
clips, sums the centered moments, counts values ``>= threshold``, counts
values beyond the running min/max and the row's k-th best, and writes the
histogram slots; a scalar loop then scatters the slots. The row is scanned
again only when it holds a new extreme or a top-k candidate (rare after the
first rows: min/max reductions and the insertion test do not vectorize
without ``nnan``, counts do). Rows are dealt round-robin to ``nchunk``
chunks (a few per thread, which balances the triangular diagonal tiles); each
chunk has its own histogram and scalars, summed at the end, so there are no
atomics. Column top-k (self-pairs off-diagonal tiles) is a second pass in
which each chunk owns a contiguous range of columns and streams the tile
row-major over it.

No ``nnan``/``ninf`` fast-math flags: only reassociation-type flags, so the
row sums vectorize without changing how NaN/inf behave.

Threads: a tile is a BLAS GEMM followed by a Numba parallel pass, over and
over. With Numba's OpenMP layer, idle OpenMP threads busy-wait after each
pass and steal the cores from the next GEMM (measured on 2 cores: the 2048^2
tile reduction took 66-89 ms instead of 12-17 ms, and the GEMM ~30% longer).
So ``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` here, unless the caller set
it; it only takes effect if no OpenMP runtime started earlier in the process.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from .pairwise_numpy import empty_topk  # noqa: E402

# No nnan/ninf (NaN checks stay honest) and no nsz: with reassoc it made isfinite of a
# prange reduction wrong in numba 0.68 (seen in the rotation kernels).
FASTMATH = {"arcp", "contract", "afn", "reassoc"}

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


@njit(cache=True, inline="always")
def _clip(x):
    v = np.float64(x)
    v = v if v < 1.0 else 1.0
    return v if v > -1.0 else -1.0


@njit(cache=True, fastmath=FASTMATH)
def _topk_scan(seg, offset, skip, r, top_v, top_i, kth):
    """Offer ``seg[j]`` (index ``offset + j``, except ``skip``) to row r's top-k; returns the new k-th.

    A vectorized count of the candidates above the k-th value comes first; the
    scalar insertion scan runs only when there is one.
    """
    k = top_v.shape[1]
    n = 0
    for j in range(seg.size):
        n += _clip(seg[j]) > kth
    if n == 0:
        return kth
    for j in range(seg.size):
        v = _clip(seg[j])
        if v > kth and offset + j != skip:
            _insert(top_v, top_i, r, v, offset + j)
            if top_v[r, k - 1] > kth:
                kth = top_v[r, k - 1]
    return kth


@njit(cache=True, fastmath=FASTMATH)
def _first_extreme_in_row(seg, smallest):
    """(value, first index) of the segment's minimum (or maximum)."""
    best = _clip(seg[0])
    pos = 0
    for j in range(1, seg.size):
        v = _clip(seg[j])
        if (v < best) if smallest else (v > best):
            best = v
            pos = j
    return best, pos


@njit(cache=True, fastmath=FASTMATH)
def _row_pass(seg, center, threshold, cmin, cmax, kth, lo, hi, scale, bins, slot, hist):
    """One row segment of a tile: a vectorized pass, then the histogram scatter.

    Loops run over ``range(seg.size)`` from 0 (a loop from a run-time start
    keeps Numba's negative-index wraparound and does not vectorize).

    Returns the centered sum and sum of squares and the counts of values
    ``>= threshold``, ``< cmin``, ``> cmax`` and ``> kth`` (the callers scan
    the row again only when one of the last three is non-zero).
    """
    cap_in = bins - 0.5  # v <= hi: at most the last bin (hi itself belongs to it)
    cap_out = bins + 0.5  # v > hi: the "above" slot
    s1 = 0.0
    s2 = 0.0
    nt = 0
    nlo = 0
    nhi = 0
    ncand = 0
    for j in range(seg.size):
        v = _clip(seg[j])
        d = v - center
        s1 += d
        s2 += d * d
        nt += v >= threshold
        nlo += v < cmin
        nhi += v > cmax
        ncand += v > kth
        cap = cap_in if v <= hi else cap_out
        t = (v - lo) * scale
        t = t if t > -1.0 else -1.0
        t = t if t < cap else cap
        slot[j] = np.int32(t + 1.0)
    for j in range(seg.size):
        hist[slot[j]] += 1
    return s1, s2, nt, nlo, nhi, ncand


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _reduce_rows(s, diagonal, lo, hi, bins, scale, center, do_topk, top_v, top_i, floor,
                 threshold, thr_row, nchunk):
    h, w = s.shape
    k = top_v.shape[1]
    hist = np.zeros((nchunk, bins + 2), np.int64)
    ints = np.full((nchunk, 5), -1, np.int64)  # argmin r, c, argmax r, c, threshold count
    flts = np.zeros((nchunk, 4))  # s1, s2, min, max
    for c in prange(nchunk):
        hc = hist[c]
        slot = np.empty(w, np.int32)
        s1 = 0.0
        s2 = 0.0
        cmin = np.inf
        cmax = -np.inf
        tcount = 0
        for r in range(c, h, nchunk):
            row = s[r]
            j0 = r + 1 if diagonal else 0
            kth = np.inf  # no candidates unless top-k is on
            if do_topk:
                kth = max(top_v[r, k - 1], floor[r])
                if diagonal:  # the row's top-k also sees j < r (the transposed pairs)
                    kth = _topk_scan(row[:r], 0, -1, r, top_v, top_i, kth)
            rs1, rs2, rt, nlo, nhi, ncand = _row_pass(row[j0:], center, threshold, cmin, cmax,
                                                      kth, lo, hi, scale, bins, slot, hc)
            s1 += rs1
            s2 += rs2
            thr_row[r] = rt
            tcount += rt
            if nlo:
                cmin, pos = _first_extreme_in_row(row[j0:], True)
                ints[c, 0] = r
                ints[c, 1] = j0 + pos
            if nhi:
                cmax, pos = _first_extreme_in_row(row[j0:], False)
                ints[c, 2] = r
                ints[c, 3] = j0 + pos
            if ncand:
                _topk_scan(row[j0:], j0, -1, r, top_v, top_i, kth)
        flts[c, 0] = s1
        flts[c, 1] = s2
        flts[c, 2] = cmin
        flts[c, 3] = cmax
        ints[c, 4] = tcount
    return hist.sum(axis=0), ints, flts


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _reduce_cols(s, top_v, top_i, floor, nchunk):
    """Top-k of each column of s (candidates = rows, visited in increasing order).

    Chunk ``c`` owns a contiguous range of columns and streams the tile row by
    row over it, so the tile is read once, row-major, and no state is shared.
    """
    h, w = s.shape
    k = top_v.shape[1]
    width = (w + nchunk - 1) // nchunk
    kth = np.maximum(top_v[:, k - 1], floor)
    for c in prange(nchunk):
        c0 = min(w, c * width)
        c1 = min(w, c0 + width)
        kc = kth[c0:c1]
        for r in range(h):
            seg = s[r, c0:c1]
            n = 0
            for j in range(seg.size):
                n += _clip(seg[j]) > kc[j]
            if n == 0:
                continue
            for j in range(seg.size):
                v = _clip(seg[j])
                if v > kc[j]:
                    _insert(top_v, top_i, c0 + j, v, r)
                    if top_v[c0 + j, k - 1] > kc[j]:
                        kc[j] = top_v[c0 + j, k - 1]


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
            v = _clip(s[r, j])
            if v >= threshold:
                rows[p] = r
                cols[p] = j
                vals[p] = v
                p += 1


def _first_extreme(ints, flts, which):
    """Combine per-chunk (value, r, c): extreme value, ties to the first pair row-major."""
    col, ir = (2, 0) if which == "min" else (3, 2)
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


def _floor(floor, n):
    """Strict candidate bound: ``v > nextafter(floor, -inf)`` admits ``v >= floor`` (ties)."""
    if floor is None:
        return np.full(n, -np.inf)
    return np.nextafter(np.asarray(floor, dtype=np.float64), -np.inf)


def reduce_tile(s, *, diagonal: bool, lo: float, hi: float, bins: int, center: float, topk: int,
                col_topk: bool, threshold, max_pairs: int, row_floor=None, col_floor=None) -> dict:
    """Reduce one tile of cosines; see :func:`embalg.kernels.pairwise_numpy.reduce_tile`."""
    h, w = s.shape
    nchunk = max(1, min(h, numba.get_num_threads() * CHUNKS_PER_THREAD))
    thr = np.inf if threshold is None else float(threshold)
    row_v, row_i = empty_topk(h if topk else 0, max(topk, 1))
    thr_row = np.zeros(h, np.int64)
    # the bin scale is computed here, in Python, exactly as the reference does
    # (inside a fast-math kernel "arcp" could turn the division into a reciprocal)
    scale = bins / (hi - lo)
    full, ints, flts = _reduce_rows(s, diagonal, float(lo), float(hi), int(bins), float(scale),
                                    float(center), topk > 0, row_v, row_i, _floor(row_floor, h),
                                    thr, thr_row, nchunk)
    mn, amin = _first_extreme(ints, flts, "min")
    mx, amax = _first_extreme(ints, flts, "max")
    n = h * w - (h * (h + 1)) // 2 if diagonal else h * w
    res = {"n": int(n), "counts": full[1:bins + 1], "below": int(full[0]),
           "above": int(full[bins + 1]), "s1": float(flts[:, 0].sum()),
           "s2": float(flts[:, 1].sum()), "min": mn, "argmin": amin, "max": mx, "argmax": amax,
           "row_topk": (row_v, row_i) if topk else None, "col_topk": None}
    if topk and col_topk:
        col_v, col_i = empty_topk(w, topk)
        _reduce_cols(s, col_v, col_i, _floor(col_floor, w),
                     max(1, min(w, numba.get_num_threads() * CHUNKS_PER_THREAD)))
        res["col_topk"] = (col_v, col_i)
    thr_count = int(ints[:, 4].sum())
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

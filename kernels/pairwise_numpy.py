"""All-pairs cosine tile reductions: the plain NumPy reference (the oracle).

A *tile* is a block ``s = a @ b.T`` of cosines between unit rows ``a`` (rows
``i0:i0+h`` of x) and ``b`` (rows ``j0:j0+w`` of y, or of x for self-pairs).
:func:`reduce_tile` reduces one tile at once to the statistics that
:class:`embalg.pairwise.TilePartial` holds, in tile-local indices. Inputs are
checked by the caller (:mod:`embalg.pairwise`); kernels never validate.

Conventions shared by every backend (``pairwise_numba`` returns identical
results up to floating-point summation order in ``s1``/``s2``):

* every cosine is clipped to ``[-1, 1]`` first (float32 rounding can overshoot);
* ``diagonal=True`` (a self-pairs tile on the diagonal, ``h == w``) counts only
  the strict upper triangle ``c > r`` for the histogram, moments, min/max and
  threshold; its row top-k uses every ``c != r``;
* histogram: ``bins`` equal-width bins over ``[lo, hi]``, the last one closed;
  a cosine ``v`` goes to bin ``floor((v - lo) * bins / (hi - lo))`` computed in
  float64 (:func:`bin_slots`; this equals :func:`numpy.histogram` except for
  values within rounding of an edge); values outside ``[lo, hi]`` are counted
  in ``below``/``above``;
* ``s1``, ``s2`` are ``sum(v - center)`` and ``sum((v - center)**2)`` in float64;
* min/max ties: the first pair in row-major order;
* top-k per row: largest value first, ties to the lower index; rows with fewer
  than ``k`` candidates are padded with ``(-inf, -1)``;
* threshold pairs: ``v >= threshold``, the first ``max_pairs`` in row-major order.
"""
from __future__ import annotations

import numpy as np


def empty_topk(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k state of ``n`` rows with no candidates: values ``-inf``, indices ``-1``."""
    return np.full((n, k), -np.inf), np.full((n, k), -1, np.int64)


def topk_of_rows(vals: np.ndarray, k: int, exclude_diagonal: bool, floor=None):
    """Top-k of each row of ``vals`` (h, w): ``(values (h, k) float64, cols (h, k) int64)``.

    Only candidates ``>= floor[r]`` (when given) are kept.
    """
    h, w = vals.shape
    v = vals.astype(np.float64)
    if exclude_diagonal:
        v[np.arange(h), np.arange(h)] = -np.inf
    if floor is not None:
        v[v < np.asarray(floor, dtype=np.float64)[:, None]] = -np.inf
    # a stable sort of -v keeps equal values in index order: ties go to the lower index
    order = np.argsort(-v, axis=1, kind="stable")[:, :k]
    top_v = np.take_along_axis(v, order, axis=1)
    top_i = order.astype(np.int64)
    out_v, out_i = empty_topk(h, k)
    out_v[:, :top_v.shape[1]] = top_v
    out_i[:, :top_i.shape[1]] = top_i
    out_i[~np.isfinite(out_v)] = -1  # the excluded diagonal is not a candidate
    return out_v, out_i


def merge_topk(va, ia, vb, ib):
    """Merge two top-k lists per row (each sorted, value desc then index asc)."""
    k = va.shape[1]
    v = np.concatenate([va, vb], axis=1)
    i = np.concatenate([ia, ib], axis=1)
    # sentinels (-inf, -1) sort last: key index -1 is mapped above every real index
    order = np.lexsort((np.where(i < 0, np.iinfo(np.int64).max, i), -v), axis=1)[:, :k]
    return np.take_along_axis(v, order, axis=1), np.take_along_axis(i, order, axis=1)


def bin_slots(v, lo: float, hi: float, bins: int) -> np.ndarray:
    """Histogram slot of each float64 cosine: 0 below ``lo``, ``1..bins``, ``bins + 1`` above ``hi``."""
    scale = bins / (hi - lo)
    t = np.clip((v - lo) * scale, -1.0, bins + 0.5)
    b = (t + 1.0).astype(np.int64)  # truncation: t in [-1, 0) -> slot 0 (below)
    b[(b == bins + 1) & (v <= hi)] = bins  # hi itself (and rounding just under it): last bin
    return b


def reduce_tile(s, *, diagonal: bool, lo: float, hi: float, bins: int, center: float, topk: int,
                col_topk: bool, threshold, max_pairs: int, row_floor=None, col_floor=None) -> dict:
    """Reduce one tile of cosines.

    Parameters
    ----------
    s : ndarray, shape (h, w), float32 or float64
        Cosines of the tile (not yet clipped).
    diagonal : bool
        Self-pairs tile on the diagonal: only ``c > r`` are pairs.
    lo, hi : float
        Histogram range.
    bins : int
        Histogram bins.
    center : float
        Shift for the moment sums (the running mean keeps them well conditioned).
    topk : int
        Neighbours kept per row (0: none).
    col_topk : bool
        Also keep the top-k of each column (self-pairs off-diagonal tiles,
        where row ``j`` of the other block sees these pairs transposed).
    threshold : float or None
        Count pairs with cosine ``>= threshold`` and keep the first ``max_pairs``.
    max_pairs : int
        Bound on the kept threshold pairs.
    row_floor, col_floor : ndarray, shape (h,) / (w,), optional
        Top-k candidates below a row's (column's) floor are skipped. Merging
        the result into a state whose k-th value is at least the floor is
        still exact; drivers pass their current k-th values to skip work.

    Returns
    -------
    dict
        ``n``, ``counts``, ``below``, ``above``, ``s1``, ``s2``, ``min``,
        ``argmin`` (r, c), ``max``, ``argmax``, ``row_topk`` ((h, k) values,
        (h, k) column indices) or None, ``col_topk`` ((w, k) values, (w, k) row
        indices) or None, ``thr_count``, ``thr_rows``, ``thr_cols``, ``thr_vals``.
    """
    s = np.clip(s.astype(np.float64), -1.0, 1.0)
    h, w = s.shape
    if diagonal:
        rows, cols = np.triu_indices(h, k=1, m=w)
    else:
        rows, cols = np.divmod(np.arange(h * w, dtype=np.int64), w)
    v = s[rows, cols]  # row-major order
    full = np.bincount(bin_slots(v, lo, hi, bins), minlength=bins + 2)
    res = {
        "n": int(v.size),
        "counts": full[1:bins + 1].astype(np.int64),
        "below": int(full[0]),
        "above": int(full[bins + 1]),
        "s1": float(np.sum(v - center)),
        "s2": float(np.sum((v - center) ** 2)),
    }
    if v.size:
        a, b = int(np.argmin(v)), int(np.argmax(v))
        res.update(min=float(v[a]), argmin=(int(rows[a]), int(cols[a])),
                   max=float(v[b]), argmax=(int(rows[b]), int(cols[b])))
    else:
        res.update(min=np.inf, argmin=(-1, -1), max=-np.inf, argmax=(-1, -1))
    res["row_topk"] = topk_of_rows(s, topk, diagonal, row_floor) if topk else None
    res["col_topk"] = topk_of_rows(s.T, topk, False, col_floor) if (topk and col_topk) else None
    if threshold is None:
        res.update(thr_count=0, thr_rows=np.empty(0, np.int64), thr_cols=np.empty(0, np.int64),
                   thr_vals=np.empty(0))
    else:
        sel = np.flatnonzero(v >= threshold)
        keep = sel[:max_pairs]
        res.update(thr_count=int(sel.size), thr_rows=rows[keep].astype(np.int64),
                   thr_cols=cols[keep].astype(np.int64), thr_vals=v[keep])
    return res

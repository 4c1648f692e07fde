"""All-pairs cosine: dense matrices for small sets, streaming statistics for millions.

:func:`cosine_matrix` materializes the ``(n, m)`` cosine matrix and refuses when
it would exceed a memory budget. :func:`pairwise_stats` never does: it walks
square tiles (the upper triangle only for self-pairs), computes each tile with
one BLAS GEMM into a preallocated buffer, reduces it at once with a fused
kernel (:mod:`embalg.kernels.pairwise_numba`, or the NumPy reference) into a
:class:`TilePartial`, and adds the partial into a :class:`PairwiseStats`.
Memory is bounded by the tile, the normalized blocks and the top-k state.

Partials and statistics *merge exactly*: histogram counts add, moments combine
with Chan's parallel formula, min/max keep the first pair in ``(i, j)`` order,
top-k lists merge per row (larger value first, ties to the lower index),
threshold pairs keep the first ``max_pairs`` in ``(i, j)`` order. A GPU or Dask
driver produces the same :class:`TilePartial` objects (global indices) for the
tiles of :func:`tile_schedule` and adds them in any order.

Policies
--------
* Rows need not be unit length: each row is divided by its norm (computed in
  float64) as it is read, so the cosine is ``<x_i, y_j> / (|x_i| |y_j|)``.
  A zero row raises ``ValueError`` naming the argument and the row.
* NaN or inf raise ``ValueError`` naming the argument and the row; each row
  block is checked when it is read (files are not read twice for checking).
* Cosines are clipped to ``[-1, 1]`` (float32 rounding overshoots by ~1e-7).
* Histogram: a cosine ``v`` goes to bin ``floor((v - lo) * bins / (hi - lo))``
  computed in float64, the last bin closed (as :func:`numpy.histogram`, up to
  the rounding of the edges); outside ``[lo, hi]`` it counts in ``below`` /
  ``above``. Quantiles are read from the histogram (one bin width).
* ``precision="float32"`` (default) computes tiles with float32 BLAS GEMM on
  unit rows; ``"float64"`` with float64 GEMM. Measured (``bench/common.py``
  ``unit_rows(2000, 1536, cone=1.0)``: 1,999,000 pairs, mean cosine 0.50):
  float32 cosines deviate from float64 by at most 3.3e-7 (mean absolute
  5.1e-8); the mean over all pairs moves by 1.1e-8, the std by 5e-10, and 14
  of the 1,999,000 pairs change bin in a 1000-bin histogram. Isotropic rows
  (mean cosine ~0): at most 6.7e-8, 6 pairs change bin.
  ``"tf32"`` and ``"bf16"`` are reserved for the GPU backend.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import os
import time

import numpy as np

from .backends import kernels, resolve_backend
from .validation import as_vectors, check_out, check_positive_float, check_positive_int
from .validation import check_same_dim, compute_dtype, first_nonfinite_row

logger = logging.getLogger(__name__)

#: default tile memory budget of :func:`pairwise_stats`, MiB (like scikit-learn's ``working_memory``)
DEFAULT_WORKING_MEMORY = 128

#: default bound on the threshold pairs kept
DEFAULT_MAX_PAIRS = 100_000

#: normalized input blocks are kept in memory when all of them fit in this many bytes
BLOCK_CACHE_BYTES = 1 << 30

#: default budget of :func:`cosine_matrix`'s result, bytes
COSINE_MATRIX_MAX_BYTES = 2 << 30

PRECISIONS = {"float32": np.float32, "float64": np.float64}

#: precisions that only GPU tensor cores provide (``backend="cuda"``, a later issue)
GPU_PRECISIONS = ("tf32", "bf16")


# ---------------------------------------------------------------- input rows

class RowSource:
    """Rows of an input (array, memmap or .npy path), read as unit-norm blocks.

    Each block ``[i0, i1)`` is read from the source once per use, checked
    (NaN/inf, zero rows; errors name ``name`` and the global row), divided by
    its float64 row norms and cast to the tile dtype (:func:`unit_rows`).
    Blocks are kept when ``cache`` is a dict (inputs that fit
    :data:`BLOCK_CACHE_BYTES`), so they are read and checked once.
    """

    def __init__(self, x, name: str):
        if isinstance(x, (str, os.PathLike)):
            from .io.npy import open_npy

            x = open_npy(x)
        self.array, _ = as_vectors(x, name)
        self.name = name
        self.n, self.d = self.array.shape
        self.cache: dict | None = None

    def block(self, i0: int, i1: int, dtype) -> np.ndarray:
        key = (i0, i1)
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        blk = unit_rows(self.array[i0:i1], self.name, dtype, offset=i0)
        if self.cache is not None:
            self.cache[key] = blk
        return blk


def unit_rows(raw, name: str, dtype, *, offset: int = 0) -> np.ndarray:
    """``raw / |raw|`` row-wise as a new C-contiguous ``dtype`` array, checked.

    The squared norms are summed in float64 straight from ``raw`` (a memmap
    block is read from the file there and then from the page cache); a
    non-finite norm is the NaN/inf check. Raises ``ValueError`` naming
    ``name`` and the row (``offset`` + local row) for NaN/inf and zero rows.
    """
    raw = np.asarray(raw)
    sq = np.einsum("ij,ij->i", raw, raw, dtype=np.float64)
    if not np.all(np.isfinite(sq)):
        bad = first_nonfinite_row(raw)
        if bad >= 0:
            raise ValueError(f"{name} contains NaN or inf at row {offset + bad}; "
                             "embeddings must be finite")
    norm = np.sqrt(sq)
    # overflow (float64 beyond 1e154) or underflow: rescale those rows by their largest entry
    odd = np.flatnonzero(~np.isfinite(sq) | (sq < np.finfo(np.float64).tiny))
    if odd.size:
        scale = np.abs(raw[odd]).max(axis=1).astype(np.float64)
        zero = odd[scale == 0]
        if zero.size:
            raise ValueError(f"{name} has a zero vector at row {offset + int(zero[0])} "
                             f"({zero.size} zero rows in rows {offset}..{offset + len(raw) - 1}); "
                             "the cosine of a zero vector is undefined: drop such rows first")
        rows = raw[odd] / scale[:, None]
        norm[odd] = scale * np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))
    inv = (1.0 / norm).astype(dtype)
    return np.multiply(raw, inv[:, None], dtype=dtype)


# ---------------------------------------------------------------- tiles

def tile_schedule(n: int, m: int | None, tile: int) -> list[tuple[int, int, int, int]]:
    """Tiles ``(i0, i1, j0, j1)`` covering the pairs: ``m is None`` is self-pairs.

    Self-pairs: row blocks ``I <= J`` of x (upper triangle, diagonal tiles
    included); otherwise every ``(I, J)`` of x rows by y rows. Row-block order.
    """
    rows = [(a, min(a + tile, n)) for a in range(0, n, tile)]
    if m is None:
        return [(i0, i1, j0, j1) for b, (i0, i1) in enumerate(rows) for (j0, j1) in rows[b:]]
    cols = [(a, min(a + tile, m)) for a in range(0, m, tile)]
    return [(i0, i1, j0, j1) for (i0, i1) in rows for (j0, j1) in cols]


def tile_size(d: int, itemsize: int, working_memory: float) -> int:
    """Square tile side ``t`` with ``t*t + 2*t*d`` elements in ``working_memory`` MiB.

    Above 256 rows ``t`` is rounded down to a multiple of 256 (BLAS-friendly).
    """
    budget = working_memory * 2 ** 20 / itemsize
    t = int((-2 * d + math.sqrt(4 * d * d + 4 * budget)) / 2)
    if t > 256:
        t -= t % 256
    return max(t, 1)


@dataclasses.dataclass
class TilePartial:
    """The reduction of one tile (or any set of pairs), in global indices.

    A GPU or Dask driver produces these for the tiles of :func:`tile_schedule`
    and adds them with :meth:`PairwiseStats.add`, in any order.

    Attributes
    ----------
    rows, cols : (int, int)
        Global row ranges ``[i0, i1)`` of x and ``[j0, j1)`` of y (or x).
    diagonal : bool
        A self-pairs diagonal tile (only ``i < j`` counted).
    n_pairs : int
        Pairs reduced.
    counts : ndarray, shape (bins,), int64
        Histogram over the shared edges; ``below`` / ``above`` count the rest.
    mean, m2 : float
        Mean and sum of squared deviations of the cosines (Chan's merge form).
    min, max : float
        Extremes (``+inf`` / ``-inf`` when ``n_pairs == 0``).
    argmin, argmax : (int, int)
        The first pair in ``(i, j)`` order holding the extreme; ``(-1, -1)`` if none.
    threshold_count : int
        Pairs with cosine ``>= threshold``.
    threshold_pairs : ndarray, shape (p, 2), int64; threshold_values : shape (p,)
        The first ``p <= max_pairs`` of them in ``(i, j)`` order.
    topk_rows : ndarray, shape (r,), int64
        Rows of x whose top-k candidates this tile holds.
    topk_values : ndarray, shape (r, k), float64; topk_indices : shape (r, k), int64
        Best ``k`` partners per such row, sorted (value desc, index asc);
        padding ``(-inf, -1)``.
    """

    rows: tuple
    cols: tuple
    diagonal: bool
    n_pairs: int
    counts: np.ndarray
    below: int
    above: int
    mean: float
    m2: float
    min: float
    argmin: tuple
    max: float
    argmax: tuple
    threshold_count: int
    threshold_pairs: np.ndarray
    threshold_values: np.ndarray
    topk_rows: np.ndarray
    topk_values: np.ndarray
    topk_indices: np.ndarray


def _shift_index(idx: np.ndarray, by: int) -> np.ndarray:
    return np.where(idx >= 0, idx + by, -1)


def reduce_tile(s, i0: int, j0: int, *, diagonal: bool, symmetric: bool, bins: int = 1000,
                range=(-1.0, 1.0), center: float = 0.0, topk: int = 0, threshold=None,
                max_pairs: int = DEFAULT_MAX_PAIRS, backend: str = "numpy",
                topk_floor=None) -> TilePartial:
    """Reduce the tile ``s`` of cosines between rows ``i0:i0+h`` and ``j0:j0+w``.

    ``symmetric`` (self-pairs) adds the column top-k of off-diagonal tiles:
    row ``j`` of x sees the pairs ``(i, j)``, ``i < j``, from this tile only.
    ``topk_floor`` (an ``(n,)`` array over all rows of x, e.g. the running
    state's k-th values) skips top-k candidates below it; adding the partial
    to a state whose k-th values are at least the floor stays exact. Inputs
    are checked by the caller.
    """
    mod = kernels("pairwise", backend)
    h, w = s.shape
    col_topk = symmetric and not diagonal
    r = mod.reduce_tile(s, diagonal=diagonal, lo=float(range[0]), hi=float(range[1]), bins=bins,
                        center=center, topk=topk, col_topk=col_topk, threshold=threshold,
                        max_pairs=max_pairs,
                        row_floor=None if topk_floor is None else topk_floor[i0:i0 + h],
                        col_floor=None if topk_floor is None or not col_topk else topk_floor[j0:j0 + w])
    n = r["n"]
    mean = center + r["s1"] / n if n else 0.0
    m2 = max(r["s2"] - r["s1"] ** 2 / n, 0.0) if n else 0.0

    def glob(p):
        return (p[0] + i0, p[1] + j0) if p[0] >= 0 else (-1, -1)

    if topk:
        parts_r = [np.arange(i0, i0 + h)]
        parts_v = [r["row_topk"][0]]
        parts_i = [_shift_index(r["row_topk"][1], j0)]
        if col_topk:
            parts_r.append(np.arange(j0, j0 + w))
            parts_v.append(r["col_topk"][0])
            parts_i.append(_shift_index(r["col_topk"][1], i0))
        t_rows, t_vals, t_idx = (np.concatenate(p) for p in (parts_r, parts_v, parts_i))
    else:
        t_rows, t_vals, t_idx = np.empty(0, np.int64), np.empty((0, 0)), np.empty((0, 0), np.int64)
    return TilePartial(
        rows=(i0, i0 + h), cols=(j0, j0 + w), diagonal=diagonal, n_pairs=n,
        counts=r["counts"], below=r["below"], above=r["above"], mean=mean, m2=m2,
        min=r["min"], argmin=glob(r["argmin"]), max=r["max"], argmax=glob(r["argmax"]),
        threshold_count=r["thr_count"],
        threshold_pairs=np.stack([r["thr_rows"] + i0, r["thr_cols"] + j0], axis=1),
        threshold_values=r["thr_vals"],
        topk_rows=t_rows.astype(np.int64), topk_values=t_vals, topk_indices=t_idx)


# ---------------------------------------------------------------- the statistics

@dataclasses.dataclass
class PairwiseStats:
    """Statistics of cosines over a set of pairs; merges exactly.

    Attributes
    ----------
    counts : ndarray, shape (bins,), int64
        Histogram of the cosines over ``edges`` (``numpy.histogram`` bin rule).
    edges : ndarray, shape (bins + 1,), float64
    n_pairs : int
        Pairs seen: ``n (n - 1) / 2`` for self-pairs, ``n * m`` for x vs y.
    below, above : int
        Pairs outside ``edges`` (never in ``counts``).
    min, max : float
        Extreme cosines (``+inf``/``-inf`` with no pairs).
    argmin, argmax : (int, int)
        The pair ``(i, j)`` holding them (the first in ``(i, j)`` order on ties);
        ``i < j`` for self-pairs.
    mean : float
        Mean cosine (``nan`` with no pairs).
    m2 : float
        Sum of squared deviations from the mean; ``std = sqrt(m2 / n_pairs)``.
    topk_values : ndarray, shape (n, k), float64; topk_indices : shape (n, k), int64
        Per row ``i`` of x, its ``k`` most similar partners ``j`` (never ``i``
        itself for self-pairs), value descending, ties to the lower index.
    threshold : float or None
    threshold_count : int
        Pairs with cosine ``>= threshold``.
    threshold_pairs : ndarray, shape (p, 2), int64; threshold_values : shape (p,)
        The first ``p = min(threshold_count, max_pairs)`` of them in ``(i, j)`` order.
    truncated : bool
        ``threshold_count > p``.
    max_pairs : int
    precision : str
    backend : str
        The kernel backend that reduced the tiles.
    """

    counts: np.ndarray
    edges: np.ndarray
    n_pairs: int = 0
    below: int = 0
    above: int = 0
    min: float = math.inf
    max: float = -math.inf
    argmin: tuple = (-1, -1)
    argmax: tuple = (-1, -1)
    mean: float = math.nan
    m2: float = 0.0
    topk_values: np.ndarray = None
    topk_indices: np.ndarray = None
    threshold: float | None = None
    threshold_count: int = 0
    threshold_pairs: np.ndarray = None
    threshold_values: np.ndarray = None
    truncated: bool = False
    max_pairs: int = DEFAULT_MAX_PAIRS
    precision: str = "float32"
    backend: str = ""

    @classmethod
    def empty(cls, n_rows: int, edges, *, topk: int = 0, threshold=None,
              max_pairs: int = DEFAULT_MAX_PAIRS, precision: str = "float32") -> "PairwiseStats":
        """Statistics of no pairs, ready for :meth:`add` (``n_rows`` rows of x keep top-k)."""
        edges = np.asarray(edges, dtype=np.float64)
        return cls(counts=np.zeros(edges.size - 1, np.int64), edges=edges,
                   topk_values=np.full((n_rows, topk), -np.inf),
                   topk_indices=np.full((n_rows, topk), -1, np.int64),
                   threshold=threshold, threshold_pairs=np.empty((0, 2), np.int64),
                   threshold_values=np.empty(0), max_pairs=max_pairs, precision=precision)

    # ------------------------------------------------------------ derived
    @property
    def std(self) -> float:
        """Population standard deviation of the cosines (``ddof = 0``)."""
        return math.sqrt(self.m2 / self.n_pairs) if self.n_pairs else math.nan

    @property
    def bins(self) -> int:
        return int(self.counts.size)

    @property
    def topk(self) -> int:
        return int(self.topk_values.shape[1])

    def quantiles(self, q):
        """Quantiles of the cosines read from the histogram.

        Linear interpolation inside the bin holding the ``q * n_pairs``-th pair,
        clipped to ``[min, max]``: exact to one bin width inside the range;
        mass ``below``/``above`` the range maps to its ends.

        Parameters
        ----------
        q : float or array_like in [0, 1]

        Returns
        -------
        float or ndarray like ``q``
        """
        qa = np.asarray(q, dtype=np.float64)
        if np.any(~np.isfinite(qa)) or np.any((qa < 0) | (qa > 1)):
            raise ValueError(f"q must lie in [0, 1], got {q!r}")
        if self.n_pairs == 0:
            raise ValueError("quantiles of no pairs are undefined (n_pairs == 0)")
        cum = np.concatenate(([0], np.cumsum(self.counts))).astype(np.float64) + self.below
        target = qa * self.n_pairs
        b = np.clip(np.searchsorted(cum, target, side="left") - 1, 0, self.bins - 1)
        inbin = self.counts[b].astype(np.float64)
        frac = np.where(inbin > 0, (target - cum[b]) / np.where(inbin > 0, inbin, 1), 0.0)
        val = self.edges[b] + np.clip(frac, 0, 1) * (self.edges[b + 1] - self.edges[b])
        val = np.where(target <= self.below, self.edges[0], val)
        val = np.where(target > self.n_pairs - self.above, self.edges[-1], val)
        val = np.clip(val, self.min, self.max)
        return float(val) if qa.ndim == 0 else val

    # ------------------------------------------------------------ merging
    def _check_compatible(self, other) -> None:
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("cannot merge statistics with different histogram edges")
        if self.threshold != other.threshold or self.max_pairs != other.max_pairs:
            raise ValueError(f"cannot merge statistics with different threshold/max_pairs "
                             f"({self.threshold}, {self.max_pairs}) vs "
                             f"({other.threshold}, {other.max_pairs})")

    def _absorb(self, o) -> None:
        """Add the scalar/histogram/threshold reductions of ``o`` (partial or stats)."""
        if o.n_pairs == 0:
            return
        self.counts += o.counts
        self.below += o.below
        self.above += o.above
        n_a, n_b = self.n_pairs, o.n_pairs
        n = n_a + n_b
        if n_a == 0:
            self.mean, self.m2 = float(o.mean), float(o.m2)
        else:
            delta = o.mean - self.mean
            self.mean = self.mean + delta * n_b / n
            self.m2 = self.m2 + o.m2 + delta * delta * n_a * n_b / n
        self.n_pairs = n
        if (o.min, tuple(o.argmin)) < (self.min, tuple(self.argmin)) or self.argmin[0] < 0:
            self.min, self.argmin = float(o.min), tuple(o.argmin)
        if (-o.max, tuple(o.argmax)) < (-self.max, tuple(self.argmax)) or self.argmax[0] < 0:
            self.max, self.argmax = float(o.max), tuple(o.argmax)
        self.threshold_count += o.threshold_count
        if len(o.threshold_values):
            pairs = np.concatenate([self.threshold_pairs, o.threshold_pairs])
            vals = np.concatenate([self.threshold_values, o.threshold_values])
            order = np.lexsort((pairs[:, 1], pairs[:, 0]))[:self.max_pairs]
            self.threshold_pairs, self.threshold_values = pairs[order], vals[order]
        self.truncated = self.threshold_count > len(self.threshold_values)

    def add(self, partial: TilePartial, *, backend: str = "numpy") -> "PairwiseStats":
        """Add a :class:`TilePartial` (disjoint from the pairs already in) in place."""
        self._absorb(partial)
        if self.topk and len(partial.topk_rows):
            rows = partial.topk_rows
            merge = kernels("pairwise", backend).merge_topk
            v, i = merge(self.topk_values[rows], self.topk_indices[rows],
                         partial.topk_values, partial.topk_indices)
            self.topk_values[rows] = v
            self.topk_indices[rows] = i
        return self

    def merge(self, other: "PairwiseStats") -> "PairwiseStats":
        """Statistics of the union of two disjoint pair sets (a new object).

        Both must share edges, ``threshold``, ``max_pairs`` and the top-k shape
        (the same rows of x, indices in the same space; see :meth:`shifted`).
        """
        self._check_compatible(other)
        if self.topk_values.shape != other.topk_values.shape:
            raise ValueError(f"cannot merge top-k states of shapes {self.topk_values.shape} and "
                             f"{other.topk_values.shape}; use .shifted(rows=..., n_rows=...)")
        out = self.copy()
        out._absorb(other)
        if self.topk:
            from .kernels.pairwise_numpy import merge_topk

            out.topk_values, out.topk_indices = merge_topk(
                self.topk_values, self.topk_indices, other.topk_values, other.topk_indices)
        return out

    def copy(self) -> "PairwiseStats":
        return dataclasses.replace(self, **{f.name: getattr(self, f.name).copy()
                                            for f in dataclasses.fields(self)
                                            if isinstance(getattr(self, f.name), np.ndarray)})

    def shifted(self, *, rows: int = 0, cols: int = 0, n_rows: int | None = None) -> "PairwiseStats":
        """Move to a larger index space: pair ``(i, j)`` becomes ``(i + rows, j + cols)``.

        The top-k state moves to rows ``rows .. rows + n - 1`` of a state with
        ``n_rows`` rows (default: unchanged size). Used to merge statistics of
        blocks, e.g. ``pairwise_stats(x, y[:b]).merge(pairwise_stats(x, y[b:]).shifted(cols=b))``.
        """
        out = self.copy()

        def sh(p):
            return (p[0] + rows, p[1] + cols) if p[0] >= 0 else (-1, -1)

        out.argmin, out.argmax = sh(self.argmin), sh(self.argmax)
        out.threshold_pairs = self.threshold_pairs + np.array([rows, cols], np.int64)
        n_here, k = self.topk_values.shape
        n_rows = n_here if n_rows is None else int(n_rows)
        if rows + n_here > n_rows:
            raise ValueError(f"rows={rows} + {n_here} rows exceeds n_rows={n_rows}")
        out.topk_values = np.full((n_rows, k), -np.inf)
        out.topk_indices = np.full((n_rows, k), -1, np.int64)
        out.topk_values[rows:rows + n_here] = self.topk_values
        out.topk_indices[rows:rows + n_here] = _shift_index(self.topk_indices, cols)
        return out

    def to_dict(self, *, topk: bool = False, quantiles=(0.001, 0.01, 0.05, 0.25, 0.5, 0.75,
                                                         0.95, 0.99, 0.999)) -> dict:
        """A JSON-ready dict (plain ints, floats, lists); top-k arrays only if ``topk``."""
        def num(v):
            return None if not math.isfinite(v) else float(v)

        d = {
            "n_pairs": int(self.n_pairs),
            "bins": self.bins,
            "range": [float(self.edges[0]), float(self.edges[-1])],
            "precision": self.precision,
            "backend": self.backend,
            "mean": num(self.mean), "std": num(self.std),
            "min": num(self.min), "argmin": [int(v) for v in self.argmin],
            "max": num(self.max), "argmax": [int(v) for v in self.argmax],
            "below_range": int(self.below), "above_range": int(self.above),
            "quantiles": ({str(q): float(v) for q, v in zip(quantiles, self.quantiles(list(quantiles)))}
                          if self.n_pairs else {}),
            "counts": self.counts.tolist(),
            "edges": self.edges.tolist(),
            "threshold": self.threshold,
            "threshold_count": int(self.threshold_count),
            "threshold_pairs": [[int(i), int(j), float(v)] for (i, j), v in
                                zip(self.threshold_pairs, self.threshold_values)],
            "truncated": bool(self.truncated),
            "max_pairs": int(self.max_pairs),
            "topk": self.topk,
        }
        if topk:
            d["topk_values"] = self.topk_values.tolist()
            d["topk_indices"] = self.topk_indices.tolist()
        return d


# ---------------------------------------------------------------- validation

def _check_range(value) -> tuple[float, float]:
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise TypeError(f"range must be a pair (lo, hi), got {value!r}") from None
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"range must hold two finite numbers, got {value!r}")
    if not lo < hi:
        raise ValueError(f"range needs lo < hi, got lo = {lo}, hi = {hi}")
    return float(lo), float(hi)


def _check_threshold(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"threshold must be a finite number or None, got {value!r}")
    return float(value)


def check_precision(precision, backend: str) -> type:
    """The NumPy tile dtype for ``precision``; GPU-only modes raise for CPU backends."""
    if precision in GPU_PRECISIONS:
        if backend != "cuda":
            raise ValueError(f"precision={precision!r} needs backend='cuda' (GPU tensor cores); "
                             f"on the CPU use 'float32' or 'float64'")
        raise ValueError(f"precision={precision!r} is not implemented yet")  # pragma: no cover
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS) + list(GPU_PRECISIONS)}, "
                         f"got {precision!r}")
    return PRECISIONS[precision]


# ---------------------------------------------------------------- public API

def cosine_matrix(x, y=None, *, out=None, max_bytes: int = COSINE_MATRIX_MAX_BYTES):
    """Dense cosine matrix between the rows of ``x`` and ``y`` (or ``x``).

    .. math:: C_{ij} = \\frac{\\langle x_i, y_j \\rangle}{\\lVert x_i \\rVert \\lVert y_j \\rVert}

    clipped to ``[-1, 1]``. For sets too large to store use :func:`pairwise_stats`.

    Parameters
    ----------
    x : array_like, shape (n, d) or (d,), or a path to a .npy file
        float16/32/64 vectors; rows need not be unit length.
    y : array_like, shape (m, d) or (d,), optional
        Defaults to ``x``.
    out : ndarray, shape (n, m), optional
        Written in place; must have the result dtype (float32, or float64 if
        either input is float64); the budget does not apply.
    max_bytes : int
        Refuse results larger than this (default 2 GiB).

    Returns
    -------
    ndarray, shape (n, m), float32 or float64

    Raises
    ------
    ValueError
        Result above ``max_bytes`` (the message states the bytes needed), NaN
        or inf, zero rows, dimension mismatch, bad ``out`` shape.
    TypeError
        Non-float input, bad ``out`` dtype.

    Examples
    --------
    >>> import numpy as np, embalg as ea
    >>> ea.cosine_matrix(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]]))
    array([[1.        , 0.70710678, 0.        ],
           [0.70710678, 1.        , 0.70710678],
           [0.        , 0.70710678, 1.        ]])
    """
    xs = RowSource(x, "x")
    ys = xs if y is None else RowSource(y, "y")
    check_same_dim([xs.array, ys.array], ["x", "y"])
    dtype = compute_dtype(xs.array, ys.array)
    shape = (xs.n, ys.n)
    nbytes = xs.n * ys.n * dtype.itemsize
    if out is None:
        max_bytes = check_positive_int(max_bytes, "max_bytes")
        if nbytes > max_bytes:
            raise ValueError(f"cosine_matrix would need {nbytes:,} bytes ({nbytes / 2**30:.2f} GiB) "
                             f"for a {shape[0]} x {shape[1]} {dtype} matrix, above max_bytes="
                             f"{max_bytes:,}; stream statistics with pairwise_stats, or raise "
                             "max_bytes")
        out = np.empty(shape, dtype)
    else:
        check_out(out, shape, dtype, np)
    a = xs.block(0, xs.n, dtype)
    b = a if y is None else ys.block(0, ys.n, dtype)
    np.matmul(a, b.T, out=out)
    np.clip(out, -1.0, 1.0, out=out)
    return out


def pairwise_stats(x, y=None, *, bins: int = 1000, range=(-1.0, 1.0), topk: int = 0,
                   threshold=None, max_pairs: int = DEFAULT_MAX_PAIRS, tile: int | None = None,
                   working_memory: float | None = None, backend: str = "auto", progress=None,
                   precision: str = "float32") -> PairwiseStats:
    """Streaming statistics of all pairwise cosines, never storing the matrix.

    With ``y`` None the pairs are ``i < j`` of x (``n (n - 1) / 2`` of them);
    with ``y`` given, every ``(i, j)`` of x by y (``n m``). Cosines are
    computed tile by tile (square tiles of side ``tile``; for self-pairs only
    the upper triangle of tiles) with a BLAS GEMM of unit rows and reduced at
    once, so memory is ``O(tile**2 + tile d + n topk)``.

    .. math:: c_{ij} = \\mathrm{clip}\\Big(\\frac{\\langle x_i, y_j\\rangle}
              {\\lVert x_i\\rVert \\lVert y_j\\rVert}, -1, 1\\Big)

    Parameters
    ----------
    x : array_like, np.memmap or path to a .npy file, shape (n, d)
        float16/32/64 vectors; rows need not be unit length (divided by their
        norms). Files and memmaps are read row block by row block.
    y : same, shape (m, d), optional
    bins : int
        Histogram bins over ``range``.
    range : (float, float)
        Histogram range, ``lo < hi``; pairs outside are counted in ``below`` / ``above``.
    topk : int
        Most similar partners kept per row of x (never the row itself with
        ``y`` None); at most ``n - 1`` (self) or ``m``.
    threshold : float, optional
        Count pairs with cosine ``>= threshold`` and keep the first ``max_pairs``
        in ``(i, j)`` order (``truncated`` says when more exist).
    max_pairs : int
        Bound on kept threshold pairs (default 100,000).
    tile : int, optional
        Tile side in rows; overrides ``working_memory``.
    working_memory : float, optional
        MiB for the tile and its two row blocks (default 128), as in scikit-learn.
    backend : {"auto", "numpy", "numba"}
        Tile reduction kernels ("cuda" is a later issue).
    progress : bool or None
        Progress bar (tiles done / total, pairs/s, ETA); None: when stderr is a terminal.
    precision : {"float32", "float64"}
        Tile arithmetic (float32: BLAS SGEMM; see the module notes for the
        measured deviation). ``"tf32"``, ``"bf16"`` need ``backend="cuda"``.

    Returns
    -------
    PairwiseStats

    Raises
    ------
    ValueError
        NaN/inf or zero rows (naming the argument and row), dimension mismatch,
        ``bins <= 0``, ``range`` with ``lo >= hi``, ``topk`` above the pairs
        available per row, bad ``threshold``/``max_pairs``/``tile``/``precision``,
        a truncated or lying .npy file.
    TypeError
        Non-float input or wrongly typed parameters.

    Examples
    --------
    >>> import numpy as np, embalg as ea
    >>> x = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0], [-1.0, 0.0]])
    >>> st = ea.pairwise_stats(x, bins=4, topk=1)
    >>> st.n_pairs, st.counts.tolist()
    (6, [2, 0, 2, 2])
    >>> round(st.min, 6), st.argmin, round(st.max, 6), st.argmax
    (-1.0, (0, 3), 0.707107, (0, 1))
    >>> st.topk_indices[:, 0].tolist()
    [1, 0, 1, 2]
    """
    bins = check_positive_int(bins, "bins")
    lo, hi = _check_range(range)
    topk = check_positive_int(topk, "topk", allow_zero=True)
    threshold = _check_threshold(threshold)
    max_pairs = check_positive_int(max_pairs, "max_pairs", allow_zero=True)
    xs = RowSource(x, "x")
    ys = xs if y is None else RowSource(y, "y")
    check_same_dim([xs.array, ys.array], ["x", "y"])
    n, m, d = xs.n, ys.n, xs.d
    available = n - 1 if y is None else m
    if topk > max(available, 0):
        raise ValueError(f"topk = {topk} exceeds the {max(available, 0)} partners available per row "
                         f"({'n - 1 for self-pairs' if y is None else 'm rows of y'})")
    be = resolve_backend(backend, xs.array, n_elements=n * m)
    dtype = check_precision(precision, be)
    kernels("pairwise", be)  # a backend without pairwise kernels ("cuda" for now) fails here
    itemsize = np.dtype(dtype).itemsize
    if tile is not None:
        if working_memory is not None:
            raise ValueError("give tile or working_memory, not both")
        t = check_positive_int(tile, "tile")
    else:
        wm = DEFAULT_WORKING_MEMORY if working_memory is None else \
            check_positive_float(working_memory, "working_memory")
        t = tile_size(d, itemsize, wm)
    t = max(1, min(t, max(n, m, 1)))
    edges = np.linspace(lo, hi, bins + 1)
    stats = PairwiseStats.empty(n, edges, topk=topk, threshold=threshold, max_pairs=max_pairs,
                                precision=precision)
    stats.backend = be
    symmetric = y is None
    schedule = tile_schedule(n, None if symmetric else m, t)
    blocks_bytes = (n + (0 if symmetric else m)) * d * itemsize
    if blocks_bytes <= BLOCK_CACHE_BYTES:
        xs.cache = {}
        ys.cache = xs.cache if symmetric else {}
    logger.info("pairwise_stats: n=%d m=%s d=%d tile=%d tiles=%d backend=%s precision=%s",
                n, None if symmetric else m, d, t, len(schedule), be, precision)
    buf = np.empty(t * t, dtype)
    total_pairs = n * (n - 1) // 2 if symmetric else n * m
    from .progress import progress_bar

    t0 = time.perf_counter()
    with progress_bar(len(schedule), desc="pairs", unit="tile", progress=progress) as bar:
        a_key = None
        for i0, i1, j0, j1 in schedule:
            if a_key != (i0, i1):
                a = xs.block(i0, i1, dtype)
                a_key = (i0, i1)
            diagonal = symmetric and i0 == j0
            b = a if diagonal else ys.block(j0, j1, dtype)
            s = buf[:(i1 - i0) * (j1 - j0)].reshape(i1 - i0, j1 - j0)
            np.matmul(a, b.T, out=s)
            center = stats.mean if stats.n_pairs else 0.0
            part = reduce_tile(s, i0, j0, diagonal=diagonal, symmetric=symmetric, bins=bins,
                               range=(lo, hi), center=center, topk=topk, threshold=threshold,
                               max_pairs=max_pairs, backend=be,
                               topk_floor=stats.topk_values[:, -1] if topk else None)
            stats.add(part, backend=be)
            bar.update(1)
            if not bar.disable:
                rate = stats.n_pairs / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix_str(f"{rate:.3g} pairs/s, {stats.n_pairs:.3g}/{total_pairs:.3g} pairs",
                                    refresh=False)
    return stats

"""Linear alignment between embedding spaces: orthogonal Procrustes and ridge least squares.

Both fits take paired rows ``X`` (n, d1) and ``Y`` (n, d2) -- the same texts
embedded by two models, or before/after an edit -- and return an
:class:`AlignmentMap` ``W`` of shape (d1, d2) applied as ``X @ W``. ``d1`` and
``d2`` may differ (MiniLM 384 -> text-embedding-3 at 256 or 1536).

Precision: Procrustes' ``X^T Y`` is a GEMM in the input precision (float32
stays float32; on the GPU for CuPy inputs); :func:`linear_map` accumulates its
Gram products in float64. The small ``d x d`` factorizations run in float64.

Rank policy: when the rows do not determine the fit (rank below ``min(d1, d2)``
for Procrustes, below ``d1`` for the unconstrained map) a ``RankWarning``
(a ``UserWarning``) states the numerical rank; the result is still finite.
"""
from __future__ import annotations

import logging
import warnings

import numpy as np

from .atomic import atomic_path
from .validation import array_namespace, as_vectors, check_finite, compute_dtype

logger = logging.getLogger(__name__)

KINDS = ("procrustes", "linear")


class RankWarning(UserWarning):
    """The rows do not determine the fit; the warning states the numerical rank."""


def _to_host(a):
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def _check_finite_fast(x, name) -> None:
    """:func:`check_finite` at the cost of one streaming read and no n x d temporary.

    Column sums are finite only if every entry is (NaN and inf propagate through
    addition; inf + -inf is NaN), so a finite sum proves the data finite. A
    non-finite sum (bad data, or an overflow of huge finite values) falls back
    to the exact row-by-row check, which names the first bad row.
    """
    xp = array_namespace(x)
    if not bool(xp.isfinite(x.sum(axis=0)).all()):
        check_finite(x, name)


def _check_pair(X, Y):
    """Validate paired training rows; return 2-D X, Y and the GEMM dtype."""
    X2, x1d = as_vectors(X, "X", allow_1d=False)
    Y2, y1d = as_vectors(Y, "Y", allow_1d=False)
    if X2.shape[0] != Y2.shape[0]:
        raise ValueError(f"X and Y must hold the same texts row by row: X has {X2.shape[0]} rows "
                         f"while Y has {Y2.shape[0]}")
    if X2.shape[0] == 0:
        raise ValueError("X and Y are empty (0 rows); a fit needs at least one pair of rows")
    _check_finite_fast(X2, "X")
    _check_finite_fast(Y2, "Y")
    dtype = compute_dtype(X2, Y2)
    xp = array_namespace(X2, Y2)
    return xp.asarray(X2, dtype=dtype), xp.asarray(Y2, dtype=dtype), dtype


def _numerical_rank(sv, dim, dtype) -> tuple[int, float]:
    """Rank from singular values with NumPy's ``matrix_rank`` tolerance in the GEMM dtype."""
    tol = float(sv.max(initial=0.0)) * dim * np.finfo(dtype).eps
    return int((sv > tol).sum()), tol


class AlignmentMap:
    """A fitted linear map ``x -> scale * x @ matrix`` from d1-space into d2-space.

    Attributes
    ----------
    matrix : ndarray, shape (d1, d2), float64
        Orthonormal rows or columns (``kind="procrustes"``) or a least-squares map.
    scale : float
        Scalar factor (1.0 unless ``procrustes(..., scale=True)``).
    kind : {"procrustes", "linear"}
    rank : int
        Numerical rank of the data that determined the fit.
    ridge : float
        Ridge penalty of a linear fit (0.0 for Procrustes).

    Examples
    --------
    >>> import numpy as np, embalg as ea
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((50, 4))
    >>> Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    >>> m = ea.procrustes(X, X @ Q)
    >>> bool(np.allclose(m.matrix, Q)), m.dims
    (True, (4, 4))
    >>> bool(np.allclose(m.apply(X[:2]), X[:2] @ Q))
    True
    """

    def __init__(self, matrix, *, scale=1.0, kind="procrustes", rank=None, ridge=0.0):
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or 0 in matrix.shape:
            raise ValueError(f"matrix must be a non-empty 2-D array (d1, d2), got shape {matrix.shape}")
        if not np.isfinite(matrix).all():
            raise ValueError("matrix contains NaN or inf")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        scale = float(scale)
        if not np.isfinite(scale):
            raise ValueError(f"scale must be finite, got {scale}")
        self.matrix = matrix
        self.scale = scale
        self.kind = kind
        self.rank = int(min(matrix.shape) if rank is None else rank)
        self.ridge = float(ridge)
        self._cast = {}

    @property
    def dims(self) -> tuple[int, int]:
        """``(d1, d2)``: input and output dimensions."""
        return tuple(int(v) for v in self.matrix.shape)

    def __repr__(self):
        return (f"AlignmentMap(kind={self.kind!r}, dims={self.dims}, scale={self.scale:.6g}, "
                f"rank={self.rank})")

    def apply(self, x):
        """Map vectors: ``scale * x @ matrix``.

        Parameters
        ----------
        x : array_like, shape (d1,) or (n, d1)

        Returns
        -------
        ndarray, shape (d2,) or (n, d2)
            In ``x``'s compute dtype (float32 for float16/float32, float64 for float64);
            a GEMM in that precision (on the GPU for CuPy input).
        """
        x2, was_1d = as_vectors(x, "x")
        if x2.shape[1] != self.matrix.shape[0]:
            raise ValueError(f"dimension mismatch: the map takes d1 = {self.matrix.shape[0]} while "
                             f"x has d = {x2.shape[1]}")
        check_finite(x2, "x")
        dtype = compute_dtype(x2)
        xp = array_namespace(x2)
        key = (xp.__name__, dtype)
        if key not in self._cast:
            self._cast[key] = xp.asarray((self.scale * self.matrix).astype(dtype))
        out = xp.asarray(x2, dtype=dtype) @ self._cast[key]
        return out[0] if was_1d else out

    __call__ = apply

    def save(self, path) -> None:
        """Write the map to ``path`` as ``.npz`` (atomically: temp file + rename)."""
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, matrix=self.matrix, scale=np.float64(self.scale),
                         kind=np.array(self.kind), rank=np.int64(self.rank),
                         ridge=np.float64(self.ridge), format=np.array("embalg.AlignmentMap/1"))

    @classmethod
    def load(cls, path) -> "AlignmentMap":
        """Read a map written by :meth:`save`; ``ValueError`` for a file that is not one."""
        try:
            with np.load(path, allow_pickle=False) as z:
                fields = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise ValueError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc})") from None
        if str(fields.get("format", "")) != "embalg.AlignmentMap/1":
            raise ValueError(f"{path} is not an embalg AlignmentMap file (missing or wrong 'format' field)")
        missing = {"matrix", "scale", "kind", "rank", "ridge"} - set(fields)
        if missing:
            raise ValueError(f"{path} lacks fields {sorted(missing)}")
        return cls(fields["matrix"], scale=float(fields["scale"]), kind=str(fields["kind"]),
                   rank=int(fields["rank"]), ridge=float(fields["ridge"]))


def _gram(X, Y):
    """``X^T Y`` as a GEMM in the input precision, returned on the host in float64."""
    return _to_host(X.T @ Y).astype(np.float64)


def _gram64(X, Y, block=65536):
    """``X^T Y`` accumulated in float64 over row blocks (no full float64 copy of the data)."""
    xp = array_namespace(X, Y)
    acc = np.zeros((X.shape[1], Y.shape[1]))
    for start in range(0, X.shape[0], block):
        xb = xp.asarray(X[start:start + block], dtype=xp.float64)
        yb = xb if Y is X else xp.asarray(Y[start:start + block], dtype=xp.float64)
        acc += _to_host(xb.T @ yb)
    return acc


def _sum_squares(X) -> float:
    """``||X||_F^2`` accumulated in float64, in row blocks (no full float64 copy)."""
    total = 0.0
    xp = array_namespace(X)
    for start in range(0, X.shape[0], 65536):
        blk = X[start:start + 65536].astype(xp.float64)
        total += float((blk * blk).sum())
    return total


def procrustes(X, Y, *, scale=False) -> AlignmentMap:
    """Orthogonal Procrustes: the ``R`` with orthonormal rows/columns minimizing ``||X R - Y||_F``.

    .. math::

        X^T Y = U \\Sigma V^T \\ (\\text{thin SVD}), \\qquad R = U V^T,
        \\qquad s = \\frac{\\operatorname{tr}\\Sigma}{\\lVert X \\rVert_F^2}\\ (\\text{scale=True})

    Parameters
    ----------
    X : array_like, shape (n, d1)
    Y : array_like, shape (n, d2)
        Paired rows (row i of X and of Y describe the same text). ``d1 == d2``
        gives an orthogonal ``R`` (the same as ``scipy.linalg.orthogonal_procrustes``);
        ``d1 < d2`` an isometric embedding (``R R^T = I``); ``d1 > d2`` a
        projection (``R^T R = I``).
    scale : bool
        Also fit the scalar ``s`` minimizing ``||s X R - Y||_F``.

    Returns
    -------
    AlignmentMap
        ``kind="procrustes"``, ``matrix = R`` (d1, d2) float64.

    Warns
    -----
    RankWarning
        When ``rank(X^T Y) < min(d1, d2)`` (e.g. fewer rows than dimensions):
        ``R`` is then not unique; the SVD's completion is returned.

    Raises
    ------
    ValueError
        Row-count mismatch, empty input, NaN/inf, all-zero ``X`` with ``scale=True``.

    Examples
    --------
    >>> import numpy as np, embalg as ea
    >>> rng = np.random.default_rng(1)
    >>> X = rng.standard_normal((100, 3))
    >>> Q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    >>> m = ea.procrustes(X, 2.0 * X @ Q, scale=True)
    >>> bool(np.allclose(m.matrix, Q)), round(m.scale, 12)
    (True, 2.0)
    >>> m = ea.procrustes(X, X[:, :2])                        # 3 -> 2 dimensions
    >>> m.dims, bool(np.allclose(m.matrix.T @ m.matrix, np.eye(2)))
    ((3, 2), True)
    """
    X, Y, dtype = _check_pair(X, Y)
    d1, d2 = X.shape[1], Y.shape[1]
    M = _gram(X, Y)
    U, sv, Vt = np.linalg.svd(M, full_matrices=False)
    rank, tol = _numerical_rank(sv, max(d1, d2), dtype)
    need = min(d1, d2)
    if rank < need:
        warnings.warn(f"procrustes: X^T Y has numerical rank {rank} < min(d1, d2) = {need} "
                      f"({X.shape[0]} rows, singular values <= {tol:.3g} counted as zero): the "
                      f"data determine the map only on a {rank}-dimensional subspace (too few "
                      "rows, or embeddings that never vary in some directions)",
                      RankWarning, stacklevel=2)
    R = U @ Vt
    s = 1.0
    if scale:
        ss = _sum_squares(X)
        if ss == 0.0:
            raise ValueError("X is all zeros; the scale of a Procrustes fit is undefined")
        s = float(sv.sum()) / ss
    return AlignmentMap(R, scale=s, kind="procrustes", rank=rank)


def linear_map(X, Y, *, ridge=0.0) -> AlignmentMap:
    """Unconstrained least squares ``W = argmin ||X W - Y||_F^2 + ridge ||W||_F^2``.

    .. math::

        W = (X^T X + \\lambda I)^{+} X^T Y

    solved through the eigendecomposition of ``X^T X`` in float64 (both Gram
    products are accumulated in float64 over row blocks, whatever the input
    dtype: the normal equations square the condition number). The numerical
    rank counts eigenvalues of ``X^T X`` above ``d1 * eps64 * max``, i.e.
    singular values of ``X`` above ``sigma_max * sqrt(d1 * eps64)``. With
    ``ridge=0`` the eigenvalues below that tolerance are dropped, giving the
    minimum-norm solution.

    Parameters
    ----------
    X : array_like, shape (n, d1)
    Y : array_like, shape (n, d2)
    ridge : float, >= 0
        Absolute ridge penalty ``lambda`` (in units of squared vector norms;
        rows of unit vectors give ``X^T X`` eigenvalues summing to ``n``).

    Returns
    -------
    AlignmentMap
        ``kind="linear"``, ``matrix = W`` (d1, d2) float64, ``rank = rank(X)``.

    Warns
    -----
    RankWarning
        When ``rank(X) < d1`` (fewer independent rows than input dimensions).

    Examples
    --------
    >>> import numpy as np, embalg as ea
    >>> rng = np.random.default_rng(2)
    >>> X = rng.standard_normal((40, 3)); W = rng.standard_normal((3, 5))
    >>> bool(np.allclose(ea.linear_map(X, X @ W).matrix, W))
    True
    """
    from .validation import check_positive_float

    lam = check_positive_float(ridge, "ridge", allow_zero=True)
    X, Y, dtype = _check_pair(X, Y)
    d1 = X.shape[1]
    G = _gram64(X, X)
    B = _gram64(X, Y)
    evals, evecs = np.linalg.eigh((G + G.T) / 2.0)
    evals = np.clip(evals, 0.0, None)
    rank, tol = _numerical_rank(evals, d1, np.float64)
    if rank < d1:
        advice = ("the ridge keeps the solution unique" if lam > 0
                  else "the minimum-norm solution is returned; pass ridge > 0 to regularize")
        warnings.warn(f"linear_map: X has numerical rank {rank} < d1 = {d1} ({X.shape[0]} rows: "
                      "too few, or embeddings that never vary in some directions); "
                      f"{advice}", RankWarning, stacklevel=2)
    if lam > 0:
        inv = 1.0 / (evals + lam)
    else:
        keep = evals > tol
        inv = np.zeros_like(evals)
        inv[keep] = 1.0 / evals[keep]
    W = evecs @ (inv[:, None] * (evecs.T @ B))
    return AlignmentMap(W, kind="linear", rank=rank, ridge=lam)

"""Batched operators on embedding vectors: the thread's algebra.

Every public operator follows one path (:func:`_apply`): validate the inputs,
choose the compute dtype and the backend, allocate (or check) the output,
split the rows into batches that fit a memory budget and call the backend's
``rowwise`` kernel per batch; then act on rows that were not finite or had
zero norm. Backends implement kernels only (:mod:`embalg.kernels`).

Shapes and dtypes
-----------------
Inputs are vectors ``(d,)`` or batches ``(n, d)``; a single vector (or a
``(1, d)`` batch) broadcasts against ``n`` rows. When every input is 1-D the
result is 1-D. float32 and float64 are computed and returned as they are
(mixed inputs promote to float64); float16 and bfloat16 are computed with
float32 accumulation and returned as float32. Kernels accumulate in float64.
Results have the input's array type (NumPy in, NumPy out; CuPy in, CuPy out).

Zero rows
---------
Where a direction is needed (``normalize=True``) a row whose result has zero
norm raises ``ValueError`` naming the row (``on_zero="raise"``, the default);
``on_zero="nan"`` fills such rows with NaN and ``on_zero="zero"`` leaves them 0.
NaN or inf in any input always raises ``ValueError`` naming the input and row.
Inputs are never modified, unless one of them is also passed as ``out=``.
"""
from __future__ import annotations

import functools

import numpy as np

from . import validation as v
from .backends import kernels, resolve_backend

#: bytes of float64 temporaries one batch may use (the NumPy reference makes several)
BATCH_BYTES = 256 * 2**20

#: default clamp for :func:`hadamard_div`
DEFAULT_EPS = 1e-6


def _check_inputs(arrays, names):
    """Validate vector inputs together; return (list of 2-D arrays, n, d, dtype, all_1d, xp)."""
    checked = [v.as_vectors(a, nm) for a, nm in zip(arrays, names)]
    xs = [c[0] for c in checked]
    all_1d = all(c[1] for c in checked)
    xp = v.array_namespace(*xs)
    if xp is not np and not all(v.array_namespace(a) is xp for a in xs):
        raise TypeError("inputs mix NumPy and CuPy arrays; move them to one device first")
    d = v.check_same_dim(xs, names)
    n = v.broadcast_rows(xs, names)
    dtype = v.compute_dtype(*xs)
    xs = [a if a.dtype == dtype else a.astype(dtype) for a in xs]
    return xs, n, d, dtype, all_1d, xp


def _batches(n: int, d: int, n_inputs: int, budget: int = BATCH_BYTES):
    """Row slices whose float64 temporaries fit ``budget`` bytes (a backend may set its own)."""
    rows = max(1, budget // max(1, 8 * d * (n_inputs + 2)))
    for start in range(0, n, rows):
        yield slice(start, min(n, start + rows))


def _raise_nonfinite(xs, names, bad_row):
    for a, nm in zip(xs, names):
        r = bad_row if a.shape[0] > 1 else 0
        if not bool(v.array_namespace(a).isfinite(a[r]).all()):
            raise ValueError(f"{nm} contains NaN or inf (row {r}); embeddings must be finite")
    raise ValueError(f"the result of row {bad_row} is not finite (overflow)")


def _apply(op, arrays, names, *, normalize=True, weights=None, eps=DEFAULT_EPS,
           on_zero="raise", backend="auto", out=None):
    """The one path of every element-wise operator (see the module docstring)."""
    v.check_on_zero(on_zero)
    xs, n, d, dtype, all_1d, xp = _check_inputs(arrays, names)
    name = resolve_backend(backend, xs[0], n_elements=n * d)
    k = kernels("elementwise", name)
    shape = (d,) if all_1d else (n, d)
    v.check_out(out, shape, dtype, xp)
    result = xp.empty((n, d), dtype) if out is None else (out[None, :] if all_1d else out)
    w = np.ones(len(xs)) if weights is None else weights
    norms = np.empty(n, np.float64)
    for sl in _batches(n, d, len(xs), getattr(k, "BATCH_BYTES", BATCH_BYTES)):
        part = [a[sl] if a.shape[0] > 1 else a for a in xs]
        norms[sl] = _to_numpy(k.rowwise(op, tuple(part), result[sl], weights=w, eps=eps,
                                        normalize=normalize))
    bad = ~np.isfinite(norms)
    if bad.any():
        _raise_nonfinite(xs, names, int(np.argmax(bad)))
    if normalize:
        zero = norms == 0
        if zero.any():
            rows = np.flatnonzero(zero)
            if on_zero == "raise":
                raise ValueError(
                    f"{op}: the result has zero norm in {rows.size} row(s) (first: row {rows[0]}), "
                    "so it has no direction; pass on_zero='nan' or on_zero='zero' to keep going")
            if on_zero == "nan":
                result[xp.asarray(rows)] = np.nan
    return result[0] if all_1d else result


def _to_numpy(a):
    return a if isinstance(a, np.ndarray) else a.get()


def normalize(x, *, on_zero="raise", backend="auto", out=None):
    """Scale each row to unit length.

    .. math:: \\hat x_i = x_i / \\lVert x_i \\rVert_2

    Parameters
    ----------
    x : array_like, shape (d,) or (n, d), float16/32/64
    on_zero : {"raise", "nan", "zero"}
        What a zero row gives: an error naming the row (default), NaN, or zeros.
    backend : {"auto", "numpy", "numba", "cuda"}
    out : ndarray, optional, shape and dtype of the result

    Returns
    -------
    ndarray, the shape of ``x``; float32 or float64

    Raises
    ------
    ValueError
        NaN/inf, zero rows (``on_zero="raise"``), bad shapes.
    TypeError
        Non-float dtypes, wrong ``out`` dtype.

    Examples
    --------
    >>> import embalg as ea
    >>> ea.normalize([3.0, 4.0])
    array([0.6, 0.8])
    """
    return _apply("normalize", [x], ["x"], on_zero=on_zero, backend=backend, out=out)


def hadamard(x, y, *more, normalize=True, on_zero="raise", backend="auto", out=None):
    """Element-wise (Hadamard) product, renormalized: the thread's "star" operator.

    .. math:: z = x \\odot y \\odot \\dots, \\qquad \\text{result} = z / \\lVert z \\rVert_2

    With ``normalize=False`` the raw "interaction vector" ``z`` is returned; its
    sum is the dot product ``x . y``. The normalized product is commutative and
    associative (up to rounding): ``(x*y)*z`` and ``x*(y*z)`` are the same
    direction, since renormalizing only rescales.

    Parameters
    ----------
    x, y, *more : array_like, shape (d,) or (n, d)
        Two or more inputs; single rows broadcast.
    normalize : bool, default True
    on_zero, backend, out : see :func:`normalize`

    Returns
    -------
    ndarray, shape (d,) or (n, d)

    Examples
    --------
    >>> import embalg as ea
    >>> ea.hadamard([1.0, 2.0], [3.0, 1.0], normalize=False)
    array([3., 2.])
    >>> ea.hadamard([1.0, 2.0], [3.0, 1.0]).round(4)
    array([0.8321, 0.5547])
    """
    arrays = (x, y) + more
    return _apply("hadamard", arrays, _names(len(arrays)), normalize=normalize,
                  on_zero=on_zero, backend=backend, out=out)


def hadamard_div(x, y, *, eps=DEFAULT_EPS, normalize=True, on_zero="raise", backend="auto", out=None):
    """Element-wise division ``x / y``, renormalized: "subtracting" meaning.

    .. math:: z_j = x_j / c(y_j), \\quad c(v) = \\operatorname{sign}(v)\\max(|v|, \\varepsilon),
              \\ \\operatorname{sign}(0) = +1

    Division policy: components of ``y`` with ``|y_j| < eps`` are clamped to
    ``eps`` with their sign kept (a zero counts as positive), so the output is
    never inf or NaN; where ``|y_j| >= eps`` the division is exact, so
    ``hadamard_div(hadamard(x, y, normalize=False), y, normalize=False) == x``
    there. Unit embeddings in 1536-d have components around 0.025, so the
    default ``eps = 1e-6`` only touches near-zero components.

    Parameters
    ----------
    x, y : array_like, shape (d,) or (n, d)
    eps : float > 0
    normalize, on_zero, backend, out : see :func:`hadamard`

    Examples
    --------
    >>> import embalg as ea
    >>> ea.hadamard_div([3.0, 2.0], [3.0, 1.0], normalize=False)
    array([1., 2.])
    >>> ea.hadamard_div([1.0, 1.0], [0.0, -0.0], eps=0.5, normalize=False)
    array([2., 2.])
    """
    eps = v.check_positive_float(eps, "eps")
    return _apply("hadamard_div", (x, y), ["x", "y"], normalize=normalize, eps=eps,
                  on_zero=on_zero, backend=backend, out=out)


GEOMEAN_VARIANTS = ("signed", "agree")


def geomean(x, y, *more, variant="signed", on_zero="raise", backend="auto", out=None):
    """Sign-aware element-wise geometric mean, renormalized.

    ``variant="signed"`` (the thread's "modified element-wise geometric mean"):

    .. math:: z_j = \\operatorname{sign}\\big(\\textstyle\\sum_k v_{k,j}\\big)\\,
              \\big|\\textstyle\\prod_k v_{k,j}\\big|^{1/K}

    which for two inputs is ``sign(x + y) * sqrt(|x * y|)``. ``variant="agree"``
    keeps ``|prod|^(1/K)`` with the common sign where all inputs agree in sign
    and gives 0 elsewhere. The result is renormalized.

    Parameters
    ----------
    x, y, *more : array_like, shape (d,) or (n, d)
    variant : {"signed", "agree"}
    on_zero, backend, out : see :func:`normalize`

    Examples
    --------
    >>> import embalg as ea
    >>> ea.geomean([4.0, -1.0, 2.0], [1.0, 4.0, -1.0], on_zero="zero").round(4)
    array([0.6325, 0.6325, 0.4472])
    >>> ea.geomean([4.0, -1.0, 2.0], [1.0, 4.0, -1.0], variant="agree")
    array([1., 0., 0.])
    """
    if variant not in GEOMEAN_VARIANTS:
        raise ValueError(f"variant must be one of {GEOMEAN_VARIANTS}, got {variant!r}")
    arrays = (x, y) + more
    return _apply(f"geomean_{variant}", arrays, _names(len(arrays)), on_zero=on_zero,
                  backend=backend, out=out)


def nsum(x, y, *more, weights=None, on_zero="raise", backend="auto", out=None):
    """Normalized (weighted) sum: "adding" meaning.

    .. math:: z = \\sum_k w_k v_k, \\qquad \\text{result} = z / \\lVert z \\rVert_2

    Parameters
    ----------
    x, y, *more : array_like, shape (d,) or (n, d)
    weights : sequence of float, one per input, optional (default all 1)
    on_zero, backend, out : see :func:`normalize`

    Examples
    --------
    >>> import embalg as ea
    >>> ea.nsum([1.0, 0.0], [0.0, 1.0]).round(4)
    array([0.7071, 0.7071])
    >>> ea.nsum([1.0, 0.0], [0.0, 1.0], weights=[3, 4])
    array([0.6, 0.8])
    """
    arrays = (x, y) + more
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (len(arrays),):
            raise ValueError(f"weights must have one value per input ({len(arrays)}), got shape {w.shape}")
        if not np.isfinite(w).all():
            raise ValueError("weights contain NaN or inf")
    return _apply("nsum", arrays, _names(len(arrays)), weights=w, on_zero=on_zero,
                  backend=backend, out=out)


def cosine(x, y, *, on_zero="raise", backend="auto", out=None):
    """Row-wise cosine similarity.

    .. math:: \\cos_i = \\frac{x_i \\cdot y_i}{\\lVert x_i\\rVert \\, \\lVert y_i\\rVert}

    Parameters
    ----------
    x, y : array_like, shape (d,) or (n, d); single rows broadcast
    on_zero : {"raise", "nan", "zero"}
        A zero row has no direction: raise (default), NaN or 0.
    backend : {"auto", "numpy", "numba", "cuda"}
    out : ndarray, shape (n,), optional

    Returns
    -------
    float or ndarray, shape (n,); float64 for float64 inputs, else float32

    Examples
    --------
    >>> import embalg as ea
    >>> float(ea.cosine([1.0, 0.0], [1.0, 1.0]).round(6))
    0.707107
    """
    v.check_on_zero(on_zero)
    xs, n, d, dtype, all_1d, xp = _check_inputs((x, y), ["x", "y"])
    name = resolve_backend(backend, xs[0], n_elements=n * d)
    shape = () if all_1d else (n,)
    v.check_out(out, shape, dtype, xp)
    result = xp.empty(n, dtype) if out is None else out.reshape(n)
    nx, ny = (_to_numpy(a) for a in kernels("elementwise", name).cosine(xs[0], xs[1], result))
    bad = ~(np.isfinite(nx) & np.isfinite(ny))
    if bad.any():
        _raise_nonfinite(xs, ["x", "y"], int(np.argmax(bad)))
    zero = (nx == 0) | (ny == 0)
    if zero.any():
        rows = np.flatnonzero(zero)
        if on_zero == "raise":
            which = "x" if nx[rows[0]] == 0 else "y"
            raise ValueError(f"cosine: {which} has a zero row (row {rows[0]}; {rows.size} in all), "
                             "which has no direction; pass on_zero='nan' or 'zero'")
        if on_zero == "nan":
            result[xp.asarray(rows)] = np.nan
    return result[0] if all_1d else result


def _names(k):
    return ["x", "y"] + [f"more[{i}]" for i in range(k - 2)]


#: public operator name -> function, for :func:`combine`, :func:`embalg.properties` and the studies
OPERATORS = {
    "nsum": nsum,
    "hadamard": hadamard,
    "hadamard_div": hadamard_div,
    "geomean": geomean,
    "geomean_signed": functools.partial(geomean, variant="signed"),
    "geomean_agree": functools.partial(geomean, variant="agree"),
}


def _resolve_op(op):
    if callable(op):
        return op
    if isinstance(op, str):
        try:
            return OPERATORS[op]
        except KeyError:
            raise ValueError(f"unknown operator {op!r}; known: {', '.join(OPERATORS)}") from None
    raise TypeError(f"op must be an operator name or a callable, got {type(op).__name__}")


def combine(op, xs, **kwargs):
    """Reduce a binary operator over a sequence of vectors, in order (a left fold).

    ``combine(op, [a, b, c])`` is ``op(op(a, b), c)``. Each step is renormalized
    by the operator, which also keeps long products from underflowing.

    Parameters
    ----------
    op : str or callable
        A name in :data:`OPERATORS` or a function ``f(x, y, **kwargs)``.
    xs : sequence of array_like, or ndarray of shape (k, d) or (k, n, d)
        The operands, at least one; a stacked array is read along its first axis.
    **kwargs
        Passed to every call (``backend=``, ``eps=``, ...).

    Returns
    -------
    ndarray, shape (d,) or (n, d); a single operand is returned normalized.

    Examples
    --------
    >>> import embalg as ea
    >>> ea.combine("hadamard", [[1.0, 2.0], [2.0, 1.0], [1.0, 1.0]]).round(4)
    array([0.7071, 0.7071])
    """
    f = _resolve_op(op)
    if isinstance(xs, (str, bytes)) or not hasattr(xs, "__len__"):
        raise TypeError(f"xs must be a sequence or stack of vectors, got {type(xs).__name__}")
    if len(xs) == 0:
        raise ValueError("combine needs at least one operand, got an empty sequence")
    acc = xs[0]
    if len(xs) == 1:
        return normalize(acc, **{k: val for k, val in kwargs.items() if k in ("backend", "on_zero")})
    for item in xs[1:]:
        acc = f(acc, item, **kwargs)
    return acc

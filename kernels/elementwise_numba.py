"""Fused Numba CPU kernels for the element-wise operators.

One driver, :func:`_rowwise_kernel`, serves every operator: the op code is a
compile-time literal (``numba.literally``), so each operator gets its own
machine code with the per-operator fold of :mod:`.elementwise_ops` inlined.
Per row (``prange`` over rows) it makes one pass computing ``z`` and its
squared norm in float64, then rescales the row while it is still in cache:
the memory traffic is that of ``np.add`` (inputs read once, output written once).

Non-finite inputs are detected in the same pass (``chk += v * 0.0`` is NaN iff
some ``v`` is NaN or inf); such rows get ``norms[i] = NaN``. No ``nnan``/``ninf``
fast-math flags are used, so these checks are honest.
"""
import math

import numpy as np
from numba import literally, njit, prange

from . import elementwise_ops as ops

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

_init = ops.init
_step = ops.step
_finish = ops.finish


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _rowwise_kernel(op, xs, out, weights, eps, normalize, norms):
    literally(op)
    n, d = out.shape
    K = len(xs)
    for i in prange(n):
        s = 0.0
        chk = 0.0
        for j in range(d):
            acc = _init(op)
            for k in range(K):
                a = xs[k]
                r = np.int64(i) if a.shape[0] > 1 else np.int64(0)
                v = np.float64(a[r, j])
                chk += v * 0.0
                acc = _step(op, acc, v, k, weights, eps)
            z = _finish(op, acc, K)
            out[i, j] = z
            s += z * z
        nrm = math.sqrt(s)
        if chk != 0.0 or not math.isfinite(nrm):
            nrm = np.nan
        norms[i] = nrm
        if normalize and nrm > 0.0:
            inv = 1.0 / nrm
            for j in range(d):
                out[i, j] = out[i, j] * inv


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _cosine_kernel(x, y, out, x_norms, y_norms):
    n = out.shape[0]
    d = x.shape[1]
    for i in prange(n):
        rx = np.int64(i) if x.shape[0] > 1 else np.int64(0)
        ry = np.int64(i) if y.shape[0] > 1 else np.int64(0)
        xy = 0.0
        xx = 0.0
        yy = 0.0
        for j in range(d):
            a = np.float64(x[rx, j])
            b = np.float64(y[ry, j])
            xy += a * b
            xx += a * a
            yy += b * b
        nx = math.sqrt(xx)
        ny = math.sqrt(yy)
        if math.isfinite(xy) and math.isfinite(nx) and math.isfinite(ny):
            x_norms[i] = nx
            y_norms[i] = ny
            out[i] = xy / (nx * ny) if nx > 0.0 and ny > 0.0 else 0.0
        else:
            x_norms[i] = np.nan
            y_norms[i] = np.nan
            out[i] = np.nan


def _c_rows(a):
    """A read-only C-contiguous view (copy only if not C-contiguous).

    Numba needs one array type for the whole input tuple, so every input is made
    C-contiguous (F-order or strided inputs are copied) and read-only (a view flag).
    """
    a = np.ascontiguousarray(a).view()
    a.flags.writeable = False
    return a


def rowwise(op, xs, out, *, weights, eps, normalize):
    """Apply operator ``op`` (a name in :data:`.elementwise_ops.OP_CODES`) row by row.

    Parameters
    ----------
    xs : tuple of ndarray, each shape (n, d) or (1, d), one dtype (float32 or float64)
        Checked inputs; a single row broadcasts.
    out : ndarray, shape (n, d), the inputs' dtype
        Written in place (any strides).
    weights : ndarray, float64, shape (len(xs),)
    eps : float
    normalize : bool

    Returns
    -------
    norms : ndarray, float64, shape (n,)
        Norm of each raw row ``z``; NaN where an input of that row is not finite.
    """
    xs = tuple(_c_rows(a) for a in xs)
    norms = np.empty(out.shape[0], np.float64)
    _rowwise_kernel(ops.OP_CODES[op], xs, out, np.ascontiguousarray(weights, np.float64),
                    float(eps), bool(normalize), norms)
    return norms


def cosine(x, y, out):
    """Row-wise cosine of checked ``x``, ``y`` ((n|1, d), one dtype) into ``out`` (n,).

    Returns ``(x_norms, y_norms)`` float64 (n,), NaN where a row is not finite.
    """
    n = out.shape[0]
    x_norms = np.empty(n, np.float64)
    y_norms = np.empty(n, np.float64)
    _cosine_kernel(_c_rows(x), _c_rows(y), out, x_norms, y_norms)
    return x_norms, y_norms

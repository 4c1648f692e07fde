"""Fused Numba CPU kernels for the element-wise operators.

One driver, :func:`_make_rowwise_kernel`, serves every operator: it closes
over the operator's int code, so each operator gets its own machine code with
its fold from :mod:`.elementwise_ops` folded in, and Numba's on-disk cache
works. (A ``numba.literally`` dispatch re-runs the compiler front end on every
call, and an inlined driver with ``prange`` loses vectorization: both measured.)
Per row (``prange`` over rows) it makes one pass computing ``z`` and its
squared norm in float64, then rescales the row while it is still in cache:
the memory traffic is that of ``np.add`` (inputs read once, output written once).

Non-finite inputs are detected in the same pass (``chk += v * 0.0`` is NaN iff
some ``v`` is NaN or inf); such rows get ``norms[i] = NaN``. No ``nnan``/``ninf``
fast-math flags are used, so these checks are honest.
"""
import math

import numpy as np
from numba import njit, prange

from . import elementwise_ops as ops

# No nnan/ninf (NaN checks stay honest) and no nsz: with reassoc it made isfinite of a
# prange reduction wrong in numba 0.68 (seen in the rotation kernels).
FASTMATH = {"arcp", "contract", "afn", "reassoc"}

#: the fused kernels make no temporaries: one batch for any size (see embalg.operators._batches)
BATCH_BYTES = 1 << 62


def _make_rowwise_kernel(op):
    """The compiled kernel of operator ``op`` (an int code): the one shared row driver.

    ``op`` is a closure constant, so Numba folds the operator's branch of the
    fold at compile time (and the on-disk cache keys on it).
    """

    @njit(parallel=True, fastmath=FASTMATH, cache=True)
    def kernel(xs, out, weights, eps, normalize, norms):
        n, d = out.shape
        K = len(xs)
        for i in prange(n):
            s = 0.0
            chk = 0.0
            for j in range(d):
                acc = ops.init(op)
                for k in range(K):
                    a = xs[k]
                    r = np.int64(i) if a.shape[0] > 1 else np.int64(0)
                    v = np.float64(a[r, j])
                    chk += v * 0.0
                    acc = ops.step(op, acc, v, k, weights, eps)
                z = ops.finish(op, acc, K)
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

    return kernel


#: op code -> compiled kernel (compiled on first call, cached on disk)
KERNELS = {code: _make_rowwise_kernel(code) for code in ops.OP_CODES.values()}


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
        out[i], x_norms[i], y_norms[i] = ops.cosine_finish(xy, xx, yy)


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
    KERNELS[ops.OP_CODES[op]](xs, out, np.ascontiguousarray(weights, np.float64),
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

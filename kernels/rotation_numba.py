"""Plane rotations, fused Numba CPU kernels (``prange`` over rows).

Same functions and contract as :mod:`embalg.kernels.rotation_numpy`.
``apply_plane`` reads each row once, accumulates ``u . x`` and ``w . x`` in
float64, and writes the rotated row once: one read and one write per row plus
the rotation's own ``u``, ``w`` (cached when one rotation serves every row).
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from .rotation_numpy import RESIDUAL_TOL

#: no nnan/ninf (they break NaN checks); no nsz either: with reassoc it made math.isfinite
#: on the prange reduction result always True (numba 0.6x, measured)
_FASTMATH = {"arcp", "contract", "afn", "reassoc"}


@nb.njit(inline="always", cache=True, fastmath=_FASTMATH)
def _remove_projection(u, w):
    """``w -= (u . w) u`` for 1-D ``u``, ``w``; returns ``(u . w, |w|)`` (after the update)."""
    p = 0.0
    for j in range(w.shape[0]):
        p += u[j] * w[j]
    nrm = 0.0
    for j in range(w.shape[0]):
        w[j] -= p * u[j]
        nrm += w[j] * w[j]
    return p, math.sqrt(nrm)


@nb.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _plane_from_pairs(v0, v1, u, w, cm1, s, tol):
    n, d = v0.shape
    for i in nb.prange(n):
        n0 = 0.0
        n1 = 0.0
        for j in range(d):
            n0 += v0[i, j] * v0[i, j]
            n1 += v1[i, j] * v1[i, j]
        n0 = math.sqrt(n0)
        n1 = math.sqrt(n1)
        ui, wi = u[i], w[i]
        for j in range(d):
            ui[j] = v0[i, j] / n0
            wi[j] = v1[i, j] / n1
        c, _ = _remove_projection(ui, wi)          # first Gram-Schmidt pass
        c2, rn = _remove_projection(ui, wi)        # second pass
        c += c2
        if rn > tol:
            for j in range(d):
                wi[j] /= rn
            theta = math.atan2(rn, c)
        elif c > 0.0:                              # parallel: the identity
            wi[:] = 0.0
            theta = 0.0
        else:                                      # antipodal: plane of a and e_k, k = argmin |a_k|
            k = 0
            for j in range(1, d):
                if abs(ui[j]) < abs(ui[k]):
                    k = j
            wi[:] = 0.0
            wi[k] = 1.0
            _remove_projection(ui, wi)
            _, en = _remove_projection(ui, wi)         # two passes, as in the reference
            for j in range(d):
                wi[j] /= en
            theta = math.pi
        cm1[i] = math.cos(theta) - 1.0
        s[i] = math.sin(theta)


def plane_from_pairs(v0, v1):
    """See :func:`embalg.kernels.rotation_numpy.plane_from_pairs`."""
    n, d = v0.shape
    u = np.empty((n, d), np.float64)
    w = np.empty((n, d), np.float64)
    cm1 = np.empty(n, np.float64)
    s = np.empty(n, np.float64)
    _plane_from_pairs(np.ascontiguousarray(v0), np.ascontiguousarray(v1), u, w, cm1, s, RESIDUAL_TOL)
    return u, w, cm1, s


@nb.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _apply_plane(x, u, w, cm1, s, out, bad):
    n, d = out.shape
    xstep = 1 if x.shape[0] > 1 else 0
    rstep = 1 if u.shape[0] > 1 else 0
    for i in nb.prange(n):
        ix = i * xstep
        ir = i * rstep
        alpha = 0.0
        beta = 0.0
        for j in range(d):
            xj = np.float64(x[ix, j])
            alpha += np.float64(u[ir, j]) * xj
            beta += np.float64(w[ir, j]) * xj
        bad[i] = not math.isfinite(alpha + beta)
        ku = cm1[ir] * alpha - s[ir] * beta
        kw = cm1[ir] * beta + s[ir] * alpha
        for j in range(d):
            out[i, j] = x[ix, j] + ku * u[ir, j] + kw * w[ir, j]


def apply_plane(x, u, w, cm1, s, out):
    """See :func:`embalg.kernels.rotation_numpy.apply_plane`."""
    bad = np.zeros(out.shape[0], np.bool_)
    _apply_plane(x, u, w, cm1, s, out, bad)
    return _first(bad)


def _first(bad) -> int:
    return int(np.argmax(bad)) if bad.any() else -1

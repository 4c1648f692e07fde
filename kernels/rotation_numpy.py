"""Plane rotations, NumPy reference (the oracle the fast kernels are tested against).

A plane rotation is stored as four arrays: orthonormal ``u`` and ``w`` of shape
``(m, d)`` spanning the plane, ``cm1 = cos(theta) - 1`` and ``s = sin(theta)``
of shape ``(m,)``. Applied to a row ``x``:

.. math::

    R x = x + u\\,[(\\cos\\theta - 1)\\,\\alpha - \\sin\\theta\\,\\beta]
            + w\\,[(\\cos\\theta - 1)\\,\\beta + \\sin\\theta\\,\\alpha],
    \\qquad \\alpha = u \\cdot x,\\ \\beta = w \\cdot x.

``m`` is 1 (one rotation for every row) or the row count. Kernels never
validate: callers pass checked, finite, non-zero inputs.
"""
from __future__ import annotations

import numpy as np

#: a pair counts as parallel/antipodal when |b - (a.b) a| <= RESIDUAL_TOL (unit a, b; float64)
RESIDUAL_TOL = 64 * np.finfo(np.float64).eps


def plane_from_pairs(v0, v1):
    """Plane and angle of the minimal rotation taking ``v0/|v0|`` to ``v1/|v1|``, row by row.

    Parameters
    ----------
    v0, v1 : ndarray, shape (n, d), float64
        Finite rows of non-zero norm (same ``n``).

    Returns
    -------
    u, w : ndarray, shape (n, d), float64
        ``u = a``; ``w`` the unit component of ``b`` orthogonal to ``a``
        (two Gram-Schmidt passes). Parallel pairs get ``w = 0`` and angle 0
        (the identity). Antipodal pairs (residual <= :data:`RESIDUAL_TOL`, a.b < 0)
        use the plane of ``a`` and the coordinate axis ``e_k`` with the smallest
        ``|a_k|`` (first such k) and angle pi.
    cm1, s : ndarray, shape (n,), float64
        ``cos(theta) - 1`` and ``sin(theta)``, ``theta = atan2(|r|, a.b)``.
    """
    a = v0 / np.linalg.norm(v0, axis=1, keepdims=True)
    b = v1 / np.linalg.norm(v1, axis=1, keepdims=True)
    c = np.einsum("ij,ij->i", a, b)
    r = b - c[:, None] * a
    c2 = np.einsum("ij,ij->i", a, r)          # second Gram-Schmidt pass
    r -= c2[:, None] * a
    c = c + c2
    rn = np.linalg.norm(r, axis=1)
    degenerate = rn <= RESIDUAL_TOL
    theta = np.arctan2(rn, c)
    w = np.zeros_like(a)
    ok = ~degenerate
    w[ok] = r[ok] / rn[ok, None]
    theta[degenerate & (c > 0)] = 0.0
    anti = np.flatnonzero(degenerate & (c <= 0))
    for i in anti:
        k = int(np.argmin(np.abs(a[i])))
        e = -a[i, k] * a[i]
        e[k] += 1.0
        e -= (a[i] @ e) * a[i]
        w[i] = e / np.linalg.norm(e)
        theta[i] = np.pi
    return a, w, np.cos(theta) - 1.0, np.sin(theta)


def apply_plane(x, u, w, cm1, s, out):
    """``out[i] = R_i x_i`` (see module docstring); rows of ``x`` or of the rotation broadcast.

    Parameters
    ----------
    x : ndarray, shape (nx, d)
    u, w : ndarray, shape (m, d), same dtype as ``x``
    cm1, s : ndarray, shape (m,)
    out : ndarray, shape (max(nx, m), d); may be ``x`` itself (in place)

    Returns
    -------
    int
        The first row whose ``u . x`` or ``w . x`` is not finite (a row of ``x``
        holding NaN or inf), or -1. The finiteness check rides on the dot
        products, so valid data is read only once.
    """
    n = len(out)
    xb = np.broadcast_to(x, (n, x.shape[1]))
    ub = np.broadcast_to(u, (n, u.shape[1]))
    wb = np.broadcast_to(w, (n, w.shape[1]))
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite rows are reported below
        alpha = np.einsum("ij,ij->i", xb, ub)
        beta = np.einsum("ij,ij->i", xb, wb)
        ku = (cm1 * alpha - s * beta).astype(out.dtype, copy=False)
        kw = (cm1 * beta + s * alpha).astype(out.dtype, copy=False)
        out[...] = xb + ku[:, None] * ub + kw[:, None] * wb
        bad = ~np.isfinite(alpha + beta)
    return int(np.argmax(bad)) if bad.any() else -1

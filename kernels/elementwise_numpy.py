"""NumPy reference for the element-wise operators: the oracle the fast kernels are tested against.

Written for clarity, not speed; the math is the table in :mod:`.elementwise_ops`.
Same functions and contract as :mod:`.elementwise_numba`: inputs are checked,
rows broadcast, computation is in float64 and results are stored in ``out``.
"""
import numpy as np



def _clamp(y, eps):
    return np.where(np.abs(y) >= eps, y, np.where(y < 0, -eps, eps))


def _signed_root(sign, p, K):
    return sign * (np.sqrt(p) if K == 2 else p if K == 1 else p ** (1.0 / K))


def raw(op, vs, weights, eps):
    """The un-normalized result ``z`` of ``op`` on float64 arrays ``vs`` (broadcasting)."""
    K = len(vs)
    if op == "normalize":
        return vs[0]
    if op == "hadamard":
        return np.prod(np.stack(np.broadcast_arrays(*vs)), axis=0)
    if op == "nsum":
        return sum(w * v for w, v in zip(weights, vs))
    if op == "hadamard_div":
        return vs[0] / _clamp(vs[1], eps)
    magnitude = np.abs(np.prod(np.stack(np.broadcast_arrays(*vs)), axis=0))
    if op == "geomean_signed":
        return _signed_root(np.sign(sum(vs)), magnitude, K)
    if op == "geomean_agree":
        n_pos = sum((v > 0).astype(np.int64) for v in vs)
        n_neg = sum((v < 0).astype(np.int64) for v in vs)
        sign = np.where(n_pos == K, 1.0, np.where(n_neg == K, -1.0, 0.0))
        return _signed_root(sign, magnitude, K)
    raise ValueError(f"unknown operator {op!r}")


def rowwise(op, xs, out, *, weights, eps, normalize):
    """Reference of :func:`embalg.kernels.elementwise_numba.rowwise` (same contract)."""
    vs = [np.asarray(a, np.float64) for a in xs]
    with np.errstate(all="ignore"):
        z = np.broadcast_to(raw(op, vs, weights, eps), out.shape)
        norms = np.linalg.norm(z, axis=1)
        bad = np.zeros(out.shape[0], bool)
        for v in vs:
            bad |= ~np.isfinite(v).all(axis=1)
        norms = np.where(bad | ~np.isfinite(norms), np.nan, norms)
        if normalize:
            scale = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 1.0)
            z = z * scale[:, None]
    out[...] = z
    return norms


def cosine(x, y, out):
    """Reference of :func:`embalg.kernels.elementwise_numba.cosine` (same contract)."""
    a = np.asarray(x, np.float64)
    b = np.asarray(y, np.float64)
    with np.errstate(all="ignore"):
        a, b = np.broadcast_arrays(a, b)
        nx = np.linalg.norm(a, axis=1)
        ny = np.linalg.norm(b, axis=1)
        dot = np.einsum("ij,ij->i", a, b)
        bad = ~(np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1))
        nx = np.where(bad, np.nan, nx)
        ny = np.where(bad, np.nan, ny)
        cos = np.where((nx > 0) & (ny > 0), dot / (nx * ny), 0.0)
    out[...] = np.where(bad, np.nan, cos)
    return nx, ny

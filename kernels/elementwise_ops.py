"""The element-wise operators as a table: one fold per operator.

Every operator maps the k-th inputs' values ``v_0 .. v_{K-1}`` at one position
to one output value ``z`` by a fold: ``acc = init(op)``, ``acc = step(op, acc,
v_k, k, weights, eps)`` for each input in order, ``z = finish(op, acc, K)``.
The accumulator is three floats. These scalar functions are plain Python; the
Numba CPU kernels (:mod:`.elementwise_numba`) and the CUDA kernels
(:mod:`.elementwise_cuda`) compile the very same functions, so the per-operator
part is written once. The NumPy reference (:mod:`.elementwise_numpy`) states
the same math with whole-array expressions, for clarity. The functions are
``register_jitable``: plain Python when called from Python, inlined by Numba
(CPU and CUDA targets) when called from a kernel.

=====================  =====  =========================================================
operator               code   z
=====================  =====  =========================================================
identity (normalize)   0      v_0
hadamard               1      prod_k v_k
nsum                   2      sum_k w_k v_k
hadamard_div           3      v_0 / clamp(v_1), clamp(v) = sign(v) max(|v|, eps), sign(0)=+1
geomean "signed"       4      sign(sum_k v_k) * |prod_k v_k|^(1/K)
geomean "agree"        5      s * |prod_k v_k|^(1/K) where every v_k has sign s, else 0
=====================  =====  =========================================================
"""
import math

from numba.extending import register_jitable

IDENTITY = 0
PRODUCT = 1
SUM = 2
DIV = 3
GEOMEAN_SIGNED = 4
GEOMEAN_AGREE = 5

#: operator name used by the public API -> op code
OP_CODES = {
    "normalize": IDENTITY,
    "hadamard": PRODUCT,
    "nsum": SUM,
    "hadamard_div": DIV,
    "geomean_signed": GEOMEAN_SIGNED,
    "geomean_agree": GEOMEAN_AGREE,
}


@register_jitable(inline="always")
def clamp_away_from_zero(v, eps):
    """Sign-preserving clamp: ``sign(v) * max(|v|, eps)`` with ``sign(0) = +1``."""
    if v >= eps or v <= -eps:
        return v
    if v < 0.0:
        return -eps
    return eps


@register_jitable(inline="always")
def kth_root(p, K):
    """``p ** (1/K)`` for ``p >= 0``, exact square root for ``K = 2``."""
    if K == 1:
        return p
    if K == 2:
        return math.sqrt(p)
    return p ** (1.0 / K)


@register_jitable(inline="always")
def init(op):
    if op == PRODUCT:
        return (1.0, 0.0, 0.0)
    if op == GEOMEAN_SIGNED:
        return (0.0, 1.0, 0.0)
    if op == GEOMEAN_AGREE:
        return (0.0, 0.0, 1.0)
    return (0.0, 0.0, 0.0)


@register_jitable(inline="always")
def step(op, acc, v, k, weights, eps):
    a, b, c = acc
    if op == IDENTITY:
        return (v, b, c)
    if op == PRODUCT:
        return (a * v, b, c)
    if op == SUM:
        return (a + weights[k] * v, b, c)
    if op == DIV:
        if k == 0:
            return (v, b, c)
        return (a / clamp_away_from_zero(v, eps), b, c)
    if op == GEOMEAN_SIGNED:
        return (a + v, b * abs(v), c)
    # GEOMEAN_AGREE: (count of positives, count of negatives, |product|)
    return (a + (1.0 if v > 0.0 else 0.0), b + (1.0 if v < 0.0 else 0.0), c * abs(v))


@register_jitable(inline="always")
def finish(op, acc, K):
    a, b, c = acc
    if op == GEOMEAN_SIGNED:
        if a > 0.0:
            return kth_root(b, K)
        if a < 0.0:
            return -kth_root(b, K)
        return 0.0
    if op == GEOMEAN_AGREE:
        if a == K:
            return kth_root(c, K)
        if b == K:
            return -kth_root(c, K)
        return 0.0
    return a


@register_jitable(inline="always")
def cosine_finish(xy, xx, yy):
    """``(cos, |x|, |y|)`` of one row from its sums ``x.y``, ``x.x``, ``y.y``.

    All three are NaN when a sum is not finite (an input held NaN or inf); the
    cosine is 0 when a row has zero norm (the caller decides what that means).
    """
    nx = math.sqrt(xx)
    ny = math.sqrt(yy)
    if math.isfinite(xy) and math.isfinite(nx) and math.isfinite(ny):
        if nx > 0.0 and ny > 0.0:
            return xy / (nx * ny), nx, ny
        return 0.0, nx, ny
    return math.nan, math.nan, math.nan

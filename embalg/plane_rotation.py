"""Minimal rotations between embeddings: the rotation in the plane of ``v0`` and ``v1``.

The thread's proposal: solve for the rotation that maps an embedding ``v0`` to
its edited version ``v1``, and ask whether the same kind of edit gives the
same rotation. Among all rotations taking ``a = v0/|v0|`` to ``b = v1/|v1|``,
the minimal one acts only in ``span{a, b}`` and leaves its orthogonal
complement fixed. With ``c = a . b``, ``u = a``, ``w = (b - c a)/|b - c a|``
and ``theta = atan2(|b - c a|, c)``:

.. math::

    R x = x + (\\cos\\theta - 1)\\,[(u\\cdot x)\\,u + (w\\cdot x)\\,w]
            + \\sin\\theta\\,[(u\\cdot x)\\,w - (w\\cdot x)\\,u]

which costs O(d) per vector; no ``d x d`` matrix is ever formed (except by
:meth:`Rotation.as_matrix`, for small ``d``).

Policies
--------
* Parallel pairs (``b = a``): the identity, angle 0.
* Antipodal pairs (``b = -a``, residual ``|b - c a| <= 64 eps``): the plane is
  spanned by ``a`` and the coordinate axis ``e_k`` with the smallest ``|a_k|``
  (the first such ``k``), made orthogonal to ``a`` by Gram-Schmidt; angle pi.
  Any plane containing ``a`` works; this one is deterministic and well
  conditioned (``|a_k| <= 1/sqrt(d)``).
* Planes and angles are computed in float64 whatever the input dtype.
  :meth:`Rotation.apply` returns float32 for float16/float32 inputs (dot
  products accumulated in float64 by the Numba kernel; relative error of a
  float32 result ~1e-6) and float64 for float64 inputs (error ~1e-15).
* ``d = 1`` raises ``ValueError`` (no rotation of R^1 maps a to -a).
* Zero-norm rows, NaN/inf, dimension mismatches and row counts that do not
  broadcast raise ``ValueError`` naming the argument.
"""
from __future__ import annotations


import numpy as np

from .backends import is_cupy_array, kernels, resolve_backend
from .validation import (array_namespace, as_vectors, broadcast_rows, check_finite, check_out,
                         check_same_dim, compute_dtype)

#: :meth:`Rotation.as_matrix` refuses more than this many matrix entries in total
AS_MATRIX_MAX_ENTRIES = 1 << 24
#: ... and dimensions above this
AS_MATRIX_MAX_DIM = 4096


def _host64(x2d):
    """A float64 NumPy copy/view of checked vectors (CuPy arrays come to the host: planes live there)."""
    if is_cupy_array(x2d):
        x2d = x2d.get()
    return np.asarray(x2d, dtype=np.float64)


def _check_nonzero(x2d, name):
    norms = np.linalg.norm(x2d, axis=1)
    bad = np.flatnonzero(norms == 0)
    if bad.size:
        raise ValueError(f"{name} has a zero vector (first at row {int(bad[0])}); a rotation "
                         "needs a direction: drop or replace zero rows")


class _Plane:
    """One stage: ``m`` plane rotations (``u``, ``w`` (m, d) float64; ``cm1``, ``s`` (m,))."""

    __slots__ = ("u", "w", "cm1", "s", "_cast")

    def __init__(self, u, w, cm1, s):
        self.u, self.w, self.cm1, self.s = u, w, cm1, s
        self._cast = {("numpy", np.dtype(np.float64)): (u, w)}

    def planes_as(self, dtype, xp=np):
        """``(u, w)`` in ``dtype`` as ``xp`` arrays (cast and moved once, then cached)."""
        key = (xp.__name__, np.dtype(dtype))
        if key not in self._cast:
            self._cast[key] = (xp.asarray(self.u.astype(dtype)), xp.asarray(self.w.astype(dtype)))
        return self._cast[key]

    def inverse(self):
        return _Plane(self.u, self.w, self.cm1, -self.s)


class Rotation:
    """One rotation or a batch of ``n`` rotations of R^d, as a sequence of plane rotations.

    Built by :func:`rotation` (one plane stage) and by composition (several
    stages, applied in order). Do not construct directly.

    Attributes
    ----------
    dim : int
        The dimension ``d``.
    single : bool
        True for one rotation (from 1-D ``v0`` and ``v1``), False for a batch.
    n_stages : int
        Number of plane rotations applied in sequence.

    Examples
    --------
    >>> import numpy as np, embalg as ea
    >>> r = ea.rotation([1.0, 0.0, 0.0], [0.0, 2.0, 0.0])
    >>> np.round(r.apply([1.0, 0.0, 0.0]), 12)
    array([0., 1., 0.])
    >>> float(np.degrees(r.angle))
    90.0
    >>> np.round(r.inv().apply([0.0, 1.0, 0.0]), 12)
    array([1., 0., 0.])
    >>> np.round(r.apply([0.0, 0.0, 5.0]), 12)   # orthogonal to the plane: unchanged
    array([0., 0., 5.])
    """

    def __init__(self, stages, dim, single, count, backend="auto"):
        self._stages = list(stages)
        self.dim = int(dim)
        self.single = bool(single)
        self._count = int(count)
        self.backend = backend

    # -- shape ---------------------------------------------------------------
    def __len__(self):
        if self.single:
            raise TypeError("a single Rotation has no len(); it is not a batch")
        return self._count

    @property
    def n_stages(self) -> int:
        return len(self._stages)

    def __repr__(self):
        kind = "single" if self.single else f"batch of {self._count}"
        return f"Rotation({kind}, d={self.dim}, stages={self.n_stages})"

    # -- the plane and angle -------------------------------------------------
    def _only_stage(self, what):
        if len(self._stages) != 1:
            raise ValueError(f"{what} is defined for a plane rotation; this Rotation is a "
                             f"composition of {len(self._stages)} plane rotations, which in "
                             "general is not a rotation in one plane")
        return self._stages[0]

    def _shape(self, arr):
        return arr[0] if self.single else np.broadcast_to(arr, (self._count,) + arr.shape[1:]).copy()

    @property
    def angle(self):
        """Rotation angle in radians, in [0, pi]: shape () for one rotation, (n,) for a batch.

        Raises ``ValueError`` for a composition of several plane rotations.
        """
        st = self._only_stage("angle")
        return self._shape(np.arctan2(st.s, st.cm1 + 1.0))

    @property
    def plane(self):
        """Orthonormal basis ``(u, w)`` of the rotation plane, float64, shape (d,) or (n, d) each.

        ``u`` is ``v0/|v0|``; ``w`` is zero for the identity (parallel pairs).
        Raises ``ValueError`` for a composition.
        """
        st = self._only_stage("plane")
        return self._shape(st.u), self._shape(st.w)

    # -- algebra -------------------------------------------------------------
    def inv(self):
        """The inverse rotation (stages reversed, each angle negated)."""
        return Rotation([st.inverse() for st in reversed(self._stages)], self.dim, self.single,
                        self._count, self.backend)

    def compose(self, first):
        """``self * first``: apply ``first``, then ``self``.

        Batches compose row by row; a single rotation or a batch of 1 broadcasts.
        """
        if not isinstance(first, Rotation):
            raise TypeError(f"can compose a Rotation only with a Rotation, got {type(first).__name__}")
        if first.dim != self.dim:
            raise ValueError(f"dimension mismatch: composing rotations of d = {self.dim} and "
                             f"d = {first.dim}")
        counts = {c for c in (self._count, first._count) if c != 1}
        if len(counts) > 1:
            raise ValueError(f"batch sizes {self._count} and {first._count} do not broadcast; "
                             "each needs the same number of rotations or 1")
        count = counts.pop() if counts else 1
        return Rotation(first._stages + self._stages, self.dim, self.single and first.single,
                        count, self.backend)

    def __mul__(self, other):
        if not isinstance(other, Rotation):
            return NotImplemented
        return self.compose(other)

    # -- application ---------------------------------------------------------
    def apply(self, x, *, out=None, backend=None):
        """Rotate vectors: ``R_i x_i`` row by row.

        Parameters
        ----------
        x : array_like, shape (d,) or (m, d)
            Vectors to rotate. With a batch of ``n`` rotations, ``m`` must be
            ``n`` (rotation i acts on row i) or 1 (every rotation acts on the one
            vector); a single rotation acts on every row.
        out : ndarray, optional
            Result array of the exact result shape and dtype (never cast); may be ``x``.
        backend : {"auto", "numpy", "numba", "cuda"}, optional
            Defaults to the backend the rotation was built with. ``"cuda"``
            takes NumPy arrays (copied to the GPU and back) or CuPy arrays
            (computed on the device; ``"auto"`` picks it for CuPy input).

        Returns
        -------
        ndarray, shape (d,) or (max(m, n), d)
            float32 for float16/float32 input, float64 for float64 input. 1-D
            when ``x`` is 1-D and the rotation is single.

        Raises
        ------
        ValueError
            Dimension or row-count mismatch; NaN or inf in ``x`` (detected from
            the kernel's dot products, so valid data is read once; ``out`` may
            then be partly written).
        """
        x2, was_1d = as_vectors(x, "x")
        if x2.shape[1] != self.dim:
            raise ValueError(f"dimension mismatch: the rotation has d = {self.dim} while x has "
                             f"d = {x2.shape[1]}")
        counts = {c for c in (x2.shape[0], self._count) if c != 1}
        if len(counts) > 1:
            raise ValueError(f"row counts do not broadcast (x: {x2.shape[0]} rows, rotation: batch "
                             f"of {self._count}); x needs one row per rotation or a single row")
        n = counts.pop() if counts else 1
        dtype = compute_dtype(x2)
        squeeze = was_1d and self.single
        shape = (self.dim,) if squeeze else (n, self.dim)
        xp = array_namespace(x2)
        check_out(out, shape, dtype, xp)
        name = resolve_backend(self.backend if backend is None else backend, x2,
                               n_elements=n * self.dim)
        res = xp.empty((n, self.dim), dtype) if out is None else out.reshape(n, self.dim)
        k = kernels("rotation", name)
        src = xp.ascontiguousarray(x2, dtype=dtype)
        for i, st in enumerate(self._stages):
            u, w = st.planes_as(dtype, xp)
            bad = k.apply_plane(src, u, w, st.cm1, st.s, res)
            if i == 0 and bad >= 0:
                raise ValueError(f"x contains NaN or inf (first at row "
                                 f"{bad if x2.shape[0] > 1 else 0}); embeddings must be finite")
            src = res
        if not self._stages:  # pragma: no cover - rotations always hold a stage
            check_finite(x2, "x")
            res[...] = src
        if out is not None:
            return out
        return res[0] if squeeze else res

    __call__ = apply

    def as_matrix(self):
        """The matrix ``M`` with ``M @ x = R x``: shape (d, d), or (n, d, d) for a batch.

        Only for small problems: raises ``ValueError`` when ``d`` exceeds
        :data:`AS_MATRIX_MAX_DIM` or the result would exceed
        :data:`AS_MATRIX_MAX_ENTRIES` entries. Use :meth:`apply` instead.
        """
        count = 1 if self.single else self._count
        entries = count * self.dim * self.dim
        if self.dim > AS_MATRIX_MAX_DIM or entries > AS_MATRIX_MAX_ENTRIES:
            raise ValueError(f"as_matrix would build {count} matrices of {self.dim} x {self.dim} "
                             f"({entries} entries, limit {AS_MATRIX_MAX_ENTRIES}, d limit "
                             f"{AS_MATRIX_MAX_DIM}); use Rotation.apply, which is O(d) per vector")
        eye = np.eye(self.dim)
        if self.single:
            return self.apply(eye, backend="numpy").T
        mats = np.empty((count, self.dim, self.dim))
        for i in range(count):
            mats[i] = self[i].apply(eye, backend="numpy").T
        return mats

    def __getitem__(self, i):
        """Rotation ``i`` of a batch, as a single rotation."""
        if self.single:
            raise TypeError("a single Rotation cannot be indexed")
        i = int(i)
        if not -self._count <= i < self._count:
            raise IndexError(f"rotation index {i} out of range for a batch of {self._count}")
        i %= self._count
        stages = []
        for st in self._stages:
            j = i if len(st.u) > 1 else 0
            stages.append(_Plane(st.u[j:j + 1], st.w[j:j + 1], st.cm1[j:j + 1], st.s[j:j + 1]))
        return Rotation(stages, self.dim, True, 1, self.backend)


def rotation(v0, v1, *, backend="auto"):
    """The minimal rotation taking ``v0/|v0|`` to ``v1/|v1|`` (one pair or a batch of pairs).

    Parameters
    ----------
    v0, v1 : array_like, shape (d,) or (n, d)
        Finite, non-zero vectors (float16/32/64). Row counts broadcast (n or 1).
        Two 1-D inputs give a single rotation; otherwise a batch of ``n``.
    backend : {"auto", "numpy", "numba", "cuda"}
        Kernel backend for building the planes and for :meth:`Rotation.apply`
        (the CUDA backend builds the planes on the host and applies on the GPU).

    Returns
    -------
    Rotation
        Acts only in ``span{v0, v1}`` (see the module docstring for the
        formula and the parallel/antipodal policies). Planes are float64.

    Raises
    ------
    ValueError
        Zero vectors, NaN/inf, dimension mismatch, row counts that do not broadcast.
    TypeError
        Non-floating dtypes.

    Examples
    --------
    >>> import numpy as np, embalg as ea
    >>> rng = np.random.default_rng(0)
    >>> v0, v1 = rng.standard_normal((2, 4, 8))        # a batch of 4 pairs in 8-d
    >>> r = ea.rotation(v0, v1)
    >>> r.angle.shape
    (4,)
    >>> out = r.apply(v0)                               # rotation i acts on row i
    >>> bool(np.allclose(out / np.linalg.norm(out, axis=1, keepdims=True),
    ...                  v1 / np.linalg.norm(v1, axis=1, keepdims=True), atol=1e-12))
    True
    >>> ea.rotation([1.0, 0.0], [-1.0, 0.0]).apply([1.0, 0.0]).round(12)  # antipodal
    array([-1.,  0.])
    """
    a, a1d = as_vectors(v0, "v0")
    b, b1d = as_vectors(v1, "v1")
    d = check_same_dim([a, b], ["v0", "v1"])
    n = broadcast_rows([a, b], ["v0", "v1"])
    if d < 2:
        raise ValueError(f"v0 and v1 have dimension d = {d}; rotations need d >= 2 (in one "
                         "dimension no rotation takes a vector to its negative)")
    a, b = _host64(a), _host64(b)
    check_finite(a, "v0")
    check_finite(b, "v1")
    _check_nonzero(a, "v0")
    _check_nonzero(b, "v1")
    a = np.broadcast_to(a, (n, d))
    b = np.broadcast_to(b, (n, d))
    name = resolve_backend(backend, a, n_elements=n * d)
    u, w, cm1, s = kernels("rotation", name).plane_from_pairs(a, b)
    return Rotation([_Plane(u, w, cm1, s)], d, a1d and b1d, n, backend)

"""How much of the space a set of embeddings uses: the cone, anisotropy, IsoScore, PCA.

Every figure here is a statistic of the set's **unit-normalized rows**
(cosine geometry): rows are normalized on the fly, block by block, so the input
may be a read-only ``numpy.memmap`` larger than memory. One streaming pass
(:func:`set_moments`) accumulates the row sum and the Gram matrix
:math:`X^T X` in float64 (``d x d``, never ``n x n``); centroid, covariance,
PCA spectrum, IsoScore, rogue dimensions and the exact mean pairwise cosine all
follow from it. A second pass gives every row's cosine to the centroid.

Definitions (``u_i`` the unit rows, ``n`` of them, dimension ``d``):

* centroid :math:`\\mu = \\frac1n \\sum_i u_i`; its direction :math:`\\hat\\mu`.
* cosine to the centroid :math:`c_i = u_i \\cdot \\hat\\mu`; the cone
  **half-angle** :math:`\\max_i \\arccos c_i` (degrees), the largest angle between
  a member and the centroid direction. The **cone width** is twice the
  half-angle: the apex angle of the circular cone around :math:`\\hat\\mu` that
  holds every member. The widest angle actually spanned by two members,
  :math:`\\arccos(\\min_{i<j} u_i \\cdot u_j)`, is an all-pairs figure (see
  :func:`embalg.pairwise_stats`); it is at most the cone width.
* Ethayarajh's (2019) **anisotropy**: the expected cosine of two distinct random
  members, :math:`E_{i \\ne j}[u_i \\cdot u_j]`. Sampled pairs estimate it
  (:func:`anisotropy`); it equals the all-pairs mean exactly, which the moments
  give in closed form, :math:`(n^2\\lVert\\mu\\rVert^2 - n) / (n(n-1))`
  (:func:`mean_pairwise_cosine`).
* **IsoScore** (Rudman et al. 2022), computed from the eigenvalues of the
  covariance (:func:`isoscore_from_variances`): 1 for isotropic data, 0 when
  one direction holds all the variance.
* **rogue dimensions** (Timkey & van Schijndel 2021): coordinates that dominate
  the cosine. Coordinate ``k`` contributes :math:`\\mu_k^2` to the expected
  cosine of random pairs (the contributions sum to :math:`\\lVert\\mu\\rVert^2`)
  and :math:`\\sigma_k^2` to the total variance.
* **all-but-the-top** (Mu & Viswanath 2018): subtract the mean and the
  projections on the top ``D`` principal components (:class:`Postprocess`,
  :func:`all_but_the_top`); ``D = 0`` is plain mean-centering.

Examples
--------
>>> import numpy as np
>>> from embalg.studies.isotropy import set_moments, isoscore, mean_pairwise_cosine
>>> x = np.eye(3)                     # three orthogonal unit vectors
>>> m = set_moments(x)
>>> round(mean_pairwise_cosine(m), 12)
0.0
>>> round(isoscore(np.random.default_rng(0).standard_normal((20000, 4))), 2)
1.0
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from ..progress import progress_bar
from ..validation import as_vectors, check_positive_int

logger = logging.getLogger(__name__)

#: default bytes of float64 work space per block of rows
WORKING_MEMORY = 64 * 2**20


def block_rows(d: int, working_memory: int | None = None) -> int:
    """Rows per block so that a few float64 copies of the block fit ``working_memory`` bytes."""
    budget = WORKING_MEMORY if working_memory is None else int(working_memory)
    return max(1, budget // (4 * 8 * max(d, 1)))


def check_vector_set(x, name: str = "x", *, min_rows: int = 1) -> np.ndarray:
    """The 2-D ``(n, d)`` view of ``x`` after the dtype/ndim checks; at least ``min_rows`` rows."""
    x2, _ = as_vectors(x, name, allow_1d=False)
    if not isinstance(x2, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array or memmap, got {type(x2).__name__}")
    if x2.shape[0] < min_rows:
        raise ValueError(f"{name} has {x2.shape[0]} rows; this statistic needs at least "
                         f"{min_rows} vectors")
    return x2


def unit_block(block, start: int, name: str = "x") -> np.ndarray:
    """Rows ``block`` as float64 unit vectors; ``ValueError`` naming the absolute row of a
    non-finite or zero row (``start`` is the block's first row index)."""
    b = np.array(block, dtype=np.float64, copy=True)
    finite = np.isfinite(b).all(axis=1)
    if not finite.all():
        raise ValueError(f"{name} contains NaN or inf (first at row {start + int(np.argmin(finite))}); "
                         "embeddings must be finite")
    norms = np.sqrt(np.einsum("ij,ij->i", b, b))
    if (norms == 0).any():
        raise ValueError(f"{name} has a zero vector at row {start + int(np.argmin(norms))}; "
                         "a zero vector has no direction")
    b /= norms[:, None]
    return b


@dataclass(frozen=True)
class Postprocess:
    """Mean removal plus removal of ``components`` (Mu & Viswanath's all-but-the-top).

    Applied to a block of unit rows ``u``: :math:`v = (u - m) - ((u - m) U) U^T`,
    then ``v`` is renormalized to unit rows (cosine geometry).

    Attributes
    ----------
    mean : ndarray, shape (d,), float64
    components : ndarray, shape (D, d), float64
        Orthonormal rows (top principal directions); ``D = 0`` is mean-centering only.
    """

    mean: np.ndarray
    components: np.ndarray

    def pair_cosines(self, a_rows: np.ndarray, b_rows: np.ndarray) -> np.ndarray:
        """Row-wise cosines of the post-processed ``a_rows`` and ``b_rows`` (unit rows, (k, d)),
        without forming the post-processed rows: with :math:`a' = a - m`, :math:`p_a = a' U^T`,

        .. math:: \\cos = \\frac{a' \\cdot b' - p_a \\cdot p_b}
                  {\\sqrt{(\\lVert a'\\rVert^2 - \\lVert p_a\\rVert^2)
                   (\\lVert b'\\rVert^2 - \\lVert p_b\\rVert^2)}}
        """
        a, b = a_rows - self.mean, b_rows - self.mean
        pa, pb = a @ self.components.T, b @ self.components.T
        dot = np.einsum("ij,ij->i", a, b) - np.einsum("ij,ij->i", pa, pb)
        na = np.einsum("ij,ij->i", a, a) - np.einsum("ij,ij->i", pa, pa)
        nb = np.einsum("ij,ij->i", b, b) - np.einsum("ij,ij->i", pb, pb)
        if (na <= 1e-24).any() or (nb <= 1e-24).any():
            raise ValueError("a sampled row vanishes after post-processing (it equals the mean "
                             "within the removed components)")
        return np.clip(dot / np.sqrt(na * nb), -1.0, 1.0)

    def __call__(self, unit_rows: np.ndarray, start: int = 0) -> np.ndarray:
        v = unit_rows - self.mean
        if self.components.shape[0]:
            v -= (v @ self.components.T) @ self.components
        norms = np.sqrt(np.einsum("ij,ij->i", v, v))
        tiny = norms <= 1e-12
        if tiny.any():
            raise ValueError(f"row {start + int(np.argmax(tiny))} vanishes after post-processing "
                             "(it equals the mean within the removed components)")
        v /= norms[:, None]
        return v


def iter_unit_blocks(x, *, transform=None, working_memory=None, progress=None, desc="rows",
                     name="x"):
    """Yield ``(start, block)``: float64 unit rows of ``x``, post-processed by ``transform``."""
    n, d = x.shape
    step = block_rows(d, working_memory)
    bar = progress_bar(n, desc=desc, unit="row", progress=progress)
    try:
        for start in range(0, n, step):
            b = unit_block(x[start:start + step], start, name)
            if transform is not None:
                b = transform(b, start)
            yield start, b
            bar.update(b.shape[0])
    finally:
        bar.close()


@dataclass(frozen=True)
class SetMoments:
    """First and second moments of a set's unit rows, from one streaming pass.

    Attributes
    ----------
    n, d : int
    mean : ndarray, shape (d,), float64
        The centroid :math:`\\mu` of the unit rows.
    cov : ndarray, shape (d, d), float64
        Population covariance :math:`\\frac1n \\sum_i (u_i-\\mu)(u_i-\\mu)^T`.
    """

    n: int
    d: int
    mean: np.ndarray
    cov: np.ndarray

    @property
    def variances(self) -> np.ndarray:
        """Per-coordinate variances, the diagonal of ``cov``."""
        return np.diag(self.cov).copy()

    def eigh(self):
        """``(eigenvalues, eigenvectors)`` of ``cov``, eigenvalues descending and clipped at 0;
        eigenvectors are the columns, in the same order. Computed once, then cached."""
        cached = self.__dict__.get("_eigh")
        if cached is None:
            w, v = np.linalg.eigh(self.cov)
            order = np.argsort(w)[::-1]
            cached = (np.clip(w[order], 0.0, None), v[:, order])
            object.__setattr__(self, "_eigh", cached)
        return cached

    def eigenvalues(self) -> np.ndarray:
        """Eigenvalues of ``cov``, descending, clipped at 0 (cheaper than :meth:`eigh`
        unless the eigenvectors were already computed)."""
        cached = self.__dict__.get("_eigh")
        if cached is not None:
            return cached[0]
        return np.clip(np.linalg.eigvalsh(self.cov)[::-1], 0.0, None)


def set_moments(x, *, transform=None, working_memory=None, progress=None,
                name: str = "x") -> SetMoments:
    """Centroid and covariance of the unit rows of ``x`` in one streaming float64 pass.

    Parameters
    ----------
    x : array_like or numpy.memmap, shape (n, d), n >= 1
        Vectors (any float dtype); each row is normalized before use.
    transform : Postprocess, optional
        Applied to each block of unit rows first (the result is what is measured).
    working_memory : int, optional
        Bytes of float64 work space per block (default 64 MiB); memory is
        ``O(block * d + d^2)``, never ``O(n d)`` beyond the input.
    progress : bool, optional
        Progress bar (default: when stderr is a terminal).

    Returns
    -------
    SetMoments

    Raises
    ------
    ValueError
        Empty set, NaN/inf, or a zero row (the message names the row).
    TypeError
        Non-float dtype.

    Notes
    -----
    The Gram matrix is accumulated about a shift (the first block's mean) so
    that :math:`\\mathrm{cov} = G_s/n - (\\mu - s)(\\mu - s)^T` does not cancel
    catastrophically when the set sits in a narrow cone.

    Examples
    --------
    >>> import numpy as np
    >>> m = set_moments(np.array([[1.0, 0.0], [0.0, 2.0]]))
    >>> m.mean.tolist(), m.cov.round(3).tolist()
    ([0.5, 0.5], [[0.25, -0.25], [-0.25, 0.25]])
    """
    x = check_vector_set(x, name)
    n, d = x.shape
    total = np.zeros(d)
    gram = np.zeros((d, d))
    shift = None
    for _, b in iter_unit_blocks(x, transform=transform, working_memory=working_memory,
                                 progress=progress, desc="moments", name=name):
        if shift is None:
            shift = b.mean(axis=0)
        total += b.sum(axis=0)
        c = b - shift
        gram += c.T @ c
    mean = total / n
    ms = mean - shift
    cov = gram / n - np.outer(ms, ms)
    cov = (cov + cov.T) / 2
    return SetMoments(n=n, d=d, mean=mean, cov=cov)


def mean_pairwise_cosine(moments: SetMoments) -> float:
    """Exact mean cosine over all pairs ``i < j`` of unit rows, from the moments.

    .. math:: \\frac{2}{n(n-1)} \\sum_{i<j} u_i \\cdot u_j
              = \\frac{n^2 \\lVert\\mu\\rVert^2 - n}{n(n-1)}

    ``nan`` for fewer than two rows.

    Examples
    --------
    >>> import numpy as np
    >>> round(mean_pairwise_cosine(set_moments(np.array([[1.0, 0], [1, 1], [0, 1]]))), 6)
    0.471405
    """
    n = moments.n
    if n < 2:
        return float("nan")
    s2 = n * n * float(moments.mean @ moments.mean)
    return (s2 - n) / (n * (n - 1))


def cosine_to_centroid(x, centroid, *, transform=None, working_memory=None, progress=None,
                       name: str = "x") -> np.ndarray:
    """Cosine of every (unit-normalized, post-processed) row to the direction of ``centroid``.

    Parameters
    ----------
    x : array_like or numpy.memmap, shape (n, d)
    centroid : array_like, shape (d,)
        Nonzero; only its direction matters.

    Returns
    -------
    ndarray, shape (n,), float64, values in [-1, 1]

    Examples
    --------
    >>> import numpy as np
    >>> cosine_to_centroid(np.array([[1.0, 0.0], [0.0, 3.0]]), [1.0, 1.0]).round(4).tolist()
    [0.7071, 0.7071]
    """
    x = check_vector_set(x, name)
    c = np.asarray(centroid, dtype=np.float64)
    if c.shape != (x.shape[1],):
        raise ValueError(f"centroid has shape {c.shape}, expected ({x.shape[1]},)")
    norm = float(np.linalg.norm(c))
    if not np.isfinite(norm) or norm == 0:
        raise ValueError("centroid is zero or not finite: the set has no mean direction "
                         "(after mean-centering, measure the renormalized set's own centroid)")
    c = c / norm
    out = np.empty(x.shape[0])
    for start, b in iter_unit_blocks(x, transform=transform, working_memory=working_memory,
                                     progress=progress, desc="cos to centroid", name=name):
        out[start:start + b.shape[0]] = b @ c
    np.clip(out, -1.0, 1.0, out=out)
    return out


def cone_angles(cos_to_centroid) -> dict:
    """The cone around the centroid direction, from every member's cosine to it.

    Returns
    -------
    dict
        ``half_angle_deg`` (largest angle between a member and the centroid
        direction) and ``cone_width_deg`` (= 2 x half-angle, apex angle of the
        circular cone that holds all members).

    Examples
    --------
    >>> cone_angles([1.0, 0.5])
    {'half_angle_deg': 60.0, 'cone_width_deg': 120.0}
    """
    c = np.asarray(cos_to_centroid, dtype=np.float64)
    if c.size == 0:
        raise ValueError("cos_to_centroid is empty; the cone needs at least one vector")
    half = math.degrees(math.acos(float(np.clip(c.min(), -1.0, 1.0))))
    half = round(half, 12)
    return {"half_angle_deg": half, "cone_width_deg": 2 * half}


def anisotropy(x, *, n_pairs: int = 100_000, seed: int = 0, transform=None,
               name: str = "x") -> dict:
    """Ethayarajh's anisotropy: mean cosine of uniformly sampled pairs of distinct rows.

    Pairs ``(i, j)``, ``i != j``, are drawn with replacement; rows are gathered in
    chunks (memmaps are fine). The expectation equals :func:`mean_pairwise_cosine`.
    With ``transform`` (a :class:`Postprocess`), the cosines are those of the
    post-processed rows (:meth:`Postprocess.pair_cosines`).

    Returns
    -------
    dict
        ``estimate``, ``stderr`` (standard error of the mean) and ``n_pairs``.

    Examples
    --------
    >>> import numpy as np
    >>> r = anisotropy(np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]), n_pairs=100)
    >>> r["estimate"], r["n_pairs"]
    (1.0, 100)
    """
    x = check_vector_set(x, name, min_rows=2)
    n_pairs = check_positive_int(n_pairs, "n_pairs")
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, n_pairs)
    j = rng.integers(0, n - 1, n_pairs)
    j = j + (j >= i)                       # uniform over j != i
    chunk = max(1, block_rows(x.shape[1]) // 2)
    cos = np.empty(n_pairs)
    for s in range(0, n_pairs, chunk):
        ii, jj = i[s:s + chunk], j[s:s + chunk]
        rows = np.unique(np.concatenate([ii, jj]))   # sorted: sequential-ish reads of a memmap
        u = unit_block(x[rows], 0, name)
        a = u[np.searchsorted(rows, ii)]
        b = u[np.searchsorted(rows, jj)]
        cos[s:s + chunk] = (np.einsum("ij,ij->i", a, b) if transform is None
                            else transform.pair_cosines(a, b))
    se = float(cos.std(ddof=1) / math.sqrt(n_pairs)) if n_pairs > 1 else float("nan")
    return {"estimate": float(cos.mean()), "stderr": se, "n_pairs": n_pairs}


def isoscore_from_variances(variances) -> float:
    """IsoScore (Rudman et al. 2022) of a variance vector in the PCA basis.

    Steps 3-6 of the published algorithm, for ``n`` = the dimension:

    .. math::
        \\hat\\Sigma = \\sqrt n\\, \\Sigma / \\lVert\\Sigma\\rVert, \\quad
        \\delta = \\frac{\\lVert \\hat\\Sigma - \\mathbf 1 \\rVert}{\\sqrt{2(n-\\sqrt n)}}, \\quad
        \\phi = \\frac{(n - \\delta^2 (n - \\sqrt n))^2}{n^2}, \\quad
        \\iota = \\frac{n\\phi - 1}{n - 1}

    Parameters
    ----------
    variances : array_like, shape (n,)
        Variances along the principal axes (the covariance eigenvalues), all
        of them, including zeros for unused directions.

    Returns
    -------
    float in [0, 1]: 1 when all directions hold equal variance, 0 when one does.

    Examples
    --------
    >>> isoscore_from_variances([1.0, 1.0, 1.0, 1.0])
    1.0
    >>> isoscore_from_variances([5.0, 0.0, 0.0, 0.0])
    0.0
    """
    v = np.asarray(variances, dtype=np.float64).ravel()
    n = v.size
    if n < 2:
        raise ValueError(f"IsoScore needs dimension >= 2, got {n}")
    if not np.isfinite(v).all() or (v < 0).any():
        raise ValueError("variances must be finite and >= 0")
    norm = float(np.linalg.norm(v))
    if norm == 0:
        raise ValueError("all variances are zero: the points are identical, IsoScore is undefined")
    vhat = math.sqrt(n) * v / norm
    delta = float(np.linalg.norm(vhat - 1.0)) / math.sqrt(2 * (n - math.sqrt(n)))
    phi = (n - delta**2 * (n - math.sqrt(n))) ** 2 / n**2
    score = (n * phi - 1) / (n - 1)
    return min(1.0, max(0.0, round(float(score), 12)))      # max(0.0, -0.0) is 0.0


def isoscore(points) -> float:
    """IsoScore of a point cloud ``points`` of shape (n, d), as published (no row normalization).

    Reorients with PCA (the covariance eigenvalues are the variances in the PCA
    basis) and applies :func:`isoscore_from_variances`. For the unit rows of a
    set, use ``isoscore_from_variances(set_moments(x).eigh()[0])``.

    Examples
    --------
    >>> import numpy as np
    >>> line = np.outer(np.arange(50.0), [1.0, 2.0, 3.0])   # one direction
    >>> round(isoscore(line), 12)
    0.0
    """
    p = check_vector_set(points, "points", min_rows=2).astype(np.float64)
    c = np.cov(p, rowvar=False, bias=True).reshape(p.shape[1], p.shape[1])
    return isoscore_from_variances(np.clip(np.linalg.eigvalsh(c), 0.0, None))


def pca_spectrum(eigenvalues, *, top: int = 20) -> dict:
    """Explained-variance ratios of the principal components.

    Returns
    -------
    dict
        ``explained_variance_ratio`` (the ``top`` largest), ``cumulative`` (same length),
        ``components_for`` {"50%", "90%", "99%"}: components needed to explain that share,
        and ``total_variance``.

    Examples
    --------
    >>> pca_spectrum([3.0, 1.0], top=2)["explained_variance_ratio"]
    [0.75, 0.25]
    """
    w = np.clip(np.sort(np.asarray(eigenvalues, dtype=np.float64))[::-1], 0, None)
    total = float(w.sum())
    ratio = w / total if total > 0 else np.zeros_like(w)
    cum = np.cumsum(ratio)
    need = {f"{int(q * 100)}%": int(min(np.searchsorted(cum, q - 1e-12) + 1, w.size))
            for q in (0.5, 0.9, 0.99)}
    return {"explained_variance_ratio": ratio[:top].tolist(), "cumulative": cum[:top].tolist(),
            "components_for": need, "total_variance": total}


def rogue_dimensions(moments: SetMoments, *, top: int = 10) -> dict:
    """Coordinates that dominate the cosine (Timkey & van Schijndel 2021).

    Coordinate ``k`` contributes :math:`\\mu_k^2` to the expected cosine of random
    pairs of unit rows (the contributions sum to :math:`\\lVert\\mu\\rVert^2`) and
    :math:`\\sigma_k^2` to the total variance. ``fold`` is a share times ``d``:
    1 for a coordinate that carries its fair share, ``d`` for one that carries all.

    Returns
    -------
    dict
        ``by_mean``: the ``top`` coordinates by cosine contribution, each
        ``{"dim", "mean", "variance", "cosine_share", "fold"}``; ``by_variance``:
        the same by variance share; ``top1_cosine_share``, ``top3_cosine_share``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[3.0, 0.1, 0.0], [3.0, 0.0, 0.1], [3.0, -0.1, 0.0]])
    >>> rogue_dimensions(set_moments(x), top=1)["by_mean"][0]["dim"]
    0
    """
    mu2 = moments.mean**2
    var = moments.variances
    d = moments.d
    s_mu, s_var = float(mu2.sum()), float(var.sum())
    cs = mu2 / s_mu if s_mu > 0 else np.zeros(d)
    vs = var / s_var if s_var > 0 else np.zeros(d)

    def rows(order, share, key):
        return [{"dim": int(k), "mean": float(moments.mean[k]), "variance": float(var[k]),
                 key: float(share[k]), "fold": float(share[k] * d)} for k in order[:top]]

    by_mean = np.argsort(-cs, kind="stable")
    by_var = np.argsort(-vs, kind="stable")
    return {"by_mean": rows(by_mean, cs, "cosine_share"),
            "by_variance": rows(by_var, vs, "variance_share"),
            "top1_cosine_share": float(cs[by_mean[:1]].sum()),
            "top3_cosine_share": float(cs[by_mean[:3]].sum())}


def all_but_the_top_transform(moments: SetMoments, n_components: int) -> Postprocess:
    """The :class:`Postprocess` removing the mean and the top ``n_components`` principal
    directions of the set described by ``moments``."""
    n_components = check_positive_int(n_components, "n_components", allow_zero=True)
    if n_components > moments.d:
        raise ValueError(f"n_components = {n_components} exceeds the dimension d = {moments.d}")
    _, vecs = moments.eigh()
    return Postprocess(mean=moments.mean.copy(), components=vecs[:, :n_components].T.copy())


def all_but_the_top(x, n_components: int) -> np.ndarray:
    """Mu & Viswanath's all-but-the-top on the unit rows of a small set ``x``.

    Removes the mean and the projections on the top ``n_components`` principal
    directions, then renormalizes rows. ``n_components = 0`` is mean-centering.

    Parameters
    ----------
    x : array_like, shape (n, d)
    n_components : int, 0 <= n_components <= d

    Returns
    -------
    ndarray, shape (n, d), float64, unit rows

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal((100, 5)) + [4, 0, 0, 0, 0]
    >>> y = all_but_the_top(x, 1)
    >>> bool(np.allclose(np.linalg.norm(y, axis=1), 1))
    True
    """
    x = check_vector_set(x)
    t = all_but_the_top_transform(set_moments(x, progress=False), n_components)
    return t(unit_block(x, 0))

"""Measured algebraic properties of an operator: the thread's questions, as numbers.

For operands ``x, y, z`` (rows paired up, single rows broadcast) it measures,
as cosine distances ``1 - cos(lhs, rhs)`` per row:

* commutativity: ``op(x, y)`` vs ``op(y, x)``;
* associativity: ``op(op(x, y), z)`` vs ``op(x, op(y, z))``;
* identity: ``op(x, e)`` vs ``x`` for the operator's identity direction ``e``
  (all-ones for the Hadamard product and division; ``x`` itself for the
  geometric mean, i.e. idempotence); none for the normalized sum;
* inverse: undoing ``y`` (``hadamard_div(hadamard(x, y), y)``,
  ``hadamard(hadamard_div(x, y), y)``, ``nsum(nsum(x, y), y, weights=[1, -1])``);
  none for the geometric mean;
* closure against a reference set ``R`` (default: the operands): the fraction
  of results ``op(x, y)`` whose cosine to R's centroid direction is below the
  smallest such cosine among R's own rows ("leaves the cone").
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import operators as ops
from . import validation as v

QUANTILES = (0.5, 0.9, 0.99)


def _summary(dist: np.ndarray) -> dict:
    dist = np.asarray(dist, np.float64)
    out = {"n": int(dist.size), "max": float(dist.max()), "mean": float(dist.mean())}
    out.update({f"q{int(q * 100)}": float(np.quantile(dist, q)) for q in QUANTILES})
    return out


def _cos_dist(a, b) -> np.ndarray:
    return 1.0 - np.atleast_1d(ops.cosine(a, b, on_zero="nan"))


@dataclass
class PropertyReport:
    """What :func:`properties` measured. Distances are ``1 - cosine`` per row.

    ``samples`` holds the per-row distances; ``summary`` their max, mean and
    quantiles; ``closure`` the reference's minimum cosine to its centroid and the
    fraction of results below it. A property the operator has no form of is ``None``.
    """
    op: str
    samples: dict = field(default_factory=dict)
    closure: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)

    @property
    def summary(self) -> dict:
        return {k: (None if s is None else _summary(s)) for k, s in self.samples.items()}

    def to_dict(self) -> dict:
        return {"op": self.op, **self.summary, "closure": self.closure, "notes": self.notes}


def _identity_distance(name, f, x, kwargs):
    d = x.shape[1]
    if name in ("hadamard", "hadamard_div"):
        e = np.full(d, 1.0 / np.sqrt(d), x.dtype)
        return _cos_dist(f(x, e, **kwargs), x), "e = ones(d)/sqrt(d)"
    if name.startswith("geomean"):
        return _cos_dist(f(x, x, **kwargs), x), "idempotence: op(x, x) vs x"
    return None, "the normalized sum has no identity element"


def _inverse_distance(name, x, y, eps, backend):
    if name == "hadamard":
        z = ops.hadamard(x, y, backend=backend)
        return (_cos_dist(ops.hadamard_div(z, y, eps=eps, backend=backend), x),
                f"hadamard_div(hadamard(x, y), y, eps={eps:g}) vs x")
    if name == "hadamard_div":
        z = ops.hadamard_div(x, y, eps=eps, backend=backend)
        return (_cos_dist(ops.hadamard(z, y, backend=backend), x),
                f"hadamard(hadamard_div(x, y, eps={eps:g}), y) vs x")
    if name == "nsum":
        z = ops.nsum(x, y, backend=backend)
        return (_cos_dist(ops.nsum(z, y, weights=[1.0, -1.0], backend=backend), x),
                "nsum(nsum(x, y), y, weights=[1, -1]) vs x (renormalizing loses |x + y|)")
    return None, "no inverse operation"


def properties(op, x, y, z, *, reference=None, eps=ops.DEFAULT_EPS, backend="auto",
               **op_kwargs) -> PropertyReport:
    """Measure commutativity, associativity, identity, inverse and closure of ``op``.

    Parameters
    ----------
    op : str
        A name in :data:`embalg.operators.OPERATORS` ("nsum", "hadamard",
        "hadamard_div", "geomean", "geomean_signed", "geomean_agree").
    x, y, z : array_like, shape (d,) or (n, d)
        Operands, rows paired (single rows broadcast). Computed in their dtype;
        pass float64 for the thread's high-precision measurements.
    reference : array_like, shape (m, d), optional
        The set whose cone closure is judged against (default: x, y and z stacked).
    eps : float
        The division clamp of :func:`embalg.hadamard_div` in the inverse checks
        (components with ``|y| < eps`` cannot be undone exactly).
    backend : str
        Passed to every operator call.
    **op_kwargs
        Passed to the operator under test (``weights=``, ``on_zero=``).

    Returns
    -------
    PropertyReport

    Examples
    --------
    >>> import numpy as np, embalg as ea
    >>> rng = np.random.default_rng(0)
    >>> x, y, z = (ea.normalize(rng.standard_normal((50, 16))) for _ in range(3))
    >>> r = ea.properties("hadamard", x, y, z)
    >>> r.summary["associativity"]["max"] < 1e-12
    True
    >>> r.summary["commutativity"]["max"] < 1e-15  # x*y and y*x are the same vector
    True
    """
    name = op if isinstance(op, str) else getattr(op, "__name__", None)
    f = ops._resolve_op(op)
    if name not in ops.OPERATORS:
        raise ValueError(f"properties needs an operator name, one of {', '.join(ops.OPERATORS)}")
    xs, n, d, dtype, _, _ = ops._check_inputs((x, y, z), ["x", "y", "z"])
    x, y, z = (np.broadcast_to(a, (n, d)) for a in xs)
    kwargs = dict(op_kwargs, backend=backend)
    report = PropertyReport(op=name)
    xy = f(x, y, **kwargs)
    report.samples["commutativity"] = _cos_dist(xy, f(y, x, **kwargs))
    report.samples["associativity"] = _cos_dist(f(xy, z, **kwargs), f(x, f(y, z, **kwargs), **kwargs))
    report.samples["identity"], report.notes["identity"] = _identity_distance(name, f, x, kwargs)
    if name == "hadamard_div":
        kwargs["eps"] = eps
    report.samples["inverse"], report.notes["inverse"] = _inverse_distance(name, x, y, eps, backend)
    ref = np.concatenate([x, y, z]) if reference is None else v.as_vectors(reference, "reference")[0]
    if ref.shape[1] != d:
        raise ValueError(f"dimension mismatch: x has d = {d} while reference has d = {ref.shape[1]}")
    v.check_finite(ref, "reference")
    ref = ops.normalize(np.asarray(ref, np.float64))
    centroid = ops.normalize(ref.mean(axis=0))
    ref_cos = ref @ centroid
    res_cos = ops.normalize(np.asarray(xy, np.float64)) @ centroid
    floor = float(ref_cos.min())
    report.closure = {
        "reference_rows": int(ref.shape[0]),
        "reference_min_cos_to_centroid": floor,
        "result_min_cos_to_centroid": float(res_cos.min()),
        "result_mean_cos_to_centroid": float(res_cos.mean()),
        "fraction_outside_cone": float(np.mean(res_cos < floor)),
    }
    return report

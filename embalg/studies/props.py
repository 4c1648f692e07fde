"""The properties study: do the operators keep the algebra the thread hopes for, on real embeddings?

For each operator in :data:`embalg.OPERATORS` (``nsum``, ``hadamard``,
``hadamard_div``, ``geomean_signed``, ``geomean_agree``) and operands drawn from
a set of real embeddings, :func:`props_study` reports

* the algebraic properties measured by :func:`embalg.properties`
  (commutativity and associativity error as cosine distance between the two
  sides, identity and inverse where they exist, and its closure figure), and
* closure measured against the real set, two ways:

  - *the cone*: each result's cosine to the real set's centroid direction,
    compared with the real set's own minimum (``leaves_cone``: below it) and its
    ``quantile`` (``below_quantile``);
  - *the nearest real embedding*: each result's cosine to its nearest neighbour
    in a held-out pool of real embeddings (``ea.pairwise_stats(results, pool,
    topk=1)``), next to the same figure for real embeddings (the operands
    themselves), so "far from anything real" has a yardstick;

* the thread's extreme example: the normalized Hadamard product of each real
  embedding with the normalized all-negative vector ``-1 / sqrt(d)`` is ``-x``,
  180 degrees away; the study measures that angle and where those products sit
  relative to the cone.

Operands: the set's rows are shuffled (seeded); ``x``, ``y`` and ``z`` take
``m = n // 4`` rows each and the remaining ``n - 3m`` rows form the pool.
"""
from __future__ import annotations

import math

import numpy as np

from . import isotropy as iso

STUDY_OPERATORS = ("nsum", "hadamard", "hadamard_div", "geomean_signed", "geomean_agree")
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def _summary(v) -> dict:
    v = np.asarray(v, dtype=np.float64)
    return {"min": float(v.min()), "mean": float(v.mean()), "max": float(v.max()),
            "quantiles": {str(q): float(x) for q, x in zip(QUANTILES, np.quantile(v, QUANTILES))}}


def nearest_cosine(results, pool, *, progress=None) -> np.ndarray:
    """Cosine of each row of ``results`` to its nearest row of ``pool`` (via ``pairwise_stats``)."""
    import embalg as ea

    st = ea.pairwise_stats(np.asarray(results, dtype=np.float32),
                           np.asarray(pool, dtype=np.float32), topk=1, progress=progress)
    return np.asarray(st.topk_values, dtype=np.float64)[:, 0]


def closure(results, centroid_dir, cone_min, cone_q, pool, *, progress=None) -> dict:
    """Closure figures of operator ``results`` against a real set (see the module docstring)."""
    r = iso.unit_block(results, 0, "results")
    cos_c = r @ centroid_dir
    nn = nearest_cosine(r, pool, progress=progress)
    return {
        "cosine_to_centroid": _summary(cos_c),
        "leaves_cone": float((cos_c < cone_min).mean()),
        "below_quantile": float((cos_c < cone_q).mean()),
        "nearest_real_cosine": _summary(nn),
    }, cos_c, nn


def all_negative_example(x, centroid_dir, cone_min) -> dict:
    """The thread's extreme example on real rows ``x``: ``hadamard(x, -1/sqrt(d))``.

    Returns the angle between each product and its operand (degrees; 180 means
    the product is ``-x``) and where the products sit relative to the cone.
    """
    import embalg as ea

    d = x.shape[1]
    neg = np.full(d, -1.0 / math.sqrt(d))
    xs = iso.unit_block(x, 0)
    h = np.asarray(ea.hadamard(xs, neg), dtype=np.float64)
    ang = np.degrees(np.arccos(np.clip(np.einsum("ij,ij->i", h, xs), -1.0, 1.0)))
    cos_c = h @ centroid_dir
    return {"vector": "-ones(d) / sqrt(d)",
            "angle_to_operand_deg": {"min": float(ang.min()), "mean": float(ang.mean()),
                                     "max": float(ang.max())},
            "cosine_to_centroid": _summary(cos_c),
            "leaves_cone": float((cos_c < cone_min).mean())}


def _algebra(name, x, y, z, reference) -> dict:
    import embalg as ea

    # the NumPy reference backend: float64 as the thread measured with decimal arithmetic
    rep = ea.properties(name, x, y, z, reference=reference, backend="numpy")
    return rep.to_dict() if hasattr(rep, "to_dict") else dict(rep)


def props_study(vectors, *, quantile: float = 0.01, seed: int = 0, operators=STUDY_OPERATORS,
                max_rows: int = 20_000, progress=None):
    """Measure the operators' algebra and closure on a set of real embeddings.

    Parameters
    ----------
    vectors : array_like, shape (n, d), n >= 8
        Real embeddings (rows normalized on the fly).
    quantile : float in [0, 1)
        The cone's edge for ``below_quantile`` (default the real set's 1% quantile of
        cosine to the centroid; ``leaves_cone`` always uses the minimum).
    seed : int
        Seed of the operand/pool split (and of the row sample).
    max_rows : int
        Larger sets (e.g. a memory-mapped file of millions of rows) are measured
        on a seeded sample of this many rows, held in memory as float64.

    Returns
    -------
    report : dict
    arrays : dict
        Distributions for the plots.
    """
    x_all = iso.check_vector_set(vectors, "vectors", min_rows=8)
    if not 0 <= quantile < 1:
        raise ValueError(f"quantile must be in [0, 1), got {quantile}")
    sampled_from = None
    if x_all.shape[0] > max_rows:
        sampled_from = int(x_all.shape[0])
        rows = np.sort(np.random.default_rng(seed).choice(sampled_from, max_rows, replace=False))
        x_all = x_all[rows]
    n, d = x_all.shape
    unit = np.vstack([b for _, b in iso.iter_unit_blocks(x_all, progress=False)])
    moments = iso.set_moments(unit, progress=False)
    cdir = moments.mean / np.linalg.norm(moments.mean)
    real_cos = unit @ cdir
    cone_min, cone_q = float(real_cos.min()), float(np.quantile(real_cos, quantile))
    perm = np.random.default_rng(seed).permutation(n)
    m = n // 4
    x, y, z = (unit[perm[k * m:(k + 1) * m]] for k in range(3))
    pool = unit[perm[3 * m:]]
    real_nn = nearest_cosine(x, pool, progress=progress)

    import embalg as ea

    ops, arrays = {}, {"real": {"cos_to_centroid": real_cos, "nearest": real_nn}}
    for name in operators:
        fields = {"algebra": _algebra(name, x, y, z, unit)}
        result = np.asarray(ea.OPERATORS[name](x, y), dtype=np.float64)
        fields["closure"], cos_c, nn = closure(result, cdir, cone_min, cone_q, pool,
                                               progress=progress)
        ops[name] = fields
        arrays[name] = {"cos_to_centroid": cos_c, "nearest": nn}
    report = {
        "n": int(n), "d": int(d), "sampled_from": sampled_from,
        "n_triples": int(m), "pool": int(n - 3 * m),
        "real_set": {"cosine_to_centroid": _summary(real_cos), "cone_min": cone_min,
                     "cone_quantile": {"q": quantile, "value": cone_q},
                     "half_angle_deg": iso.cone_angles(real_cos)["half_angle_deg"],
                     "nearest_real_cosine": _summary(real_nn)},
        "operators": ops,
        "all_negative_example": all_negative_example(unit, cdir, cone_min),
    }
    return report, arrays


def props_markdown(report: dict) -> str:
    from .inputs import describe_source

    rs = report["real_set"]
    q = rs["cone_quantile"]
    sample = (f" (a seeded sample of {report['n']} of its {report['sampled_from']} rows)"
              if report.get("sampled_from") else "")
    lines = [f"# Operator properties on real embeddings: n = {report['n']}, d = {report['d']}", "",
             f"Source: {describe_source(report.get('source', {}))}{sample}; "
             f"{report['n_triples']} operand triples, pool of {report['pool']} real embeddings "
             "for nearest neighbours.", "",
             f"Real set: cosine to centroid min {rs['cone_min']:.4f} (half-angle "
             f"{rs['half_angle_deg']:.1f} deg), {q['q']:g} quantile {q['value']:.4f}; nearest "
             f"real neighbour cosine median {rs['nearest_real_cosine']['quantiles']['0.5']:.4f}.", "",
             "| operator | commutativity err (max) | associativity err (max) | inverse err (max) "
             "| cos to centroid (median) | leaves cone | below quantile | nearest real (median) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, f in report["operators"].items():
        a, c = f["algebra"], f["closure"]
        lines.append(f"| {name} | {_err(a, 'commutativity')} | {_err(a, 'associativity')} | "
                     f"{_err(a, 'inverse')} | {c['cosine_to_centroid']['quantiles']['0.5']:.4f} | "
                     f"{c['leaves_cone']:.3f} | {c['below_quantile']:.3f} | "
                     f"{c['nearest_real_cosine']['quantiles']['0.5']:.4f} |")
    ex = report["all_negative_example"]
    lines += ["", f"Extreme example (hadamard with {ex['vector']}): angle to the operand "
              f"{ex['angle_to_operand_deg']['min']:.4f} to {ex['angle_to_operand_deg']['max']:.4f} "
              f"deg; cosine to the centroid median {ex['cosine_to_centroid']['quantiles']['0.5']:.4f}; "
              f"{ex['leaves_cone']:.3f} of them leave the cone.", "",
              "Errors are cosine distances (1 - cosine) between the two sides. 'leaves cone': "
              "share of results whose cosine to the real centroid is below the real set's minimum.",
              "", "![closure](closure_cone.png) ![nearest](closure_nearest.png) "
              "![algebra](algebra_errors.png)", ""]
    if "timing_s" in report:
        lines += ["Timing (s): " + ", ".join(f"{k} {v:.2f}" for k, v in report["timing_s"].items()),
                  ""]
    return "\n".join(lines)


def _err(algebra: dict, key: str) -> str:
    v = property_error(algebra, key)
    return "n/a" if v is None else f"{v:.2e}"


def property_error(algebra: dict, key: str):
    """The max cosine-distance error of property ``key`` in an ``ea.properties`` dict, or None."""
    entry = algebra.get(key)
    if entry is None:
        return None
    if isinstance(entry, dict):
        for k in ("max", "max_error", "error_max"):
            if isinstance(entry.get(k), (int, float)):
                return float(entry[k])
        return None
    if isinstance(entry, (int, float)):
        return float(entry)
    return None


def props_figures(report: dict, arrays: dict) -> dict:
    """``{file name: matplotlib figure}`` for the study."""
    from .report import new_figure

    figs = {}
    names = ["real"] + list(report["operators"])
    for key, fname, xlabel, line in (
            ("cos_to_centroid", "closure_cone.png", "cosine to the real centroid direction",
             report["real_set"]["cone_min"]),
            ("nearest", "closure_nearest.png", "cosine to the nearest real embedding (pool)", None)):
        fig, ax = new_figure()
        for nm in names:
            ax.hist(arrays[nm][key], bins=60, range=(-1, 1), histtype="step", density=True,
                    label="real embeddings" if nm == "real" else nm)
        if line is not None:
            ax.axvline(line, color="k", linestyle="--", label="real set's minimum")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
        figs[fname] = fig
    fig, ax = new_figure()
    ops = list(report["operators"])
    keys = ("commutativity", "associativity", "inverse")
    width = 0.8 / len(keys)
    for k, key in enumerate(keys):
        vals = [property_error(report["operators"][o]["algebra"], key) for o in ops]
        xs = [i + k * width for i, v in enumerate(vals) if v is not None]
        ys = [max(v, 1e-17) for v in vals if v is not None]
        ax.bar(xs, ys, width=width, label=key)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(ops)) + width, ops, rotation=20)
    ax.set_ylabel("max error (cosine distance)")
    ax.legend()
    figs["algebra_errors.png"] = fig
    return figs

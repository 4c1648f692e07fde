"""The alignment study: fit a map between two embedding sets of the same texts, test it held out.

Row ``i`` of ``src`` (n, d1) and of ``dst`` (n, d2) embed the same text with
two models (or two versions of one). A seeded split keeps ``held_out`` rows
aside; :func:`embalg.procrustes` and :func:`embalg.linear_map` are fitted on
the rest and scored on the held-out rows:

* mean cosine between the mapped source row and its true destination row;
* top-1 retrieval accuracy: the mapped row's nearest held-out destination row
  (cosine, computed in row blocks) is its own text's.

With ``d1 == d2`` the identity map is scored as the baseline (the same model
twice, or a rotated copy, shows what alignment adds).
"""
from __future__ import annotations

import warnings

import numpy as np

#: rows of the held-out similarity matrix computed at once
BLOCK_ROWS = 4096


def _unit(x):
    x = np.asarray(x, dtype=np.float32 if x.dtype != np.float64 else np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


def retrieval_scores(pred, dst, *, block_rows: int = BLOCK_ROWS) -> dict:
    """Mean cosine of ``pred_i`` to ``dst_i`` and the top-1 accuracy of finding row ``i`` of
    ``dst`` as the nearest (cosine) to ``pred_i`` among all rows of ``dst``.

    Examples
    --------
    >>> x = np.eye(3)
    >>> retrieval_scores(x, x)
    {'mean_cosine': 1.0, 'top1': 1.0, 'n': 3}
    """
    p, t = _unit(pred), _unit(dst)
    cos = np.einsum("ij,ij->i", p, t, dtype=np.float64)
    hits = 0
    for start in range(0, len(p), block_rows):
        sims = p[start:start + block_rows] @ t.T
        hits += int((sims.argmax(axis=1) == np.arange(start, start + len(sims))).sum())
    return {"mean_cosine": float(cos.mean()), "top1": hits / len(p), "n": int(len(p))}


def split_rows(n: int, train_frac: float, seed: int):
    """Seeded (train, held-out) row indices; both non-empty."""
    if n < 2:
        raise ValueError(f"alignment needs at least 2 rows (1 to fit, 1 to hold out), got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    n_tr = min(n - 1, max(1, int(round(train_frac * n))))
    return np.sort(perm[:n_tr]), np.sort(perm[n_tr:])


def align_study(src, dst, *, train_frac=0.8, seed=0, ridge=1e-2, scale=False):
    """Fit and score Procrustes and ridge maps from ``src`` to ``dst`` (see module docstring).

    Returns
    -------
    report : dict
        Shapes, split sizes, per-method held-out scores, fit warnings.
    maps : dict
        ``{"procrustes": AlignmentMap, "linear": AlignmentMap}``.
    """
    import embalg as ea
    from ..validation import as_vectors, check_positive_float

    s, _ = as_vectors(src, "SRC", allow_1d=False)
    t, _ = as_vectors(dst, "DST", allow_1d=False)
    if s.shape[0] != t.shape[0]:
        raise ValueError(f"SRC has {s.shape[0]} rows but DST has {t.shape[0]}; both files must "
                         "embed the same texts in the same order")
    frac = check_positive_float(train_frac, "train_frac")
    if not frac < 1:
        raise ValueError(f"train_frac must be in (0, 1), got {train_frac}")
    tr, te = split_rows(s.shape[0], frac, seed)
    s_tr, t_tr = np.asarray(s[tr]), np.asarray(t[tr])
    s_te, t_te = np.asarray(s[te]), np.asarray(t[te])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        maps = {"procrustes": ea.procrustes(s_tr, t_tr, scale=scale),
                "linear": ea.linear_map(s_tr, t_tr, ridge=ridge)}
    methods = {name: retrieval_scores(m.apply(s_te), t_te) for name, m in maps.items()}
    if s.shape[1] == t.shape[1]:
        methods = {"identity (no map)": retrieval_scores(s_te, t_te), **methods}
    report = {"study": "align", "n": int(s.shape[0]), "d_src": int(s.shape[1]),
              "d_dst": int(t.shape[1]), "n_train": int(len(tr)), "n_heldout": int(len(te)),
              "train_frac": frac, "seed": seed, "ridge": float(ridge), "scale": bool(scale),
              "procrustes_scale": maps["procrustes"].scale,
              "ranks": {k: m.rank for k, m in maps.items()}, "methods": methods,
              "warnings": sorted({str(w.message) for w in caught})}
    return report, maps


def report_markdown(report: dict) -> str:
    lines = ["# Alignment study", "",
             f"SRC {report.get('src', '?')} (d = {report['d_src']}) -> DST {report.get('dst', '?')} "
             f"(d = {report['d_dst']}); {report['n']} rows, {report['n_train']} fitted, "
             f"{report['n_heldout']} held out (seed {report['seed']}).", "",
             "| method | held-out mean cosine | top-1 retrieval |", "|---|---|---|"]
    for name, s in report["methods"].items():
        lines.append(f"| {name} | {s['mean_cosine']:.4f} | {s['top1']:.4f} |")
    lines += ["", f"Ridge {report['ridge']}; Procrustes scale {report['procrustes_scale']:.6g}; "
                  f"numerical ranks {report['ranks']}."]
    if report["warnings"]:
        lines += ["", "Warnings: " + " / ".join(report["warnings"])]
    return "\n".join(lines) + "\n"


def methods_figure(report: dict):
    from .report import new_figure

    fig, ax = new_figure()
    names = list(report["methods"])
    x = np.arange(len(names))
    ax.bar(x - 0.2, [report["methods"][n]["mean_cosine"] for n in names], 0.4, label="mean cosine")
    ax.bar(x + 0.2, [report["methods"][n]["top1"] for n in names], 0.4, label="top-1 retrieval")
    ax.set_xticks(x)
    ax.set_xticklabels(names)
    ax.set_ylim(0, 1)
    ax.set_title(f"Held-out alignment, d {report['d_src']} -> {report['d_dst']}")
    ax.legend()
    return fig

"""The rotation study: does the same alteration of a text give the same rotation?

One reply in the thread proposes solving for the rotation that maps an
embedding ``v0`` to the embedding ``v1`` of an edited text, and doubts that
one kind of edit always gives the same rotation. For many (before, after) pairs
of one edit kind this study measures:

* the rotation angle of each pair (``ea.rotation(v0, v1).angle``);
* how aligned the rotation planes are: principal angles between the 2-D
  planes of two pairs of the same kind, against mismatched planes
  (``before_i`` with ``after_j``, ``j != i``) as the no-structure reference;
* prediction on held-out pairs (seeded train/held-out split): each method maps
  a held-out 'before' embedding to a prediction, scored by cosine to the true
  'after' embedding and by the rank of the true 'after' among all held-out
  'after' embeddings of that kind (rank 1 = found). Methods:

  - ``no change`` (the 'before' embedding itself), baseline;
  - ``mean difference``: ``before + mean(after - before)`` over the training
    pairs, renormalized, baseline;
  - ``one pair's rotation (median)``: the rotation of one training pair,
    applied to every held-out 'before'; the median over training pairs;
  - ``one pair's rotation (best on train)``: the training pair whose rotation
    best predicts the other training pairs;
  - ``mean-pair rotation``: the rotation from mean(before) to mean(after);
  - ``procrustes``: the orthogonal map fitted on the training pairs, with an
    identity prior (rows ``sqrt(lambda) I`` appended to both sides) so that
    directions the training data does not reach stay fixed;
  - ``linear (ridge toward identity)``: ``x + x W`` with ``W`` a ridge fit of
    ``after - before`` on ``before``; the ridge is chosen on a split of the
    training pairs.

Edit kinds are generated from templates (:data:`EDIT_KINDS`) or read from a
pairs file (:func:`read_pairs`). Embeddings come from an ``embed`` callable
(texts -> (n, d) array), so tests can inject a cheap deterministic embedder.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

_SUBJECTS = ("the cat", "the teacher", "my brother", "the old man", "the engine", "the garden",
             "the city", "our neighbour", "the doctor", "the river", "the child", "the market",
             "the painter", "the village", "the computer", "the storm", "the student", "the king",
             "the museum", "the soldier")
_ADJECTIVES = ("happy", "quiet", "ready", "tired", "famous", "broken", "busy", "cold", "safe",
               "honest", "strange", "gentle", "dangerous", "useful", "expensive", "alive",
               "lonely", "hungry", "clean", "open")
_NOUNS = ("car", "ball", "house", "shirt", "door", "book", "chair", "flower", "bicycle", "lamp",
          "boat", "umbrella", "cup", "scarf", "kite", "bottle", "fence", "train", "hat", "box")
_PREDICATES = ("is in the garage", "is on the table", "was sold yesterday", "belongs to my aunt",
               "is very old", "stands near the window", "was a gift", "is for sale",
               "broke last week", "is too small", "looks new", "is behind the house")
_NAMES = ("Anna", "Peter", "Maria", "John", "Lena", "Tom", "Sara", "David", "Emma", "Omar",
          "Yuki", "Carlos", "Nora", "Ivan", "Grace", "Samuel")
_VERBS = (("walks", "walked"), ("cooks", "cooked"), ("paints", "painted"), ("plays", "played"),
          ("works", "worked"), ("travels", "travelled"), ("waits", "waited"),
          ("dances", "danced"), ("studies", "studied"), ("listens", "listened"))
_PLACES = ("to the station", "in the kitchen", "at the museum", "near the lake", "in the park",
           "at school", "in the office", "by the river", "at home", "in the city")
_APPENDED = "It was raining that evening."


def _append(rng):
    s, a = rng.choice(_SUBJECTS), rng.choice(_ADJECTIVES)
    base = f"{s.capitalize()} is {a}."
    return base, f"{base} {_APPENDED}"


def _negate(rng):
    s, a = rng.choice(_SUBJECTS), rng.choice(_ADJECTIVES)
    return f"{s.capitalize()} is {a}.", f"{s.capitalize()} is not {a}."


def _colour(rng):
    n, p = rng.choice(_NOUNS), rng.choice(_PREDICATES)
    return f"The red {n} {p}.", f"The blue {n} {p}."


def _plural(rng):
    n, a = rng.choice(_NOUNS), rng.choice(_ADJECTIVES)
    plural = n + ("es" if n.endswith(("s", "x", "sh", "ch")) else "s")
    return f"The {n} is {a}.", f"The {plural} are {a}."


def _tense(rng):
    name, (present, past), place = rng.choice(_NAMES), _VERBS[rng.integers(len(_VERBS))], rng.choice(_PLACES)
    return f"{name} {present} {place}.", f"{name} {past} {place}."


#: edit kind -> (description, generator of one (before, after) pair from a NumPy Generator)
EDIT_KINDS = {
    "append": (f"append the sentence '{_APPENDED}'", _append),
    "negate": ("'X is A.' -> 'X is not A.'", _negate),
    "colour": ("swap the colour word: 'The red N ...' -> 'The blue N ...'", _colour),
    "plural": ("'The N is A.' -> 'The Ns are A.'", _plural),
    "tense": ("present -> past: 'Anna walks ...' -> 'Anna walked ...'", _tense),
}

METHODS = ("no change", "mean difference", "one pair's rotation (median)",
           "one pair's rotation (best on train)", "mean-pair rotation", "procrustes",
           "linear (ridge toward identity)")
BASELINES = ("no change", "mean difference")


def template_pairs(kind: str, n: int, *, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` distinct (before, after) pairs of one edit kind, reproducible from ``seed``.

    Examples
    --------
    >>> before, after = template_pairs("negate", 1, seed=1)[0]
    >>> after == before.replace(" is ", " is not ")
    True
    >>> len(set(template_pairs("colour", 50)))
    50
    """
    if kind not in EDIT_KINDS:
        raise ValueError(f"unknown edit kind {kind!r}; known kinds: {', '.join(EDIT_KINDS)}")
    gen = EDIT_KINDS[kind][1]
    rng = np.random.default_rng([seed, list(EDIT_KINDS).index(kind)])
    seen: dict[tuple[str, str], None] = {}
    for _ in range(50 * n + 100):
        if len(seen) == n:
            break
        seen.setdefault(gen(rng), None)
    if len(seen) < n:
        raise ValueError(f"edit kind {kind!r} yields only {len(seen)} distinct pairs from its "
                         f"templates; ask for at most that many (got n = {n})")
    return list(seen)


def read_pairs(path) -> dict[str, list[tuple[str, str]]]:
    """(before, after) pairs grouped by kind from a ``.jsonl`` or ``.tsv`` file.

    JSONL: one object per line with string fields ``before`` and ``after`` and
    an optional ``kind``. TSV: ``before<TAB>after[<TAB>kind]`` per line. Pairs
    without a kind are grouped under ``"pairs"``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such pairs file: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text ({exc.reason})") from None
    groups: dict[str, list[tuple[str, str]]] = {}
    jsonl = path.suffix.lower() in (".jsonl", ".json")
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if jsonl:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno} is not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{lineno} must be an object with 'before' and 'after'")
            before, after, kind = obj.get("before"), obj.get("after"), obj.get("kind", "pairs")
        else:
            cells = line.split("\t")
            if len(cells) not in (2, 3):
                raise ValueError(f"{path}:{lineno} needs 2 or 3 tab-separated fields "
                                 f"(before, after[, kind]), got {len(cells)}")
            before, after, kind = cells[0], cells[1], cells[2] if len(cells) == 3 else "pairs"
        for name, v in (("before", before), ("after", after), ("kind", kind)):
            if not isinstance(v, str) or not v.strip():
                raise ValueError(f"{path}:{lineno}: '{name}' must be a non-empty string")
        if before == after:
            raise ValueError(f"{path}:{lineno}: before and after are the same text")
        groups.setdefault(kind, []).append((before, after))
    if not groups:
        raise ValueError(f"{path} holds no pairs")
    return groups


# -- measurements ------------------------------------------------------------

def _unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def plane_angles(u1, w1, u2, w2) -> np.ndarray:
    """Principal angles (radians) between planes ``span{u1_i, w1_i}`` and ``span{u2_i, w2_i}``.

    Inputs are orthonormal pairs, shape (m, d) each. Returns (m, 2): the smaller
    and the larger principal angle, from the singular values of the 2 x 2 matrix
    ``[u1 w1]^T [u2 w2]``.

    Examples
    --------
    >>> e = np.eye(4)
    >>> np.degrees(plane_angles(e[[0]], e[[1]], e[[0]], e[[2]])).round(6).tolist()
    [[0.0, 90.0]]
    """
    m = np.empty((len(u1), 2, 2))
    m[:, 0, 0] = np.einsum("ij,ij->i", u1, u2)
    m[:, 0, 1] = np.einsum("ij,ij->i", u1, w2)
    m[:, 1, 0] = np.einsum("ij,ij->i", w1, u2)
    m[:, 1, 1] = np.einsum("ij,ij->i", w1, w2)
    sv = np.linalg.svd(m, compute_uv=False)
    return np.arccos(np.clip(sv, -1.0, 1.0))


def _pair_planes(a, b, max_pairs: int, rng):
    """Principal angles for up to ``max_pairs`` pairs (i < j) of the planes of rows ``a -> b``."""
    import embalg as ea

    u, w = ea.rotation(a, b).plane
    keep = np.flatnonzero(np.linalg.norm(w, axis=1) > 0)      # the identity has no plane
    ii, jj = np.triu_indices(len(keep), k=1)
    if len(ii) > max_pairs:
        pick = rng.choice(len(ii), size=max_pairs, replace=False)
        ii, jj = ii[pick], jj[pick]
    i, j = keep[ii], keep[jj]
    return plane_angles(u[i], w[i], u[j], w[j])


def score(pred, after) -> dict:
    """Mean cosine of ``pred_i`` to ``after_i``, and the rank of ``after_i`` among all rows of
    ``after`` by cosine to ``pred_i`` (1 = best): top-1 accuracy, mean rank, MRR."""
    p, t = _unit(pred), _unit(after)
    cos = np.einsum("ij,ij->i", p, t)
    sims = p @ t.T
    rank = 1 + (sims > cos[:, None]).sum(axis=1)
    return {"mean_cosine": float(cos.mean()), "top1": float((rank == 1).mean()),
            "mean_rank": float(rank.mean()), "mrr": float((1.0 / rank).mean())}


def _median_scores(scores: list[dict]) -> dict:
    return {k: float(np.median([s[k] for s in scores])) for k in scores[0]}


def _procrustes_identity_prior(a, b, lam):
    import embalg as ea

    d = a.shape[1]
    eye = np.sqrt(lam) * np.eye(d)
    return ea.procrustes(np.vstack([a, eye]), np.vstack([b, eye]))


def _ridge_toward_identity(a_tr, b_tr, ridges, rng):
    """``W`` with ``x + x W ~ after``; ridge picked on a 75/25 split of the training pairs."""
    import embalg as ea

    n = len(a_tr)
    perm = rng.permutation(n)
    fit, val = perm[: max(1, (3 * n) // 4)], perm[max(1, (3 * n) // 4):]
    best = ridges[0]
    if len(val):
        scores = []
        for lam in ridges:
            W = ea.linear_map(a_tr[fit], b_tr[fit] - a_tr[fit], ridge=lam).matrix
            scores.append(score(a_tr[val] + a_tr[val] @ W, b_tr[val])["mean_cosine"])
        best = ridges[int(np.argmax(scores))]
    return ea.linear_map(a_tr, b_tr - a_tr, ridge=best), best


def predict_methods(a_tr, b_tr, a_te, b_te, *, rng, identity_prior=1e-3,
                    ridges=(0.01, 0.1, 1.0, 10.0)) -> dict:
    """Scores of every method of :data:`METHODS` on the held-out pairs (see module docstring)."""
    import embalg as ea

    res = {"no change": score(a_te, b_te)}
    res["mean difference"] = score(a_te + (b_tr - a_tr).mean(axis=0), b_te)
    per_pair, train_fit = [], []
    for j in range(len(a_tr)):
        r = ea.rotation(a_tr[j], b_tr[j], backend="numpy")
        per_pair.append(score(r.apply(a_te), b_te))
        others = np.arange(len(a_tr)) != j
        train_fit.append(score(r.apply(a_tr[others]), b_tr[others])["mean_cosine"]
                         if others.any() else 0.0)
    res["one pair's rotation (median)"] = _median_scores(per_pair)
    res["one pair's rotation (best on train)"] = per_pair[int(np.argmax(train_fit))]
    mr = ea.rotation(a_tr.mean(axis=0), b_tr.mean(axis=0), backend="numpy")
    res["mean-pair rotation"] = score(mr.apply(a_te), b_te)
    lam = identity_prior * len(a_tr)
    res["procrustes"] = score(_procrustes_identity_prior(a_tr, b_tr, lam).apply(a_te), b_te)
    lin, best_ridge = _ridge_toward_identity(a_tr, b_tr, ridges, rng)
    res["linear (ridge toward identity)"] = score(a_te + lin.apply(a_te), b_te)
    res["linear (ridge toward identity)"]["ridge"] = best_ridge
    return res


def _summary(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"n": 0}
    q = np.percentile(v, [5, 25, 50, 75, 95])
    return {"n": int(v.size), "mean": float(v.mean()), "std": float(v.std()),
            "p5": float(q[0]), "p25": float(q[1]), "median": float(q[2]), "p75": float(q[3]),
            "p95": float(q[4]), "min": float(v.min()), "max": float(v.max())}


def study_kind(a, b, *, train_frac=0.7, seed=0, max_plane_pairs=20_000) -> dict:
    """All measurements for one edit kind; ``a``, ``b`` (n, d) 'before'/'after' embeddings."""
    import embalg as ea

    a, b = _unit(a), _unit(b)
    n = len(a)
    if n < 4:
        raise ValueError(f"an edit kind needs at least 4 pairs (2 to train, 2 held out), got {n}")
    rng = np.random.default_rng(seed)
    angles = np.degrees(ea.rotation(a, b).angle)
    same = np.degrees(_pair_planes(a, b, max_plane_pairs, rng))
    shift = 1 + rng.integers(n - 1)                       # a derangement: after_{i + shift}
    mismatched = np.degrees(_pair_planes(a, np.roll(b, -shift, axis=0), max_plane_pairs, rng))
    diff = _unit(b - a)
    dcos = (diff @ diff.T)[np.triu_indices(n, k=1)]
    perm = rng.permutation(n)
    n_tr = min(n - 2, max(2, int(round(train_frac * n))))
    tr, te = perm[:n_tr], perm[n_tr:]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        methods = predict_methods(a[tr], b[tr], a[te], b[te], rng=rng)
    notes = sorted({str(w.message) for w in caught})
    return {
        "n_pairs": n, "n_train": int(n_tr), "n_heldout": int(len(te)), "d": int(a.shape[1]),
        "before_after_cosine": _summary(np.einsum("ij,ij->i", a, b)),
        "rotation_angle_deg": _summary(angles),
        "plane_angle_deg": {
            "same_kind_smaller": _summary(same[:, 0]), "same_kind_larger": _summary(same[:, 1]),
            "mismatched_smaller": _summary(mismatched[:, 0]),
            "mismatched_larger": _summary(mismatched[:, 1]),
        },
        "difference_direction_cosine": _summary(dcos),
        "methods": methods,
        "warnings": notes,
        "_raw": {"angles": angles, "same_larger": same[:, 1], "mismatched_larger": mismatched[:, 1]},
    }


def rotation_study(pairs, embed, *, train_frac=0.7, seed=0, progress=None) -> dict:
    """Run the study on ``pairs`` (kind -> list of (before, after)) with ``embed`` (texts -> (n, d)).

    All texts are embedded in one call. Returns the report dict; per-kind raw
    arrays for the plots sit under each kind's ``"_raw"`` key (drop it before
    writing JSON; :func:`write_report` does).
    """
    from ..progress import progress_bar
    from ..validation import check_positive_float

    frac = check_positive_float(train_frac, "train_frac")
    if not frac < 1:
        raise ValueError(f"train_frac must be in (0, 1), got {train_frac}")
    if not pairs:
        raise ValueError("no pairs to study")
    texts = list(dict.fromkeys(t for ps in pairs.values() for p in ps for t in p))
    vecs = np.asarray(embed(texts), dtype=np.float64)
    if vecs.ndim != 2 or vecs.shape[0] != len(texts):
        raise ValueError(f"embed returned shape {vecs.shape} for {len(texts)} texts")
    index = {t: i for i, t in enumerate(texts)}
    kinds = {}
    bar = progress_bar(len(pairs), desc="rotation study", unit="kind", progress=progress)
    try:
        for k, (kind, ps) in enumerate(pairs.items()):
            a = vecs[[index[p[0]] for p in ps]]
            b = vecs[[index[p[1]] for p in ps]]
            kinds[kind] = study_kind(a, b, train_frac=frac, seed=seed + k)
            kinds[kind]["examples"] = [list(p) for p in ps[:3]]
            kinds[kind]["description"] = EDIT_KINDS[kind][0] if kind in EDIT_KINDS else "from a pairs file"
            bar.update(1)
    finally:
        bar.close()
    return {"study": "rotations", "d": int(vecs.shape[1]), "n_texts": len(texts),
            "train_frac": frac, "seed": seed, "kinds": kinds,
            "verdict": verdict(kinds)}


def verdict(kinds: dict) -> dict:
    """Per kind: the best method by held-out mean cosine, and whether a rotation beat the baselines."""
    out = {}
    for kind, r in kinds.items():
        m = r["methods"]
        best = max(m, key=lambda name: m[name]["mean_cosine"])
        base = max(m[b]["mean_cosine"] for b in BASELINES)
        rot = max(m[name]["mean_cosine"] for name in m if "rotation" in name)
        pa = r["plane_angle_deg"]
        out[kind] = {"best_method": best, "best_mean_cosine": m[best]["mean_cosine"],
                     "best_baseline_mean_cosine": base, "best_single_rotation_mean_cosine": rot,
                     "single_rotation_beats_baselines": bool(rot > base),
                     "median_plane_angle_same_kind_deg": pa["same_kind_larger"].get("median"),
                     "median_plane_angle_mismatched_deg": pa["mismatched_larger"].get("median")}
    return out


# -- report ------------------------------------------------------------------

def report_markdown(report: dict) -> str:
    lines = ["# Rotation study: does the same alteration give the same rotation?", "",
             f"Model: {report.get('model', '?')}, d = {report['d']}, {report['n_texts']} distinct "
             f"texts, train fraction {report['train_frac']}, seed {report['seed']}.", "",
             "Plane angle = the larger principal angle between two pairs' rotation planes "
             "(0 = same plane, 90 = unrelated); 'mismatched' pairs each 'before' with another "
             "pair's 'after' (the no-structure reference). Scores are on held-out pairs: mean "
             "cosine of the prediction to the true 'after' embedding, and the rank of the true "
             "'after' among all held-out 'after' embeddings of the kind.", ""]
    for kind, r in report["kinds"].items():
        pa = r["plane_angle_deg"]
        lines += [f"## {kind}: {r['description']}", "",
                  f"{r['n_pairs']} pairs ({r['n_train']} train, {r['n_heldout']} held out), e.g. "
                  + "; ".join(f"'{b}' -> '{a}'" for b, a in r["examples"][:2]), "",
                  f"- rotation angle: median {r['rotation_angle_deg']['median']:.2f} deg "
                  f"(p5 {r['rotation_angle_deg']['p5']:.2f}, p95 {r['rotation_angle_deg']['p95']:.2f})",
                  f"- plane angle, same kind: median {pa['same_kind_larger']['median']:.1f} deg "
                  f"(smaller principal angle {pa['same_kind_smaller']['median']:.1f}); mismatched: "
                  f"median {pa['mismatched_larger']['median']:.1f} deg",
                  f"- cosine between difference directions (after - before): mean "
                  f"{r['difference_direction_cosine']['mean']:.3f}", "",
                  "| method | mean cosine | top-1 | mean rank | MRR |", "|---|---|---|---|---|"]
        for name, s in r["methods"].items():
            lines.append(f"| {name} | {s['mean_cosine']:.4f} | {s['top1']:.3f} | "
                         f"{s['mean_rank']:.2f} | {s['mrr']:.3f} |")
        if r["warnings"]:
            lines += ["", "Warnings during the fits: " + " / ".join(r["warnings"])]
        lines.append("")
    lines += ["## Verdict", ""]
    for kind, v in report["verdict"].items():
        lines.append(f"- {kind}: best {v['best_method']} ({v['best_mean_cosine']:.4f}); a single "
                     f"plane rotation {'beats' if v['single_rotation_beats_baselines'] else 'does not beat'} "
                     f"the baselines ({v['best_single_rotation_mean_cosine']:.4f} vs "
                     f"{v['best_baseline_mean_cosine']:.4f})")
    return "\n".join(lines) + "\n"


def figures(report: dict) -> dict:
    """name -> matplotlib Figure: rotation angles, plane angles, methods."""
    from .report import new_figure

    kinds = report["kinds"]
    figs = {}
    fig, ax = new_figure()
    for kind, r in kinds.items():
        ax.hist(r["_raw"]["angles"], bins=40, histtype="step", label=kind)
    ax.set_xlabel("rotation angle (degrees)")
    ax.set_ylabel("pairs")
    ax.set_title("Rotation angle of each (before, after) pair")
    ax.legend()
    figs["rotation_angles.png"] = fig
    fig, ax = new_figure()
    for kind, r in kinds.items():
        line = ax.hist(r["_raw"]["same_larger"], bins=60, range=(0, 90), histtype="step",
                       density=True, label=f"{kind}: same kind")
        ax.hist(r["_raw"]["mismatched_larger"], bins=60, range=(0, 90), histtype="step",
                density=True, linestyle=":", color=line[2][0].get_edgecolor(),
                label=f"{kind}: mismatched")
    ax.set_xlabel("larger principal angle between rotation planes (degrees)")
    ax.set_ylabel("density")
    ax.set_title("Do edits of one kind rotate in the same plane?")
    ax.legend(fontsize=7)
    figs["plane_angles.png"] = fig
    fig, ax = new_figure(figsize=(9, 4))
    names = list(METHODS)
    width = 0.8 / max(1, len(kinds))
    for k, (kind, r) in enumerate(kinds.items()):
        vals = [r["methods"][m]["mean_cosine"] for m in names]
        ax.bar(np.arange(len(names)) + k * width, vals, width, label=kind)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
    ax.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("held-out mean cosine to the true 'after'")
    lo = min(r["methods"][m]["mean_cosine"] for r in kinds.values() for m in names)
    ax.set_ylim(max(0.0, lo - 0.05), 1.0)
    ax.set_title("Predicting the edited embedding")
    ax.legend(fontsize=7)
    figs["methods.png"] = fig
    return figs


def write_report(report: dict, out) -> None:
    """Plots, report.md and report.json (last) into a :class:`~embalg.studies.report.StudyOutput`."""
    for name, fig in figures(report).items():
        out.figure(name, fig)
    clean = {**report, "kinds": {k: {kk: vv for kk, vv in r.items() if kk != "_raw"}
                                 for k, r in report["kinds"].items()}}
    out.markdown(report_markdown(clean))
    out.json(clean)

"""The composition study: can an operator on two embeddings stand in for embedding the combined text?

The thread's experiment: embed ``A = "The ball is blue."`` and ``B = "The ball is
big."``, combine the two vectors with an operator, and compare the result with
the embedding of a combined sentence (``"The ball is blue and big."``). Two modes:

* :func:`compose_table`: one (A, B) pair and any targets, the full similarity
  matrix of A, B, the targets, the concatenation ``"A B"`` and every operator
  result (the thread's table);
* :func:`compose_dataset`: many (A, B, combined) triples, ranking the operators
  by mean cosine to the real combined embedding, with bootstrap confidence
  intervals, against the baselines "A alone", "B alone" and "the closer of A and
  B" (plus the re-embedded concatenation "A B" as a reference that needs the
  model again).

Operators (names as in the API): ``nsum``, ``nsum(weights=(0.75, 0.25))``,
``nsum(weights=(0.25, 0.75))``, ``nsum(weights=(1, -1))`` (A - B, the vector-arithmetic
"and not"), ``geomean_signed``, ``geomean_agree``,
``hadamard``, ``hadamard_div`` (A / B, "A and not B").
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np


#: operator label (as in the API) -> (public function of embalg, keyword arguments)
OPERATORS = {
    "nsum": ("nsum", {}),
    "nsum(weights=(0.75, 0.25))": ("nsum", {"weights": (0.75, 0.25)}),
    "nsum(weights=(0.25, 0.75))": ("nsum", {"weights": (0.25, 0.75)}),
    "nsum(weights=(1, -1))": ("nsum", {"weights": (1.0, -1.0)}),
    "geomean_signed": ("geomean", {"variant": "signed"}),
    "geomean_agree": ("geomean", {"variant": "agree"}),
    "hadamard": ("hadamard", {}),
    "hadamard_div": ("hadamard_div", {}),
}


def apply_operators(a, b) -> dict:
    """Every operator of :data:`OPERATORS` applied to rows ``a`` and ``b`` ((n, d) or (d,)).

    Returns ``{label: float64 array}`` in the table's order.
    """
    import embalg as ea

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return {label: np.asarray(getattr(ea, fn)(a, b, **kw), dtype=np.float64)
            for label, (fn, kw) in OPERATORS.items()}


def _unit(m):
    m = np.asarray(m, dtype=np.float64)
    return m / np.linalg.norm(m, axis=-1, keepdims=True)


# ----------------------------------------------------------------------------- table mode


def compose_table(a_text: str, b_text: str, targets, embed) -> dict:
    """The thread's similarity table for one pair of texts.

    Parameters
    ----------
    a_text, b_text : str
    targets : list of str
        Texts to compare with (e.g. ``"The ball is blue and big."``); may be empty.
    embed : callable
        ``embed(list_of_texts) -> (k, d)`` unit rows.

    Returns
    -------
    dict
        ``labels`` (texts: A, B, targets, "A B"; then operator names),
        ``matrix`` (cosines, row-major, ``len(labels)`` squared) and
        ``operators``: ``{operator: {text: cosine}}`` for every text label.
    """
    import embalg as ea

    if a_text == b_text:
        raise ValueError("A and B are the same text; composing a text with itself is trivial "
                         "(and A - B would be the zero vector)")
    texts = [a_text, b_text, *[t for t in targets if t not in (a_text, b_text)]]
    concat = f"{a_text} {b_text}"
    if concat not in texts:
        texts.append(concat)
    vecs = np.asarray(embed(texts), dtype=np.float64)
    results = apply_operators(vecs[0], vecs[1])
    labels = texts + list(results)
    allv = np.vstack([vecs] + [results[k][None, :] for k in results])
    m = np.asarray(ea.cosine_matrix(allv), dtype=np.float64)
    ops = {name: {t: float(m[len(texts) + k, i]) for i, t in enumerate(texts)}
           for k, name in enumerate(results)}
    return {"a": a_text, "b": b_text, "targets": list(targets), "concatenation": concat,
            "labels": labels, "matrix": m.round(6).tolist(), "operators": ops}


def format_table(table: dict, *, digits: int = 3) -> str:
    """The table as the thread printed it: labels on the left, one column per label."""
    labels = table["labels"]
    m = np.asarray(table["matrix"])
    left = max(len(s) for s in labels)
    widths = [max(len(s), digits + 3) for s in labels]
    head = " " * left + " " + " ".join(s.rjust(w) for s, w in zip(labels, widths))
    rows = [head]
    for i, s in enumerate(labels):
        rows.append(s.ljust(left) + " " + " ".join(f"{m[i, j]:.{digits}f}".rjust(w)
                                                   for j, w in enumerate(widths)))
    return "\n".join(rows)


# ----------------------------------------------------------------------------- dataset mode

NOUNS = ("ball", "car", "house", "cat", "dog", "box", "chair", "table", "book", "lamp", "shirt",
         "door", "cup", "tree", "bird", "road", "boat", "hat", "river", "room", "phone", "bag",
         "wall", "bridge", "garden", "window", "coat", "horse", "train", "bottle")
ADJECTIVES = ("blue", "big", "red", "small", "old", "new", "heavy", "light", "soft", "hard",
              "green", "round", "long", "short", "warm", "cold", "dark", "bright", "clean",
              "dirty", "quiet", "loud", "wet", "dry", "cheap", "expensive", "empty", "full",
              "broken", "shiny")
TEMPLATES = {
    "and": "The {x} is {a}. + The {x} is {b}. -> The {x} is {a} and {b}.",
    "not": "The {x} is {a}. + The {x} is {b}. -> The {x} is {a} and not {b}.",
}


def template_triples(name: str, n: int, seed: int = 0) -> list[dict]:
    """``n`` distinct generated (a, b, combined) triples from template ``name``.

    ``"and"``: ``"The X is A."`` + ``"The X is B."`` -> ``"The X is A and B."``;
    ``"not"``: the same pair -> ``"The X is A and not B."`` (for ``hadamard_div``).

    Examples
    --------
    >>> template_triples("and", 1, seed=3)[0]["combined"].startswith("The ")
    True
    """
    if name not in TEMPLATES:
        raise ValueError(f"unknown template {name!r}; choose one of {sorted(TEMPLATES)}")
    limit = len(NOUNS) * len(ADJECTIVES) * (len(ADJECTIVES) - 1)
    if not 1 <= n <= limit:
        raise ValueError(f"--n must be between 1 and {limit} for a template, got {n}")
    rng = random.Random(seed)
    seen, out = set(), []
    while len(out) < n:
        x = rng.choice(NOUNS)
        a, b = rng.sample(ADJECTIVES, 2)
        if (x, a, b) in seen:
            continue
        seen.add((x, a, b))
        combined = (f"The {x} is {a} and {b}." if name == "and"
                    else f"The {x} is {a} and not {b}.")
        out.append({"a": f"The {x} is {a}.", "b": f"The {x} is {b}.", "combined": combined})
    return out


def read_pairs(path) -> list[dict]:
    """Triples from a JSONL file of objects with string fields ``a``, ``b`` and ``combined``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such pairs file: {path}")
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text ({exc.reason})") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno} is not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not all(isinstance(obj.get(k), str) and obj[k]
                                                for k in ("a", "b", "combined")):
            raise ValueError(f"{path}:{lineno} needs non-empty string fields 'a', 'b' and "
                             "'combined'")
        if obj["a"] == obj["b"]:
            raise ValueError(f"{path}:{lineno} has a == b; the two parts must differ")
        out.append({k: obj[k] for k in ("a", "b", "combined")})
    if not out:
        raise ValueError(f"{path} holds no triples")
    return out


def bootstrap_ci(values, *, level: float = 0.95, resamples: int = 2000, seed: int = 0):
    """Percentile bootstrap confidence interval of the mean of ``values`` (resampling rows).

    Examples
    --------
    >>> lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0], resamples=500)
    >>> bool(1.0 <= lo <= 2.5 <= hi <= 4.0)
    True
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for s in range(0, resamples, 256):
        k = min(256, resamples - s)
        means[s:s + k] = v[rng.integers(0, v.size, (k, v.size))].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


def compose_dataset(triples, embed, *, resamples: int = 2000, seed: int = 0,
                    level: float = 0.95) -> dict:
    """Rank the operators by cosine to the real combined embedding over many triples.

    Parameters
    ----------
    triples : list of dict
        ``{"a", "b", "combined"}`` texts.
    embed : callable
        ``embed(list_of_texts) -> (k, d)`` unit rows (each distinct text is embedded once).

    Returns
    -------
    dict
        ``ranking``: one entry per method (operators, baselines, the re-embedded
        concatenation), sorted by mean cosine, each ``{"name", "kind", "mean",
        "ci", "std", "vs_closer": {"mean_diff", "ci", "win_rate"}}``, plus
        ``n_triples`` and ``examples``.
    """
    if len(triples) < 2:
        raise ValueError(f"compose needs at least 2 triples to rank operators, got {len(triples)}")
    concat = [f"{t['a']} {t['b']}" for t in triples]
    texts = sorted({s for t in triples for s in (t["a"], t["b"], t["combined"])} | set(concat))
    index = {t: i for i, t in enumerate(texts)}
    vecs = _unit(embed(texts))

    def rows(key):
        return vecs[[index[t[key]] for t in triples]]

    a, b, c = rows("a"), rows("b"), rows("combined")
    cos = {}
    for name, r in apply_operators(a, b).items():
        cos[name] = np.einsum("ij,ij->i", _unit(r), c)
    ca, cb = np.einsum("ij,ij->i", a, c), np.einsum("ij,ij->i", b, c)
    baselines = {"A alone": ca, "B alone": cb, "closer of A and B": np.maximum(ca, cb)}
    reference = {"concatenation 'A B' (re-embedded)":
                 np.einsum("ij,ij->i", vecs[[index[s] for s in concat]], c)}
    closer = baselines["closer of A and B"]
    ranking = []
    for kind, group in (("operator", cos), ("baseline", baselines), ("reference", reference)):
        for name, v in group.items():
            diff = v - closer
            ranking.append({
                "name": name, "kind": kind, "mean": float(v.mean()), "std": float(v.std(ddof=1)),
                "ci": list(bootstrap_ci(v, level=level, resamples=resamples, seed=seed)),
                "vs_closer": {"mean_diff": float(diff.mean()),
                              "ci": list(bootstrap_ci(diff, level=level, resamples=resamples,
                                                      seed=seed)),
                              "win_rate": float((diff > 0).mean())},
            })
    ranking.sort(key=lambda r: -r["mean"])
    for k, r in enumerate(ranking, 1):
        r["rank"] = k
    examples = [dict(t, **{name: float(v[i]) for name, v in cos.items()})
                for i, t in enumerate(triples[:5])]
    return {"n_triples": len(triples), "confidence_level": level, "bootstrap_resamples": resamples,
            "ranking": ranking, "operators": {r["name"]: r["mean"] for r in ranking
                                              if r["kind"] == "operator"},
            "examples": examples}


def dataset_markdown(report: dict) -> str:
    pct = int(report["confidence_level"] * 100)
    lines = [f"# Composition study: {report['n_triples']} triples ({report.get('source', '')})", "",
             f"Model: `{report.get('model')}`", "",
             f"| rank | method | kind | mean cosine to combined | {pct}% CI | vs closer of A, B "
             f"| win rate |", "|---:|---|---|---:|---|---:|---:|"]
    for r in report["ranking"]:
        v = r["vs_closer"]
        lines.append(f"| {r['rank']} | {r['name']} | {r['kind']} | {r['mean']:.4f} | "
                     f"[{r['ci'][0]:.4f}, {r['ci'][1]:.4f}] | {v['mean_diff']:+.4f} | "
                     f"{v['win_rate']:.2f} |")
    lines += ["", "Confidence intervals: percentile bootstrap over triples. 'vs closer' is the "
              "mean paired difference to the better of A alone and B alone; win rate is the "
              "share of triples where the method beats it.", "",
              "![ranking](ranking.png)", ""]
    if "timing_s" in report:
        lines += ["Timing (s): " + ", ".join(f"{k} {v:.2f}" for k, v in report["timing_s"].items()),
                  ""]
    return "\n".join(lines)


def ranking_figure(report: dict):
    """Horizontal bar chart of mean cosine with CI error bars."""
    from .report import new_figure

    rk = report["ranking"]
    fig, ax = new_figure(figsize=(7, 0.4 * len(rk) + 1.2))
    colors = {"operator": "tab:blue", "baseline": "tab:gray", "reference": "tab:green"}
    y = np.arange(len(rk))[::-1]
    means = np.array([r["mean"] for r in rk])
    err = np.array([[r["mean"] - r["ci"][0], r["ci"][1] - r["mean"]] for r in rk]).T
    ax.barh(y, means, xerr=err, color=[colors[r["kind"]] for r in rk], capsize=3)
    ax.set_yticks(y, [r["name"] for r in rk])
    lo = max(-1.0, float((means - err[0]).min()) - 0.05)
    ax.set_xlim(lo, 1.0)
    ax.set_xlabel(f"mean cosine to the real combined embedding "
                  f"({int(report['confidence_level'] * 100)}% bootstrap CI)")
    ax.set_title(f"Composition: {report['n_triples']} triples")
    return fig

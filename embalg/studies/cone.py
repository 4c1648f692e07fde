"""The cone study: how much of the sphere a model's embeddings occupy.

The thread claims that ada-002 embeddings "all lie within a ~54 degree wide
hyper-cone" and that cosines "only go down to 0.7". :func:`cone_study` measures
that for any set of embeddings, three times: on the raw unit vectors, after
mean-centering, and after all-but-the-top (Mu & Viswanath 2018: mean and top
``D`` principal components removed). Each time it reports

* the centroid (norm; the raw centroid vector itself goes to ``centroid.npy``),
* every member's cosine to the centroid direction (min, quantiles, histogram),
  the cone ``half_angle_deg`` (largest angle to the centroid direction) and
  ``cone_width_deg`` = 2 x half-angle,
* all-pairs cosine statistics through :func:`embalg.pairwise_stats`
  (``mean_pairwise_cosine``, ``min_pairwise_cosine``, histogram, closest and
  farthest pairs) and ``max_pairwise_angle_deg`` = arccos(min pairwise cosine),
  the widest angle two members actually span,
* Ethayarajh's anisotropy (sampled random pairs; equal in expectation to the
  exact all-pairs mean, which is also reported in closed form),
* IsoScore, the PCA spectrum and the rogue dimensions.

All statistics stream over row blocks (the input can be a memory-mapped
``.npy`` of millions of rows); memory is ``O(block x d + d^2)`` plus the
all-pairs engine's tiles. The all-pairs figures of the two post-processed sets
are computed on a seeded sample of ``variant_sample`` rows (exact when the set
is no larger); their other figures use every row.
"""
from __future__ import annotations

import logging
import math
import time

import numpy as np

from . import isotropy as iso

logger = logging.getLogger(__name__)

QUANTILES = (0.0, 0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
VARIANTS = ("raw", "centered", "all_but_the_top")


def default_abtt_components(d: int) -> int:
    """Mu & Viswanath's rule of thumb, ``D ~ d / 100`` (at least 1)."""
    return max(1, round(d / 100))


def _histogram_dict(counts, edges) -> dict:
    return {"counts": np.asarray(counts).astype(int).tolist(),
            "edges": np.asarray(edges, dtype=np.float64).tolist()}


def _pair(ij, stats_value, texts, rows) -> dict:
    i, j = (int(rows[k]) for k in ij)
    out = {"i": i, "j": j, "cosine": float(stats_value),
           "angle_deg": math.degrees(math.acos(float(np.clip(stats_value, -1.0, 1.0))))}
    if texts is not None:
        out["text_i"], out["text_j"] = texts[i], texts[j]
    return out


def pairwise_figures(x, *, texts=None, rows=None, bins=1000, progress=None):
    """All-pairs statistics of ``x`` through :func:`embalg.pairwise_stats`, as report fields.

    ``rows`` maps ``x``'s row numbers to the study's (when ``x`` is a sample).
    Returns ``(fields, stats)``.
    """
    import embalg as ea

    stats = ea.pairwise_stats(x, bins=bins, progress=progress)
    rows = np.arange(x.shape[0]) if rows is None else rows
    qs = stats.quantiles(list(QUANTILES[1:-1]))
    fields = {
        "n_rows": int(x.shape[0]),
        "n_pairs": int(stats.n_pairs),
        "mean_pairwise_cosine": float(stats.mean),
        "std_pairwise_cosine": float(stats.std),
        "min_pairwise_cosine": float(stats.min),
        "max_pairwise_cosine": float(stats.max),
        "max_pairwise_angle_deg": math.degrees(math.acos(float(np.clip(stats.min, -1.0, 1.0)))),
        "quantiles": {str(q): float(v) for q, v in zip(QUANTILES[1:-1], np.atleast_1d(qs))},
        "closest_pair": _pair(stats.argmax, stats.max, texts, rows),
        "farthest_pair": _pair(stats.argmin, stats.min, texts, rows),
        "histogram": _histogram_dict(stats.counts, stats.edges),
    }
    return fields, stats


def set_figures(x, *, transform=None, moments=None, bins=1000, anisotropy_pairs=100_000,
                seed=0, progress=None, working_memory=None):
    """Every non-pairwise figure of one version (raw or post-processed) of the set.

    Returns ``(fields, arrays)``; ``arrays`` holds ``cos_to_centroid`` (n,),
    ``eigenvalues`` (d,) and ``centroid`` (d,) for plots and files.
    """
    if moments is None:
        moments = iso.set_moments(x, transform=transform, working_memory=working_memory,
                                  progress=progress)
    eig = moments.eigenvalues()
    cos = iso.cosine_to_centroid(x, moments.mean, transform=transform,
                                 working_memory=working_memory, progress=progress)
    counts, edges = np.histogram(cos, bins=bins, range=(-1.0, 1.0))
    fields = {
        "centroid_norm": float(np.linalg.norm(moments.mean)),
        "cosine_to_centroid": {
            "min": float(cos.min()), "max": float(cos.max()), "mean": float(cos.mean()),
            "quantiles": {str(q): float(v) for q, v in zip(QUANTILES, np.quantile(cos, QUANTILES))},
            "histogram": _histogram_dict(counts, edges),
        },
        **iso.cone_angles(cos),
        "mean_pairwise_cosine_exact": iso.mean_pairwise_cosine(moments),
        "anisotropy": iso.anisotropy(x, n_pairs=anisotropy_pairs, seed=seed, transform=transform),
        "isoscore": iso.isoscore_from_variances(eig),
        "pca": iso.pca_spectrum(eig, top=50),
        "rogue_dimensions": iso.rogue_dimensions(moments),
    }
    return fields, {"cos_to_centroid": cos, "eigenvalues": eig, "centroid": moments.mean}


def _sample_rows(n: int, k: int, seed: int) -> np.ndarray:
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def _postprocessed_rows(x, rows, transform, working_memory=None) -> np.ndarray:
    """float32 post-processed unit rows ``x[rows]``, built block by block (bounded memory)."""
    out = np.empty((len(rows), x.shape[1]), dtype=np.float32)
    step = iso.block_rows(x.shape[1], working_memory)
    for s in range(0, len(rows), step):
        r = rows[s:s + step]
        out[s:s + len(r)] = transform(iso.unit_block(x[r], int(r[0])), int(r[0]))
    return out


def cone_study(x, texts=None, *, bins=1000, abtt_components=None, variant_sample=20_000,
               anisotropy_pairs=100_000, seed=0, progress=None, working_memory=None):
    """Measure the cone of a set of embeddings (raw, mean-centered, all-but-the-top).

    Parameters
    ----------
    x : array_like or numpy.memmap, shape (n, d), n >= 2
        Embeddings (rows are normalized on the fly; zero or non-finite rows raise).
    texts : list of str, optional
        Row labels, used for the closest and farthest pairs.
    bins : int
        Histogram bins over [-1, 1].
    abtt_components : int, optional
        ``D`` for all-but-the-top (default ``max(1, round(d / 100))``), capped at
        ``n - 2`` (the centered rows span at most ``n - 1`` directions).
    variant_sample : int
        Rows sampled for the post-processed sets' all-pairs figures.
    anisotropy_pairs : int
        Random pairs for Ethayarajh's anisotropy estimate.

    Returns
    -------
    report : dict
        ``{"n", "d", "variants": {"raw": {...}, "centered": {...},
        "all_but_the_top": {...}}, "timing_s": {...}}`` plus the raw figures
        lifted to the top level (``half_angle_deg``, ``cone_width_deg``,
        ``mean_pairwise_cosine``, ``min_pairwise_cosine``, ``anisotropy``,
        ``isoscore``, ...). Each variant holds ``cosine_to_centroid`` (min,
        quantiles, histogram), ``pairwise`` (all-pairs statistics, histogram,
        closest and farthest pairs with their texts), ``anisotropy``, ``pca``,
        ``rogue_dimensions``. The centroid vector itself is not inline: the
        command writes it to ``centroid.npy``.
    arrays : dict
        Per variant, the arrays behind the plots.

    Raises
    ------
    ValueError
        Fewer than two rows, NaN/inf or zero rows (naming the row).
    """
    x = iso.check_vector_set(x, "x", min_rows=2)
    n, d = x.shape
    if texts is not None and len(texts) != n:
        raise ValueError(f"texts has {len(texts)} entries for {n} vectors")
    D = default_abtt_components(d) if abtt_components is None else int(abtt_components)
    # centered rows span at most n - 1 directions: keep at least one of them
    D = max(0, min(D, n - 2))
    timing = {}
    variants, arrays = {}, {}

    t0 = time.perf_counter()
    moments = iso.set_moments(x, working_memory=working_memory, progress=progress)
    moments.eigh()              # once: eigenvalues here, eigenvectors for all-but-the-top
    raw, arrays["raw"] = set_figures(x, moments=moments, bins=bins, anisotropy_pairs=anisotropy_pairs,
                                     seed=seed, progress=progress, working_memory=working_memory)
    timing["raw_set_statistics"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    pw, stats = pairwise_figures(x, texts=texts, bins=bins, progress=progress)
    raw["pairwise"] = pw
    arrays["raw"]["pairwise_stats"] = stats
    timing["raw_all_pairs"] = time.perf_counter() - t0
    variants["raw"] = raw

    transforms = {"centered": iso.all_but_the_top_transform(moments, 0),
                  "all_but_the_top": iso.all_but_the_top_transform(moments, D)}
    rows = _sample_rows(n, variant_sample, seed)
    for name, tf in transforms.items():
        t0 = time.perf_counter()
        fields, arrays[name] = set_figures(x, transform=tf, bins=bins,
                                           anisotropy_pairs=anisotropy_pairs, seed=seed,
                                           progress=progress, working_memory=working_memory)
        sample = _postprocessed_rows(x, rows, tf, working_memory)
        pw, stats = pairwise_figures(sample, texts=texts, rows=rows, bins=bins, progress=progress)
        pw["sampled"] = bool(len(rows) < n)
        fields["pairwise"] = pw
        arrays[name]["pairwise_stats"] = stats
        fields["removed_components"] = int(tf.components.shape[0])
        variants[name] = fields
        timing[f"{name}_statistics"] = time.perf_counter() - t0

    report = {
        "n": int(n), "d": int(d),
        "definitions": DEFINITIONS,
        "centroid": {"norm": raw["centroid_norm"], "file": "centroid.npy"},
        "centroid_norm": raw["centroid_norm"],
        "cosine_to_centroid_min": raw["cosine_to_centroid"]["min"],
        "half_angle_deg": raw["half_angle_deg"],
        "cone_width_deg": raw["cone_width_deg"],
        "max_pairwise_angle_deg": raw["pairwise"]["max_pairwise_angle_deg"],
        "mean_pairwise_cosine": raw["pairwise"]["mean_pairwise_cosine"],
        "min_pairwise_cosine": raw["pairwise"]["min_pairwise_cosine"],
        "anisotropy": raw["anisotropy"]["estimate"],
        "isoscore": raw["isoscore"],
        "abtt_components": D,
        "variant_pairwise_sample": int(len(rows)),
        "variants": variants,
        "timing_s": timing,
    }
    return report, arrays


DEFINITIONS = {
    "half_angle_deg": "largest angle between a (unit) member and the centroid direction",
    "cone_width_deg": "2 x half_angle_deg: apex angle of the circular cone around the centroid "
                      "direction that holds every member",
    "max_pairwise_angle_deg": "arccos(min pairwise cosine): the widest angle two members span "
                              "(<= cone_width_deg)",
    "anisotropy": "Ethayarajh (2019): expected cosine of two distinct random members, estimated "
                  "from sampled pairs; equals the exact all-pairs mean "
                  "(mean_pairwise_cosine_exact) in expectation",
    "isoscore": "Rudman et al. (2022) IsoScore of the unit rows' covariance spectrum: 1 isotropic, "
                "0 one-dimensional",
    "rogue_dimensions": "Timkey & van Schijndel (2021): coordinate k contributes mean_k^2 to the "
                        "expected cosine; fold = share x d",
    "centered": "unit rows minus their mean, renormalized",
    "all_but_the_top": "Mu & Viswanath (2018): mean and top D principal components removed, "
                       "renormalized",
}


# ----------------------------------------------------------------------------- output


def write_cone(out, report, arrays, *, vectors=None, texts=None, save_vectors=False,
               t_start=None) -> None:
    """Plots, centroid.npy, optional vectors/texts, report.md, then report.json (last).

    ``t_start`` (a ``time.perf_counter()`` value) adds the writing time and the
    total wall time to ``report["timing_s"]``.
    """
    t0 = time.perf_counter()
    from ..io import save_npy
    from .inputs import save_texts
    from .report import new_figure

    save_npy(out.path("centroid.npy"), arrays["raw"]["centroid"])
    out.files.append("centroid.npy")
    files = {"centroid": "centroid.npy"}
    if save_vectors and vectors is not None:
        # a float32 memmap is written block by block by np.save, never copied into memory
        save_npy(out.path("vectors.npy"), vectors if vectors.dtype == np.float32
                 else np.asarray(vectors, dtype=np.float32))
        out.files.append("vectors.npy")
        files["vectors"] = "vectors.npy"
        if texts is not None:
            files["texts"] = save_texts(out, texts)

    plots = (
        ("pairwise_hist.png", _draw_pairwise, "cosine", "density",
         f"All-pairs cosine, n = {report['n']}, d = {report['d']}", False),
        ("cos_to_centroid_hist.png", _draw_cos_to_centroid, "cosine to the centroid direction",
         "density", f"Cosine to the centroid (raw half-angle {report['half_angle_deg']:.1f} deg)",
         False),
        ("pca_spectrum.png", _draw_spectrum, "principal component", "explained variance ratio",
         "PCA spectrum of the unit embeddings", True),
    )
    for fname, draw, xlabel, ylabel, title, logy in plots:
        fig, ax = new_figure()
        for name in VARIANTS:
            draw(ax, arrays[name], report, label=_label(name, report))
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        if logy:
            ax.set_yscale("log")
        ax.legend()
        out.figure(fname, fig)

    if t_start is not None:
        report["timing_s"]["writing"] = time.perf_counter() - t0
        report["timing_s"]["total"] = time.perf_counter() - t_start
    report["files"] = {**files, "plots": [p[0] for p in plots]}
    out.markdown(cone_markdown(report))
    out.json(report)


def _draw_pairwise(ax, arr, report, *, label):
    st = arr["pairwise_stats"]
    c, e = np.asarray(st.counts, dtype=np.float64), np.asarray(st.edges)
    ax.plot((e[:-1] + e[1:]) / 2, c / max(c.sum(), 1) / np.diff(e), label=label)


def _draw_cos_to_centroid(ax, arr, report, *, label):
    ax.hist(arr["cos_to_centroid"], bins=min(200, max(10, report["n"] // 20)), histtype="step",
            density=True, label=label)


def _draw_spectrum(ax, arr, report, *, label):
    w = arr["eigenvalues"]
    r = w / w.sum()
    keep = r > r.max() * 1e-9          # drop the numerically-zero directions (removed, unused)
    ax.plot(np.arange(1, r.size + 1)[keep], r[keep], label=label)


def _label(name, report):
    if name == "all_but_the_top":
        return f"all-but-the-top (D = {report['abtt_components']})"
    return name


def cone_markdown(report) -> str:
    """The human-readable report."""
    v = report["variants"]
    lines = [f"# Cone study: n = {report['n']}, d = {report['d']}", ""]
    if report.get("source"):
        from .inputs import describe_source

        lines += [f"Source: {describe_source(report['source'])}", ""]
    lines += ["| figure | " + " | ".join(_label(k, report) for k in VARIANTS) + " |",
              "|---|" + "---:|" * len(VARIANTS)]

    def row(label, get, fmt="{:.4f}"):
        lines.append(f"| {label} | " + " | ".join(fmt.format(get(v[k])) for k in VARIANTS) + " |")

    row("centroid norm", lambda f: f["centroid_norm"])
    row("cos to centroid: min", lambda f: f["cosine_to_centroid"]["min"])
    row("cos to centroid: median", lambda f: f["cosine_to_centroid"]["quantiles"]["0.5"])
    row("half-angle (deg)", lambda f: f["half_angle_deg"], "{:.2f}")
    row("cone width = 2 x half-angle (deg)", lambda f: f["cone_width_deg"], "{:.2f}")
    row("widest pair angle (deg)", lambda f: f["pairwise"]["max_pairwise_angle_deg"], "{:.2f}")
    row("mean pairwise cosine", lambda f: f["pairwise"]["mean_pairwise_cosine"])
    row("mean pairwise cosine (exact, all rows)", lambda f: f["mean_pairwise_cosine_exact"])
    row("min pairwise cosine", lambda f: f["pairwise"]["min_pairwise_cosine"])
    row("1% / 99% pairwise quantile",
        lambda f: (f["pairwise"]["quantiles"]["0.01"], f["pairwise"]["quantiles"]["0.99"]),
        "{0[0]:.3f} / {0[1]:.3f}")
    row("anisotropy (sampled pairs)", lambda f: f["anisotropy"]["estimate"])
    row("IsoScore", lambda f: f["isoscore"])
    row("PC1 explained variance", lambda f: f["pca"]["explained_variance_ratio"][0])
    row("components for 90% variance", lambda f: f["pca"]["components_for"]["90%"], "{}")
    row("top rogue dim share of cosine", lambda f: f["rogue_dimensions"]["top1_cosine_share"])
    lines.append("")
    if report["variant_pairwise_sample"] < report["n"]:
        lines += [f"All-pairs figures of the post-processed sets use a seeded sample of "
                  f"{report['variant_pairwise_sample']} rows; their other figures use all rows.", ""]
    pw = v["raw"]["pairwise"]
    for key, title in (("closest_pair", "Closest pair"), ("farthest_pair", "Farthest pair")):
        p = pw[key]
        lines.append(f"**{title}** (cosine {p['cosine']:.4f}, {p['angle_deg']:.1f} deg): "
                     + (f"`{p.get('text_i')}` / `{p.get('text_j')}`" if "text_i" in p
                        else f"rows {p['i']} and {p['j']}"))
        lines.append("")
    rog = v["raw"]["rogue_dimensions"]["by_mean"][:5]
    lines += ["Rogue dimensions (raw; share of the expected cosine, fold over a fair share): "
              + ", ".join(f"dim {r['dim']}: {r['cosine_share']:.3f} ({r['fold']:.1f}x)" for r in rog), ""]
    t = report["timing_s"]
    lines += ["Timing (s): " + ", ".join(f"{k} {val:.2f}" for k, val in t.items()), ""]
    lines += ["Definitions:", ""] + [f"- `{k}`: {d}" for k, d in DEFINITIONS.items()] + [""]
    lines += ["Plots: ![pairwise](pairwise_hist.png) ![cos to centroid](cos_to_centroid_hist.png) "
              "![PCA](pca_spectrum.png)", ""]
    return "\n".join(lines)

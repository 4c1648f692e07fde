"""``embalg pairs VECTORS.npy``: streaming all-pairs cosine statistics into a study directory.

Writes ``report.json`` (histogram, moments, extremes, quantiles, threshold
pairs, timing), ``pairwise_hist.png``, ``report.md`` and, with ``--topk``,
``topk_indices.npy`` / ``topk_values.npy``. A progress bar shows tiles done /
total, pairs per second and the ETA.
"""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("pairs", help="all-pairs cosine statistics of a .npy of vectors "
                                     "(histogram, moments, extremes, top-k), streamed in tiles")
    p.add_argument("vectors", help=".npy file of shape (n, d) (memory-mapped, read tile by tile)")
    p.add_argument("--y", default=None, help="second .npy: all n x m pairs against it "
                                             "(default: the n (n - 1) / 2 pairs within VECTORS)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty output directory")
    p.add_argument("--bins", type=int, default=2000, help="histogram bins (default 2000)")
    p.add_argument("--range", type=float, nargs=2, default=(-1.0, 1.0), metavar=("LO", "HI"),
                   help="histogram range (default -1 1)")
    p.add_argument("--topk", type=int, default=0, help="nearest partners kept per row (default 0)")
    p.add_argument("--threshold", type=float, default=None,
                   help="count pairs with cosine >= THRESHOLD and keep the first --max-pairs")
    p.add_argument("--max-pairs", type=int, default=100_000, help="bound on kept threshold pairs")
    p.add_argument("--tile", type=int, default=None, help="tile side in rows (default: from "
                                                          "--working-memory)")
    p.add_argument("--working-memory", type=float, default=None, help="MiB per tile (default 128)")
    p.add_argument("--backend", default="auto", help="auto, numpy or numba")
    p.add_argument("--precision", default="float32", help="float32 (default) or float64")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="always show the progress bar")
    bar.add_argument("--no-progress", dest="progress", action="store_false",
                     help="never show the progress bar")


def histogram_figure(stats, title: str):
    """Density of the cosines over the histogram bins, with mean and extremes marked."""
    import numpy as np

    from ..studies.report import new_figure

    fig, ax = new_figure()
    edges = stats.edges
    width = np.diff(edges)
    density = stats.counts / max(stats.n_pairs, 1) / width
    ax.stairs(density, edges, fill=True, alpha=0.6)
    if stats.n_pairs:
        for value, label, style in ((stats.mean, "mean", "-"), (stats.min, "min", ":"),
                                    (stats.max, "max", ":")):
            ax.axvline(value, color="k", linestyle=style, linewidth=0.8)
            ax.annotate(f"{label} {value:.3f}", (value, ax.get_ylim()[1] * 0.95), fontsize=8,
                        rotation=90, va="top", ha="right")
    ax.set_xlabel("cosine")
    ax.set_ylabel("density")
    ax.set_title(title)
    return fig


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def markdown(report: dict) -> str:
    s = report["stats"]
    q = s["quantiles"]
    lines = [f"# All-pairs cosine of `{report['input']['vectors']}`", "",
             f"- rows n = {report['input']['n']}, d = {report['input']['d']}, "
             f"pairs = {s['n_pairs']:,}",
             f"- mean {_num(s['mean'])}, std {_num(s['std'])}, min {_num(s['min'])} at "
             f"{s['argmin']}, max {_num(s['max'])} at {s['argmax']}",
             f"- median {_num(q.get('0.5'))}, 1% {_num(q.get('0.01'))}, 99% {_num(q.get('0.99'))}",
             f"- {report['timing']['seconds']:.2f} s, {report['timing']['pairs_per_second']:.3g} "
             f"pairs/s, backend {report['settings']['backend']}, precision {s['precision']}",
             "", "![histogram](pairwise_hist.png)", ""]
    return "\n".join(lines)


def run(args) -> int:
    import time
    from pathlib import Path

    from ..io.npy import open_npy, save_npy
    from ..pairwise import pairwise_stats
    from ..studies.report import StudyOutput

    x = open_npy(args.vectors)
    y = None if args.y is None else open_npy(args.y)
    created = not Path(args.out).exists()
    out = StudyOutput(args.out, force=args.force)  # refuses a non-empty directory before the work
    t0 = time.perf_counter()
    try:
        stats = pairwise_stats(x, y, bins=args.bins, range=tuple(args.range), topk=args.topk,
                               threshold=args.threshold, max_pairs=args.max_pairs, tile=args.tile,
                               working_memory=args.working_memory, backend=args.backend,
                               progress=args.progress, precision=args.precision)
    except BaseException:
        if created and not any(out.dir.iterdir()):
            out.dir.rmdir()
        raise
    seconds = time.perf_counter() - t0
    n, d = x.shape if x.ndim == 2 else (1, x.shape[0])
    report = {
        "command": "pairs",
        "input": {"vectors": str(args.vectors), "y": args.y, "n": int(n), "d": int(d),
                  "m": None if y is None else int(y.shape[0]), "dtype": str(x.dtype),
                  "self_pairs": y is None},
        "settings": {"bins": args.bins, "range": list(args.range), "topk": args.topk,
                     "threshold": args.threshold, "max_pairs": args.max_pairs, "tile": args.tile,
                     "working_memory": args.working_memory,
                     "backend": stats.backend,
                     "precision": args.precision},
        "timing": {"seconds": seconds, "pairs_per_second": stats.n_pairs / max(seconds, 1e-12)},
        "stats": stats.to_dict(),
        "files": {"histogram": "pairwise_hist.png", "markdown": "report.md"},
    }
    if args.topk:
        save_npy(out.path("topk_indices.npy"), stats.topk_indices)
        save_npy(out.path("topk_values.npy"), stats.topk_values)
        report["files"].update(topk_indices="topk_indices.npy", topk_values="topk_values.npy")
    title = f"All-pairs cosine, n = {n}, d = {d}, {stats.n_pairs:,} pairs"
    out.figure("pairwise_hist.png", histogram_figure(stats, title))
    out.markdown(markdown(report))
    out.json(report)
    print(f"{stats.n_pairs:,} pairs in {seconds:.2f} s: mean {stats.mean:.4f}, std {stats.std:.4f}, "
          f"min {stats.min:.4f}, max {stats.max:.4f}; wrote {out.dir}/report.json")
    return 0

"""``embalg cone``: the cone study (centroid, half-angle, all-pairs cosine, IsoScore, PCA)."""
from __future__ import annotations


def register(sub) -> None:
    from ..studies.inputs import add_source_arguments

    p = sub.add_parser("cone", help="how much of the sphere the embeddings occupy: cone "
                                    "half-angle, all-pairs cosine, anisotropy, IsoScore, PCA",
                       description="Embed random strings (or read texts / a vectors file) and "
                                   "measure the cone they occupy, raw, mean-centered and after "
                                   "all-but-the-top. Writes DIR/report.json, report.md, "
                                   "centroid.npy and PNG plots.")
    add_source_arguments(p, n_default=5000)
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (must not exist "
                                                                "or be empty, unless --force)")
    p.add_argument("--force", action="store_true", help="overwrite files in an existing DIR")
    p.add_argument("--save-vectors", action="store_true",
                   help="also write DIR/vectors.npy and the texts (texts.txt or texts.jsonl)")
    p.add_argument("--bins", type=int, default=1000, help="histogram bins over [-1, 1]")
    p.add_argument("--abtt-components", type=int, default=None, metavar="D",
                   help="principal components removed by all-but-the-top (default d/100)")
    p.add_argument("--variant-sample", type=int, default=20000, metavar="N",
                   help="rows sampled for the post-processed sets' all-pairs figures")
    p.add_argument("--anisotropy-pairs", type=int, default=100000, metavar="N",
                   help="random pairs for the anisotropy estimate")


def run(args) -> int:
    import time

    from ..studies.cone import cone_study, write_cone
    from ..studies.inputs import fresh_output, load_input, study_arguments
    from ..validation import check_positive_int

    check_positive_int(args.bins, "--bins")
    check_positive_int(args.variant_sample, "--variant-sample")
    check_positive_int(args.anisotropy_pairs, "--anisotropy-pairs")
    t_start = time.perf_counter()
    out = fresh_output(args.out, force=args.force)   # refuse an existing DIR before any work
    data = load_input(args, min_rows=2)
    t0 = time.perf_counter()
    report, arrays = cone_study(data.vectors, data.texts, bins=args.bins,
                                abtt_components=args.abtt_components,
                                variant_sample=args.variant_sample,
                                anisotropy_pairs=args.anisotropy_pairs,
                                seed=getattr(args, "seed", 0))
    stats_s = time.perf_counter() - t0
    report["model"] = data.model
    report["source"] = data.source
    report["arguments"] = study_arguments(args)
    report["timing_s"] = {"embedding": data.embed_seconds, "statistics": stats_s,
                          **{f"statistics.{k}": v for k, v in report["timing_s"].items()}}
    write_cone(out, report, arrays, vectors=data.vectors, texts=data.texts,
               save_vectors=args.save_vectors, t_start=t_start)
    print(f"cone: n = {report['n']}, d = {report['d']}: half-angle {report['half_angle_deg']:.1f} deg, "
          f"mean pairwise cosine {report['mean_pairwise_cosine']:.3f}, min "
          f"{report['min_pairwise_cosine']:.3f}, IsoScore {report['isoscore']:.3f}; "
          f"embedding {data.embed_seconds:.1f} s, statistics {stats_s:.1f} s -> {out.dir}")
    return 0

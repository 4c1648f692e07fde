"""``embalg props``: associativity, commutativity, inverse and closure of the operators on real embeddings."""
from __future__ import annotations


def register(sub) -> None:
    from ..studies.inputs import add_source_arguments

    p = sub.add_parser("props", help="associativity, commutativity, inverse and closure of each "
                                     "operator, measured on real embeddings",
                       description="Embed random strings (or read texts / a vectors file), apply "
                                   "every operator to real embeddings and measure its algebra and "
                                   "whether its results stay in the cone of real embeddings. "
                                   "Writes DIR/report.json, report.md and PNG plots.")
    add_source_arguments(p, n_default=2000)
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--force", action="store_true", help="overwrite files in an existing DIR")
    p.add_argument("--max-rows", type=int, default=20000, metavar="N",
                   help="measure larger sets on a seeded sample of N rows (default 20000)")
    p.add_argument("--quantile", type=float, default=0.01,
                   help="the cone's edge as a quantile of the real set's cosine to its centroid "
                        "(default 0.01; 'leaves cone' always uses the minimum)")


def run(args) -> int:
    import time

    from ..studies.inputs import fresh_output, load_input, study_arguments
    from ..studies.props import props_figures, props_markdown, props_study
    from ..validation import check_positive_int

    t_start = time.perf_counter()
    out = fresh_output(args.out, force=args.force)
    data = load_input(args, min_rows=8)
    t0 = time.perf_counter()
    check_positive_int(args.max_rows, "--max-rows")
    report, arrays = props_study(data.vectors, quantile=args.quantile, max_rows=args.max_rows,
                                 seed=getattr(args, "seed", 0))
    stats_s = time.perf_counter() - t0
    report.update(model=data.model, source=data.source, arguments=study_arguments(args))
    for name, fig in props_figures(report, arrays).items():
        out.figure(name, fig)
    report["timing_s"] = {"embedding": data.embed_seconds, "statistics": stats_s,
                          "total": time.perf_counter() - t_start}
    out.markdown(props_markdown(report))
    out.json(report)
    for name, f in report["operators"].items():
        c = f["closure"]
        print(f"{name:16s} leaves cone {c['leaves_cone']:.3f}  nearest real (median) "
              f"{c['nearest_real_cosine']['quantiles']['0.5']:.4f}")
    ex = report["all_negative_example"]["angle_to_operand_deg"]
    print(f"hadamard with -1/sqrt(d): angle to operand {ex['min']:.3f}..{ex['max']:.3f} deg "
          f"-> {out.dir}")
    return 0

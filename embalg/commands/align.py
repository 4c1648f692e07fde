"""``embalg align SRC DST``: fit and test a map between two embedding sets of the same texts."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "align", help="fit Procrustes and ridge maps between two vector files of the same texts",
        description="SRC and DST hold embeddings of the same texts, row for row (.npy, .parquet "
                    "or .jsonl vector files). A seeded split holds rows out; orthogonal "
                    "Procrustes and a ridge least-squares map are fitted on the rest and scored "
                    "on the held-out rows (mean cosine, top-1 retrieval). Writes DIR/procrustes.npz, "
                    "DIR/linear.npz (load with embalg.alignment.AlignmentMap.load), report.json, "
                    "report.md and methods.png.")
    p.add_argument("src", metavar="SRC", help="source vectors (n, d1)")
    p.add_argument("dst", metavar="DST", help="destination vectors (n, d2), same texts and order")
    p.add_argument("--out", metavar="DIR", required=True, help="output directory")
    p.add_argument("--force", action="store_true", help="overwrite files in an existing DIR")
    p.add_argument("--train-frac", type=float, default=0.8, help="fraction of rows fitted (default 0.8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/held-out split")
    p.add_argument("--ridge", type=float, default=1e-2, help="ridge penalty of the linear map (default 0.01)")
    p.add_argument("--scale", action="store_true", help="fit a scale factor with Procrustes")


def run(args) -> int:
    import time

    from ..io import load_vectors
    from ..studies.align import align_study, methods_figure, report_markdown
    from ..studies.inputs import fresh_output, study_arguments

    t0 = time.perf_counter()
    src = load_vectors(args.src)
    dst = load_vectors(args.dst)
    for name, v in (("SRC", src), ("DST", dst)):
        if v.ndim != 2:
            raise ValueError(f"{name} holds shape {v.shape}; vector files must be (n, d)")
    out = fresh_output(args.out, force=args.force)
    report, maps = align_study(src, dst, train_frac=args.train_frac, seed=args.seed,
                               ridge=args.ridge, scale=args.scale)
    report.update(src=str(args.src), dst=str(args.dst), arguments=study_arguments(args))
    for name, m in maps.items():
        m.save(out.path(f"{name}.npz"))
        out.files.append(f"{name}.npz")
    out.figure("methods.png", methods_figure(report))
    report["seconds"] = time.perf_counter() - t0
    out.markdown(report_markdown(report))
    out.json(report)
    for name, s in report["methods"].items():
        print(f"{name:20s} mean cosine {s['mean_cosine']:.4f}  top-1 {s['top1']:.4f}")
    print(f"-> {out.dir}")
    return 0

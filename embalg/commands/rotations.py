"""``embalg rotations``: does the same alteration of a text give the same rotation?"""
from __future__ import annotations


def register(sub) -> None:
    from ..studies.rotations import EDIT_KINDS

    p = sub.add_parser(
        "rotations", help="measure whether one kind of text edit rotates embeddings the same way",
        description="For many (before, after) pairs of each edit kind (generated from templates, "
                    "or --pairs FILE), embed both texts, compute each pair's minimal rotation, "
                    "and measure rotation angles, the angles between rotation planes, and how "
                    "well one pair's rotation or a Procrustes / linear fit on a training split "
                    "predicts held-out edited embeddings, against 'no change' and 'add the mean "
                    "difference'. Writes DIR/report.json, report.md and three plots.")
    p.add_argument("--out", metavar="DIR", required=True, help="output directory")
    p.add_argument("--force", action="store_true", help="overwrite files in an existing DIR")
    p.add_argument("--kinds", nargs="+", choices=sorted(EDIT_KINDS), default=None,
                   help="edit kinds to generate (default: all): "
                        + "; ".join(f"{k}: {v[0]}" for k, v in EDIT_KINDS.items()))
    p.add_argument("--n", type=int, default=200, help="pairs per edit kind (default 200)")
    p.add_argument("--pairs", metavar="FILE",
                   help="(before, after) pairs instead of templates: .jsonl objects with 'before', "
                        "'after' and optional 'kind', or .tsv lines before<TAB>after[<TAB>kind]")
    p.add_argument("--train-frac", type=float, default=0.7,
                   help="fraction of each kind's pairs used for fitting (default 0.7)")
    p.add_argument("--seed", type=int, default=0, help="seed for templates and the split")
    p.add_argument("--model", default=None, help="embedding model (default local:all-MiniLM-L6-v2; "
                                                 "openai:text-embedding-3-small needs OPENAI_API_KEY)")
    p.add_argument("--dimensions", type=int, default=None, help="output dimension (text-embedding-3)")
    p.add_argument("--cache", metavar="PATH", default=None, help="embedding cache file")
    p.add_argument("--no-cache", action="store_true", help="do not use the embedding cache")


def run(args) -> int:
    import time

    from ..studies.inputs import DEFAULT_MODEL, embed_texts, fresh_output, study_arguments
    from ..studies.rotations import (EDIT_KINDS, read_pairs, rotation_study, template_pairs,
                                     write_report)
    from ..validation import check_positive_int

    check_positive_int(args.n, "--n")
    if args.pairs and args.kinds:
        raise ValueError("--kinds chooses generated edits; with --pairs FILE the kinds come from "
                         "the file's 'kind' field")
    t_start = time.perf_counter()
    if args.pairs:
        pairs, source = read_pairs(args.pairs), f"pairs file {args.pairs}"
    else:
        kinds = args.kinds or list(EDIT_KINDS)
        pairs = {k: template_pairs(k, args.n, seed=args.seed) for k in kinds}
        source = f"templates {', '.join(kinds)}, n = {args.n} per kind, seed = {args.seed}"
    out = fresh_output(args.out, force=args.force)      # checked before any embedding
    report = rotation_study(pairs, lambda texts: embed_texts(texts, args), train_frac=args.train_frac,
                            seed=args.seed)
    report.update(model=args.model or DEFAULT_MODEL, source=source, arguments=study_arguments(args),
                  seconds=time.perf_counter() - t_start)
    write_report(report, out)
    for kind, v in report["verdict"].items():
        print(f"{kind:10s} best: {v['best_method']:36s} {v['best_mean_cosine']:.4f}  "
              f"plane angle same/mismatched: {v['median_plane_angle_same_kind_deg']:.1f}/"
              f"{v['median_plane_angle_mismatched_deg']:.1f} deg")
    print(f"-> {out.dir}")
    return 0

"""``embalg cache``: inspect and export the embedding cache.

``embalg cache stats [--cache PATH] [--json]`` prints rows per provider/model/dimensions
and the file size. ``embalg cache export --out FILE.npy|FILE.parquet [--provider P]
[--model M] [--dimensions D]`` writes the matching vectors (float32, one row per
cached text) atomically. A ``.npy`` export also writes ``FILE.npy.sha256.txt``
(one SHA-256 hex of the text per line, same order); a ``.parquet`` export has
columns ``text_sha256`` (string) and ``vector`` (fixed-size list of float32),
with provider, model and dimensions in the schema metadata.
"""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("cache", help="embedding cache: stats, export vectors")
    p.add_argument("--cache", default=None, help="cache file (default: the user cache dir, "
                                                 "$EMBALG_CACHE_DIR overrides)")
    cmds = p.add_subparsers(dest="cache_command", metavar="ACTION")
    cmds.required = True
    s = cmds.add_parser("stats", help="rows per provider/model/dimensions, file size")
    s.add_argument("--json", action="store_true", help="print JSON")
    e = cmds.add_parser("export", help="write cached vectors to .npy or .parquet")
    e.add_argument("--out", required=True, help="FILE.npy or FILE.parquet")
    e.add_argument("--provider", default=None, help="e.g. openai or local")
    e.add_argument("--model", default=None, help="e.g. text-embedding-3-small")
    e.add_argument("--dimensions", type=int, default=None, help="requested size (0 = native)")
    e.add_argument("--force", action="store_true", help="overwrite --out")


def run(args) -> int:
    from pathlib import Path

    from ..sources.cache import EmbeddingCache, default_cache_path

    path = Path(args.cache) if args.cache else default_cache_path()
    if not path.exists():
        raise FileNotFoundError(f"no embedding cache at {path} (nothing embedded yet?)")
    with EmbeddingCache(path) as cache:
        if args.cache_command == "stats":
            return _stats(cache, args.json)
        return _export(cache, args)


def _stats(cache, as_json: bool) -> int:
    import json

    s = cache.stats()
    if as_json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"{s['path']}: {s['rows']} vectors, {s['file_bytes'] / 1e6:.1f} MB")
    for g in s["groups"]:
        dims = g["dimensions"] or "native"
        print(f"  {g['provider']:8s} {g['model']:32s} dimensions={dims!s:7s} dim={g['dim']:5d} "
              f"rows={g['rows']}")
    return 0


def _export(cache, args) -> int:
    from pathlib import Path

    out = Path(args.out)
    if out.suffix not in (".npy", ".parquet"):
        raise ValueError(f"--out must end in .npy or .parquet, got {out.name!r}")
    if out.exists() and not args.force:
        raise FileExistsError(f"{out} exists; pass --force to overwrite")
    hashes, vectors = cache.export(args.provider, args.model, args.dimensions)
    if not hashes:
        raise ValueError(f"no cached vectors match provider={args.provider!r} model={args.model!r} "
                         f"dimensions={args.dimensions!r}")
    if out.suffix == ".npy":
        from ..atomic import write_text
        from ..io.npy import save_npy

        save_npy(out, vectors)
        write_text(Path(f"{out}.sha256.txt"), "".join(h + "\n" for h in hashes))
    else:
        _write_parquet(out, hashes, vectors, args)
    print(f"wrote {len(hashes)} vectors of dimension {vectors.shape[1]} to {out}")
    return 0


def _write_parquet(out, hashes, vectors, args) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..atomic import atomic_path

    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    col = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
    meta = {"provider": args.provider or "", "model": args.model or "",
            "dimensions": str(args.dimensions if args.dimensions is not None else ""),
            "source": "embalg cache export"}
    table = pa.table({"text_sha256": pa.array(hashes, pa.string()), "vector": col})
    table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)

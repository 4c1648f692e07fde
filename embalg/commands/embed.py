"""``embalg embed``: embed a file of texts and write a vector file.

    embalg embed texts.txt --model local:all-MiniLM-L6-v2 --out vectors.parquet
    embalg embed texts.jsonl --model openai:text-embedding-3-small --dimensions 512 --out v.npy
    cat texts.txt | embalg embed - --out v.jsonl --no-cache

Input: ``.txt`` (one text per line), ``.jsonl`` (field ``text``), ``.parquet``
(column ``text``) or ``-`` (standard input, one text per line); see
:mod:`embalg.sources.texts`. Output: ``.parquet`` (id, text, vector + model
metadata), ``.npy`` or ``.jsonl``; an existing output is refused unless
``--force``. Everything is checked (output path, input encoding, every text,
token limits, the API key) before the first text is embedded.
"""
from __future__ import annotations


def register(sub) -> None:
    import argparse

    p = sub.add_parser("embed", help="embed a file of texts (.txt/.jsonl/.parquet/-) into a vector file",
                       description="Embed a file of texts and write a vector file.\n"
                                   "Everything is checked before the first text is embedded;\n"
                                   "an existing --out is kept unless --force.",
                       epilog="examples:\n" + __doc__.split("\n\n")[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="INPUT", help="texts: .txt, .jsonl, .parquet, or - for stdin")
    p.add_argument("--model", default="local:all-MiniLM-L6-v2",
                   help="local:<sentence-transformers model> or openai:<model> "
                        "(default: %(default)s, offline)")
    p.add_argument("--out", required=True, help="output vector file: .parquet, .npy or .jsonl")
    p.add_argument("--dimensions", type=int, default=None,
                   help="output dimension (text-embedding-3: server-side; local: first N, renormalized)")
    cache = p.add_mutually_exclusive_group()
    cache.add_argument("--cache", default=None, metavar="PATH",
                       help="embedding cache file (default: the user cache, see 'embalg cache stats')")
    cache.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--batch-size", type=int, default=None, help="texts per provider batch/request")
    p.add_argument("--batch-api", action="store_true",
                   help="OpenAI only: run through the Batch API (half price, up to 24 h), then write --out")
    p.add_argument("--batch-dir", default=None, metavar="DIR",
                   help="Batch API working directory (default: <out>.batch); re-run to resume")
    p.add_argument("--poll-interval", type=float, default=60.0, metavar="SECONDS",
                   help="Batch API status polling interval (default: %(default)s)")
    p.add_argument("--ingest-batch-output", metavar="FILE", default=None,
                   help="OpenAI only: load an already downloaded Batch API output file into the cache first")
    long = p.add_mutually_exclusive_group()
    long.add_argument("--truncate", action="store_true",
                      help="cut texts over the model's token limit (local models always do)")
    long.add_argument("--chunk-average", action="store_true",
                      help="OpenAI only: embed long texts in 8191-token chunks and average them")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _check_out(out: str, force: bool):
    from pathlib import Path

    from ..io.vectors import SUFFIXES

    path = Path(out)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"--out must end in one of {', '.join(SUFFIXES)}, got {out!r}")
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    if path.is_dir():
        raise ValueError(f"--out {path} is a directory")
    return path


def _provider_options(args, prefix: str) -> dict:
    is_openai = prefix == "openai"
    if not is_openai:
        for flag, value in (("--chunk-average", args.chunk_average), ("--batch-api", args.batch_api),
                            ("--ingest-batch-output", args.ingest_batch_output)):
            if value:
                raise ValueError(f"{flag} is only for openai: models, not {args.model!r}")
        return {}
    if args.truncate:
        return {"truncate": "truncate"}
    if args.chunk_average:
        return {"truncate": "chunk_average"}
    return {}


def _batch_api():
    try:
        from ..sources import batch_api
    except ImportError as exc:
        raise ValueError(f"the OpenAI Batch API support (embalg.sources.batch_api) is not "
                         f"available: {exc}") from None
    return batch_api


def run(args) -> int:
    import functools
    import logging

    from ..io.vectors import save_vectors
    from ..sources.embed import DEFAULT_CACHE, embed_with, make_embedder, parse_model
    from ..sources.texts import read_texts

    log = logging.getLogger("embalg.commands.embed")
    out = _check_out(args.out, args.force)
    prefix, _ = parse_model(args.model)
    options = _provider_options(args, prefix)
    source = read_texts(args.input)
    texts = source.texts
    embedder = make_embedder(args.model, dimensions=args.dimensions, batch_size=args.batch_size,
                             **options)
    cache = None if args.no_cache else (args.cache or DEFAULT_CACHE)
    if (args.batch_api or args.ingest_batch_output) and cache is None:
        raise ValueError("--batch-api and --ingest-batch-output store results in the cache; "
                         "drop --no-cache")
    cost = None
    if prefix == "openai":  # what the online requests cost (the Batch API pays half, see its log)
        from ..sources.openai_embedder import estimate_cost

        cost = functools.partial(estimate_cost, embedder.model)

    progress = False if args.no_progress else None
    if args.ingest_batch_output or args.batch_api:
        _run_batch(args, embedder, texts, cache, progress, log)
    vectors = embed_with(embedder, texts, cache=cache, progress=progress, cost=cost)
    save_vectors(out, vectors, ids=source.ids, texts=texts,
                 model=f"{embedder.provider}:{embedder.model}", dimensions=vectors.shape[1])
    print(f"wrote {vectors.shape[0]} vectors of dimension {vectors.shape[1]} to {out}")
    return 0


def _run_batch(args, embedder, texts, cache, progress, log) -> None:
    """Fill the cache through the OpenAI Batch API (or from a downloaded output file).

    The job's working directory is ``--batch-dir`` (default ``<out>.batch``). A
    new job gets the distinct texts not yet in the cache; when the directory
    already holds a job, its own texts are read back from its request files, so
    re-running the same command resumes polling instead of paying again. Texts
    the batch did not deliver are embedded online afterwards.
    """
    from pathlib import Path

    from ..sources.cache import EmbeddingCache, default_cache_path
    from ..sources.embed import DEFAULT_CACHE

    batch_api = _batch_api()
    if embedder.truncate == "chunk_average":
        raise ValueError("--chunk-average is not available with the Batch API; use --truncate")
    workdir = Path(args.batch_dir) if args.batch_dir else Path(f"{args.out}.batch")
    with EmbeddingCache(default_cache_path() if cache is DEFAULT_CACHE else cache) as store:
        unique = list(dict.fromkeys(texts))
        requests = sorted(workdir.glob("requests-*.jsonl"))
        if requests:
            job_texts = batch_api.read_batch_texts(requests)
        else:
            hits = store.get_many(embedder.provider, embedder.model, embedder.dimensions, unique)
            job_texts = [t for i, t in enumerate(unique) if i not in hits]
        if args.ingest_batch_output:
            summary = batch_api.ingest_batch_output(args.ingest_batch_output,
                                                    job_texts if requests else unique,
                                                    embedder.model, embedder.dimensions, store)
            log.info("ingested %d texts from %s (%d failed requests)", summary["ingested"],
                     args.ingest_batch_output, len(summary["failed"]))
        if args.batch_api and job_texts:
            summary = batch_api.run_batch_job(job_texts, embedder.model, embedder.dimensions, store,
                                              workdir, poll_interval=args.poll_interval,
                                              progress=progress, truncate=embedder.truncate)
            log.info("batch job in %s: %d of %d texts ingested, %d failed requests", workdir,
                     summary["ingested"], summary["texts"], len(summary["failed"]))

"""Where a study's embeddings come from: random strings, a text file, or a vectors file.

Every study command takes the same source options (:func:`add_source_arguments`):

* default: ``--n`` random strings of ``--kind`` (``ea.random_strings``, seeded by
  ``--seed``), embedded with ``--model`` (default the offline local model);
* ``--texts FILE``: one text per line (``.txt``), a ``.jsonl`` file whose objects
  hold a ``"text"`` field, or a ``.parquet`` file with a ``text`` column
  (:func:`embalg.sources.texts.read_texts`);
* ``--vectors FILE``: a vector file (:func:`embalg.io.load_vector_table`): a ``.npy``
  of shape (n, d), memory-mapped (any size), or a ``.parquet``/``.jsonl`` file,
  whose texts and model name are used when present. Texts are optional and only
  label the rows (``--texts`` overrides the file's; the count must equal ``n``).
  When ``--model`` is also given, the file's ``d`` must equal the model's
  dimension (checked by embedding one probe text), so a study never mixes
  vectors of two models.

Texts longer than the model's limit follow the source's policy: the local
model truncates them to its ``max_seq_length`` tokens (logged); OpenAI models
refuse texts over 8191 tokens with a clear error before any request.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "local:all-MiniLM-L6-v2"
KINDS = ("words", "chars", "tokens", "sentences")


def add_source_arguments(p, *, n_default: int, random: bool = True, vectors: bool = True) -> None:
    """Add the shared input options (``--n/--kind/--seed``, ``--texts``, ``--vectors``,
    ``--model``, ``--dimensions``, ``--cache/--no-cache``) to an argparse parser."""
    g = p.add_argument_group("input (random strings by default)")
    if random:
        g.add_argument("--n", type=int, default=n_default,
                       help=f"number of random strings to embed (default {n_default})")
        g.add_argument("--kind", choices=KINDS, default="words",
                       help="kind of random string (default words: word salad from a real vocabulary)")
        g.add_argument("--seed", type=int, default=0, help="seed for the random strings and samples")
    g.add_argument("--texts", metavar="FILE",
                   help="texts instead of random strings: .txt (one per line), .jsonl ('text' field) "
                        "or .parquet ('text' column)")
    if vectors:
        g.add_argument("--vectors", metavar="FILE",
                       help="a vector file (.npy memory-mapped, .parquet or .jsonl) instead of embedding; "
                            "--texts (or the file's texts) label the rows")
    g.add_argument("--model", default=None,
                   help=f"embedding model (default {DEFAULT_MODEL}; 'openai:text-embedding-3-small' "
                        "needs OPENAI_API_KEY)")
    g.add_argument("--dimensions", type=int, default=None,
                   help="output dimension (text-embedding-3 shortening; default native)")
    g.add_argument("--cache", metavar="PATH", default=None,
                   help="embedding cache file (default: the user cache dir)")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")


def cache_option(args):
    """The ``cache=`` argument for :func:`embalg.embed` from ``--cache/--no-cache``."""
    if getattr(args, "no_cache", False):
        return None
    if getattr(args, "cache", None):
        return args.cache
    from ..sources.embed import DEFAULT_CACHE

    return DEFAULT_CACHE


def read_texts(path) -> list[str]:
    """The texts of a ``.txt``/``.jsonl``/``.parquet`` file (see :func:`embalg.sources.texts.read_texts`)."""
    from ..sources.texts import read_texts as read_texts_file

    return read_texts_file(path).texts


def embed_texts(texts, args, *, progress=None) -> np.ndarray:
    """Embed ``texts`` with the model, dimensions and cache chosen on the command line."""
    from ..sources import embed

    return embed(texts, model=args.model or DEFAULT_MODEL, dimensions=args.dimensions,
                 cache=cache_option(args), progress=progress)


def check_model_dimension(d: int, args, *, what: str) -> None:
    """``ValueError`` unless vectors of dimension ``d`` (from ``what``) fit ``--model``."""
    probe = embed_texts(["dimension probe"], args, progress=False)
    if probe.shape[1] != d:
        model = args.model or DEFAULT_MODEL
        dims = f" with --dimensions {args.dimensions}" if args.dimensions else ""
        raise ValueError(f"{what} has dimension d = {d}, but model {model}{dims} gives "
                         f"d = {probe.shape[1]}; the vectors must come from the chosen model")


@dataclass
class StudyInput:
    """A study's vectors (float32 array or read-only memmap), optional texts and provenance."""

    vectors: np.ndarray
    texts: list[str] | None
    model: str | None
    source: dict = field(default_factory=dict)
    embed_seconds: float = 0.0


def load_input(args, *, min_rows: int = 2, progress=None) -> StudyInput:
    """Build the :class:`StudyInput` described by the shared source options.

    Raises
    ------
    ValueError
        Fewer than ``min_rows`` texts or vectors; texts that do not match the
        vectors' row count; a vectors file whose dimension is not the model's.
    """
    texts = read_texts(args.texts) if args.texts else None
    vectors_path = getattr(args, "vectors", None)
    if vectors_path:
        from ..io import load_vector_table

        table = load_vector_table(vectors_path)
        x = table.vectors
        _check_rows(x.shape[0], min_rows, f"--vectors {vectors_path}")
        if texts is not None and len(texts) != x.shape[0]:
            raise ValueError(f"--texts {args.texts} has {len(texts)} texts but --vectors "
                             f"{vectors_path} has {x.shape[0]} rows; they must match row for row")
        if texts is None and table.texts is not None:
            texts = [str(t) for t in table.texts]
        if args.model:
            check_model_dimension(x.shape[1], args, what=f"--vectors {vectors_path}")
        model = args.model or table.model
        return StudyInput(vectors=x, texts=texts, model=model,
                          source={"vectors": str(vectors_path), "texts": args.texts,
                                  "n": int(x.shape[0]), "d": int(x.shape[1]), "model": model})
    if texts is not None:
        source = {"texts": str(args.texts), "n": len(texts)}
    else:
        from ..sources.random_strings import random_strings

        n = int(args.n)
        _check_rows(n, min_rows, "--n")
        texts = random_strings(n, kind=args.kind, seed=args.seed)
        source = {"random_strings": {"n": n, "kind": args.kind, "seed": args.seed}}
    _check_rows(len(texts), min_rows, "the input texts")
    t0 = time.perf_counter()
    x = embed_texts(texts, args, progress=progress)
    seconds = time.perf_counter() - t0
    model = args.model or DEFAULT_MODEL
    source.update(d=int(x.shape[1]), model=model, dimensions=args.dimensions)
    logger.info("embedded %d texts with %s in %.1f s", len(texts), model, seconds)
    return StudyInput(vectors=x, texts=texts, model=model, source=source, embed_seconds=seconds)


def _check_rows(n: int, min_rows: int, what: str) -> None:
    if n < min_rows:
        raise ValueError(f"{what} gives {n} vector{'s' if n != 1 else ''}; this study needs at "
                         f"least {min_rows} (pairs of distinct embeddings)")


def save_texts(out, texts) -> str:
    """Write the texts beside the vectors: ``texts.txt`` (one per line) unless a text holds
    a line break, then ``texts.jsonl``. Returns the file name."""
    if any("\n" in t or "\r" in t for t in texts):
        name = "texts.jsonl"
        body = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    else:
        name = "texts.txt"
        body = "".join(t + "\n" for t in texts)
    out.text(name, body)
    return name


def study_arguments(args) -> dict:
    """The parsed command-line options as a JSON-safe dict (recorded in every report)."""
    keep = (str, int, float, bool, type(None), list, tuple)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(vars(args).items())
            if isinstance(v, keep) and k not in ("func",)}


def describe_source(source: dict) -> str:
    """One line for a report: where the vectors came from.

    >>> describe_source({"random_strings": {"n": 5, "kind": "words", "seed": 0}, "d": 384,
    ...                  "model": "local:all-MiniLM-L6-v2"})
    '5 random strings (kind words, seed 0) embedded with local:all-MiniLM-L6-v2, d = 384'
    """
    if not source:
        return "unknown"
    if "vectors" in source:
        s = f"vectors file {source['vectors']} ({source.get('n')} x {source.get('d')})"
        return s + (f", texts from {source['texts']}" if source.get("texts") else "")
    if "random_strings" in source:
        r = source["random_strings"]
        s = f"{r['n']} random strings (kind {r['kind']}, seed {r['seed']})"
    else:
        s = f"{source.get('n')} texts from {source.get('texts')}"
    dims = f", dimensions {source['dimensions']}" if source.get("dimensions") else ""
    return f"{s} embedded with {source.get('model')}{dims}, d = {source.get('d')}"


def fresh_output(out_dir, *, force: bool):
    """The study's :class:`~embalg.studies.report.StudyOutput`, checked before any work.

    An existing non-empty directory is refused unless ``force``; when forced, a
    previous ``report.json`` is removed first, so the directory never pairs an
    old report with new plots if this run stops half-way.
    """
    from .report import StudyOutput

    out = StudyOutput(out_dir, force=force)
    old = out.path("report.json")
    if force and old.exists():
        old.unlink()
    return out

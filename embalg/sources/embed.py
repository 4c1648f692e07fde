"""``embed``: texts to unit vectors through a provider, with deduplication and a cache.

One path for every provider: validate the texts, resolve the model string to a
provider object, embed each distinct text once, look it up in the cache, send
only the misses to the provider, and write every batch the provider returns
into the cache (committed per batch, so a killed run resumes and re-pays only
the batches that were in flight) and into the output.

Providers (``embalg.sources.local.LocalEmbedder``,
``embalg.sources.openai_embedder.OpenAIEmbedder``) share one small interface:
``.provider``, ``.model``, ``.dimensions``, ``validate_texts(texts)`` (called
with the texts the provider will be sent, before any is sent; raises on a text
it cannot take, may return per-text token counts) and ``embed_texts(texts, on_result, progress=None)``, which
calls ``on_result(indices, rows)`` after each batch with indices into
``texts`` and float32 unit rows.
"""
from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence

import numpy as np

from ..progress import progress_bar
from ..validation import check_positive_int

logger = logging.getLogger(__name__)

#: model prefix -> "module:class" of the provider (imported on first use)
PROVIDERS = {
    "local": "embalg.sources.local:LocalEmbedder",
    "openai": "embalg.sources.openai_embedder:OpenAIEmbedder",
}

DEFAULT_MODEL = "local:all-MiniLM-L6-v2"


class _DefaultCache:
    """Sentinel: "the default cache file" (see ``embalg.sources.cache.default_cache_path``)."""

    def __repr__(self) -> str:
        return "<default cache>"


DEFAULT_CACHE = _DefaultCache()


def validate_texts(texts, name: str = "texts") -> list[str]:
    """Check a sequence of texts; return it as a list.

    Every item must be a non-empty ``str``; the first bad item raises, naming
    its index. A single string is refused (it would be embedded character by
    character).

    Raises
    ------
    TypeError
        ``texts`` is a string, not a sequence, or holds a non-string.
    ValueError
        ``texts`` is empty, or holds an empty string.
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{name} must be a list of strings, got a single {type(texts).__name__}; "
                        f"wrap it in a list: [{name}]")
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    if not isinstance(texts, Sequence):
        try:
            texts = list(texts)
        except TypeError:
            raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}") from None
    texts = list(texts)
    if not texts:
        raise ValueError(f"{name} is empty; there is nothing to embed")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] is {type(t).__name__} ({t!r:.60}); every text must be a str")
        if not t:
            raise ValueError(f"{name}[{i}] is an empty string; embedding models reject empty "
                             "inputs, drop it or replace it with a placeholder")
    return texts


def parse_model(model: str) -> tuple[str, str]:
    """Split ``"provider:name"`` into ``(provider, name)``.

    >>> parse_model("openai:text-embedding-3-small")
    ('openai', 'text-embedding-3-small')
    >>> parse_model("local:all-MiniLM-L6-v2")
    ('local', 'all-MiniLM-L6-v2')
    """
    if not isinstance(model, str):
        raise TypeError(f"model must be a string like {DEFAULT_MODEL!r}, got {type(model).__name__}")
    prefix, sep, name = model.partition(":")
    if not sep or prefix not in PROVIDERS or not name:
        known = ", ".join(f"'{p}:<name>'" for p in PROVIDERS)
        raise ValueError(f"model {model!r} is not understood; use one of {known} "
                         f"(e.g. {DEFAULT_MODEL!r} or 'openai:text-embedding-3-small')")
    return prefix, name


def make_embedder(model: str = DEFAULT_MODEL, *, dimensions=None, batch_size=None, **options):
    """The provider object for ``model`` (cheap: no model is loaded, no request is sent).

    ``options`` are passed to the provider class (e.g. ``device`` for local
    models, truncation options for OpenAI models).
    """
    prefix, name = parse_model(model)
    if dimensions is not None:
        dimensions = check_positive_int(dimensions, "dimensions")
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
    module_name, cls_name = PROVIDERS[prefix].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(name, dimensions=dimensions, batch_size=batch_size, **options)


def _open_cache(cache):
    """``(cache_object_or_None, owned)`` for the ``cache`` argument."""
    if cache is None:
        return None, False
    from .cache import EmbeddingCache, default_cache_path

    if cache is DEFAULT_CACHE:
        return EmbeddingCache(default_cache_path()), True
    if isinstance(cache, (str, os.PathLike)):
        return EmbeddingCache(cache), True
    if all(hasattr(cache, m) for m in ("get_many", "put_many")):
        return cache, False
    raise TypeError(f"cache must be None, a path or an EmbeddingCache, got {type(cache).__name__}")


def embed(texts, *, model=DEFAULT_MODEL, dimensions=None, cache=DEFAULT_CACHE, batch_size=None,
          progress=None) -> np.ndarray:
    """Embed texts as float32 unit vectors, in input order.

    Parameters
    ----------
    texts : sequence of str, length n
        Non-empty strings. Checked before any work: an empty string or a
        non-string raises, naming its index.
    model : str or provider object, default ``"local:all-MiniLM-L6-v2"``
        ``"local:<sentence-transformers model>"`` (a name, or a local
        directory; loaded offline, see :class:`embalg.sources.local.LocalEmbedder`)
        or ``"openai:<model>"`` (``text-embedding-3-small``, ``-3-large``,
        ``text-embedding-ada-002``; key and base URL from ``OPENAI_API_KEY`` /
        ``OPENAI_BASE_URL``). An object with the provider interface (see
        :mod:`embalg.sources.embed`) is used as is.
    dimensions : int, optional
        Output dimension; ``None`` is the model's native one. OpenAI
        text-embedding-3 models shorten server-side; local models keep the
        first ``dimensions`` coordinates and renormalize.
    cache : path, EmbeddingCache or None
        Default: the SQLite cache at ``embalg.sources.cache.default_cache_path()``.
        A path opens (and closes) a cache there; an open ``EmbeddingCache`` is
        used as is; ``None`` disables caching.
    batch_size : int, optional
        Texts per provider batch (provider default when ``None``).
    progress : bool, optional
        Progress bar; ``None`` shows one when stderr is a terminal.

    Returns
    -------
    ndarray, float32, shape (n, d)
        Row ``i`` is the unit-norm embedding of ``texts[i]``.

    Notes
    -----
    Each distinct text is embedded once: duplicates share one provider call
    and one cache entry. Local models truncate texts longer than their
    ``max_seq_length`` (256 word pieces for all-MiniLM-L6-v2; the count is
    logged at INFO); OpenAI models refuse inputs over 8191 tokens unless the
    provider was made with ``truncate="truncate"`` or ``"chunk_average"``.
    Cache entries are keyed by (provider, model, dimensions, SHA-256 of the
    text), and each provider batch is committed as soon as it arrives.

    Raises
    ------
    TypeError
        ``texts`` is not a sequence of ``str``; ``model`` is not a string.
    ValueError
        Empty ``texts`` or an empty string; unknown model prefix; a text the
        provider cannot take (e.g. over 8191 tokens for OpenAI without
        truncation); a model that is not available offline.

    Examples
    --------
    Any object with the provider interface can stand in for a model string:

    >>> import numpy as np
    >>> class Letters:
    ...     provider, model, dimensions = "demo", "letters", None
    ...     def validate_texts(self, texts):
    ...         pass
    ...     def embed_texts(self, texts, on_result, progress=None):
    ...         rows = np.array([[t.count("a"), t.count("b")] for t in texts], np.float32)
    ...         on_result(np.arange(len(texts)), rows / np.linalg.norm(rows, axis=1, keepdims=True))
    >>> embed(["ab", "aab", "ab"], model=Letters(), cache=None).round(3)
    array([[0.707, 0.707],
           [0.894, 0.447],
           [0.707, 0.707]], dtype=float32)
    """
    texts = validate_texts(texts)
    if hasattr(model, "embed_texts"):
        if dimensions is not None or batch_size is not None:
            raise ValueError("dimensions and batch_size belong to the provider object passed as "
                             "model; set them when creating it")
        embedder = model
    else:
        embedder = make_embedder(model, dimensions=dimensions, batch_size=batch_size)
    return _embed_checked(embedder, texts, cache, progress, None)


def embed_with(embedder, texts, *, cache=DEFAULT_CACHE, progress=None, cost=None) -> np.ndarray:
    """:func:`embed` with a ready provider object (used by ``embalg embed``).

    When the provider's ``validate_texts`` returns per-text token counts
    (OpenAI does), the progress bar shows the tokens sent so far, and, when
    ``cost`` is given, ``cost(tokens)`` in US dollars.
    """
    return _embed_checked(embedder, validate_texts(texts), cache, progress, cost)


def _embed_checked(embedder, texts: list[str], cache, progress, cost) -> np.ndarray:
    """The one path of :func:`embed` and :func:`embed_with`; ``texts`` are checked."""
    first: dict[str, int] = {}
    inverse = np.fromiter((first.setdefault(t, len(first)) for t in texts), dtype=np.int64,
                          count=len(texts))
    unique = list(first)
    del first
    if len(unique) < len(texts):
        logger.info("%d texts, %d distinct: each distinct text is embedded once",
                    len(texts), len(unique))

    store, owned = _open_cache(cache)
    key = (embedder.provider, embedder.model, embedder.dimensions or 0)
    out = _Output(len(unique))
    bar = progress_bar(len(texts), desc=f"embed {embedder.provider}:{embedder.model}",
                       unit="text", progress=progress)
    counts = np.bincount(inverse, minlength=len(unique))
    try:
        if store is not None:
            hits = store.get_many(*key, unique)
            if hits:
                hit_idx = np.fromiter(hits.keys(), dtype=np.int64, count=len(hits))
                out.put(hit_idx, np.stack([np.asarray(v, np.float32) for v in hits.values()]))
                bar.update(int(counts[hit_idx].sum()))
                logger.info("cache: %d of %d distinct texts already embedded", len(hits), len(unique))
            misses = np.flatnonzero(~out.filled)
        else:
            misses = np.arange(len(unique))
        miss_texts = [unique[i] for i in misses]
        # the provider's own checks (e.g. token limits) run on what it will be sent, before
        # anything is sent; OpenAI returns token counts, shown on the progress bar
        tokens = embedder.validate_texts(miss_texts) if miss_texts else None
        if tokens is not None:
            tokens = np.asarray(tokens, dtype=np.int64)
            if tokens.shape != (len(miss_texts),):
                tokens = None
        if tokens is not None:
            total = int(tokens.sum())
            logger.info("%d distinct texts to embed, %d tokens%s", len(miss_texts), total,
                        f", estimated ${cost(total):.4f}" if cost is not None else "")
        sent = [0]

        def on_result(indices, rows):
            indices = np.asarray(indices, dtype=np.int64)
            rows = np.asarray(rows, dtype=np.float32)
            if rows.shape[0] != indices.shape[0]:
                raise ValueError(f"provider returned {rows.shape[0]} rows for {indices.shape[0]} texts")
            norms = np.linalg.norm(rows, axis=1)
            if not np.all(np.abs(norms - 1) < 1e-3):  # also catches NaN/inf
                bad = int(np.flatnonzero(~(np.abs(norms - 1) < 1e-3))[0])
                raise ValueError(f"provider {embedder.provider}:{embedder.model} returned a row of "
                                 f"norm {norms[bad]} (not a finite unit vector)")
            targets = misses[indices]
            if store is not None:
                store.put_many(*key, [unique[i] for i in targets], rows)
            out.put(targets, rows)
            bar.update(int(counts[targets].sum()))
            if tokens is not None:
                sent[0] += int(tokens[indices].sum())
                info = {"tokens": sent[0]}
                if cost is not None:
                    info["cost"] = f"${cost(sent[0]):.4f}"
                bar.set_postfix(info, refresh=False)

        if miss_texts:
            embedder.embed_texts(miss_texts, on_result, progress=False)
    finally:
        bar.close()
        if owned:
            store.close()
    if not out.filled.all():
        missing = int(np.flatnonzero(~out.filled)[0])
        raise RuntimeError(f"provider {embedder.provider}:{embedder.model} returned no vector for "
                           f"{int((~out.filled).sum())} texts (first: {unique[missing]!r:.80})")
    result = out.rows
    if len(unique) == len(texts):  # no duplicates: inverse is the identity
        return result
    return result[inverse]


class _Output:
    """Rows of the distinct texts, allocated when the first row tells the dimension."""

    def __init__(self, n: int):
        self.n = n
        self.rows = None
        self.filled = np.zeros(n, dtype=bool)

    def put(self, indices, rows: np.ndarray) -> None:
        if rows.ndim != 2:
            raise ValueError(f"provider returned rows of shape {rows.shape}, expected (k, d)")
        if self.rows is None:
            self.rows = np.empty((self.n, rows.shape[1]), dtype=np.float32)
        elif rows.shape[1] != self.rows.shape[1]:
            raise ValueError(f"got vectors of dimension {rows.shape[1]} after {self.rows.shape[1]}; "
                             "the cache or provider mixes dimensions")
        self.rows[indices] = rows
        self.filled[indices] = True


__all__ = ["embed", "embed_with", "make_embedder", "parse_model", "validate_texts",
           "DEFAULT_MODEL", "DEFAULT_CACHE", "PROVIDERS"]

"""A persistent embedding cache: SQLite in WAL mode, one float32 blob per text.

Rows are keyed by ``(provider, model, dimensions, text_sha256)``: ``dimensions``
is the requested output size (``0`` means the model's native size) and
``text_sha256`` is the SHA-256 of the text's UTF-8 bytes, so texts themselves
are never stored. Each :meth:`EmbeddingCache.put_many` call is one committed
transaction, so a job killed at any moment loses only what it had not yet
handed to the cache, and the next run re-pays only that.

Concurrency: one connection guarded by a lock, shared by the caller and at most
one writer thread; other processes may open the same file (SQLite's WAL lets
readers run beside one writer, ``busy_timeout`` waits for the lock).
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path

import numpy as np

#: bump when the table layout changes; a file with another version is refused
SCHEMA_VERSION = 1
PAGE_SIZE = 65536
_QUERY_CHUNK = 500  # keys per "IN (...)" query, far below SQLite's variable limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    dimensions INTEGER NOT NULL,
    text_sha256 BLOB NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (provider, model, dimensions, text_sha256)
)
"""


def default_cache_path(environ=None) -> Path:
    """Where the cache lives unless the caller says otherwise.

    ``$EMBALG_CACHE_DIR/embeddings.sqlite`` when that variable is set, else
    ``$XDG_CACHE_HOME/embalg/embeddings.sqlite``, else
    ``~/.cache/embalg/embeddings.sqlite``. ``environ`` (default ``os.environ``)
    is the mapping the variables are read from.

    Examples
    --------
    >>> str(default_cache_path({"EMBALG_CACHE_DIR": "/data/emb"}))
    '/data/emb/embeddings.sqlite'
    >>> str(default_cache_path({"XDG_CACHE_HOME": "/var/cache/me"}))
    '/var/cache/me/embalg/embeddings.sqlite'
    """
    env = os.environ if environ is None else environ
    override = env.get("EMBALG_CACHE_DIR")
    if override:
        return Path(override).expanduser() / "embeddings.sqlite"
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "embalg" / "embeddings.sqlite"


def text_sha256(text: str) -> bytes:
    """SHA-256 digest (32 bytes) of ``text`` encoded as UTF-8 (lone surrogates passed through)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _check_key(provider, model, dimensions) -> int:
    if not isinstance(provider, str) or not provider:
        raise TypeError(f"provider must be a non-empty str, got {provider!r}")
    if not isinstance(model, str) or not model:
        raise TypeError(f"model must be a non-empty str, got {model!r}")
    if dimensions is None:
        return 0
    if isinstance(dimensions, bool) or not isinstance(dimensions, (int, np.integer)) or dimensions < 0:
        raise ValueError(f"dimensions must be None, 0 (native) or a positive int, got {dimensions!r}")
    return int(dimensions)


class EmbeddingCache:
    """Embedding vectors on disk, keyed by provider, model, requested dimensions and text hash.

    Parameters
    ----------
    path : str or os.PathLike
        The SQLite file; created (with its parent directory) when missing.

    Raises
    ------
    ValueError
        ``path`` exists but is not an embalg cache (not SQLite, or another schema version).

    Examples
    --------
    >>> import tempfile, os, numpy as np
    >>> d = tempfile.mkdtemp()
    >>> with EmbeddingCache(os.path.join(d, "c.sqlite")) as cache:
    ...     cache.put_many("openai", "m", None, ["a", "b"], np.eye(2, dtype=np.float32))
    ...     hits = cache.get_many("openai", "m", None, ["b", "zzz", "a"])
    ...     sorted(hits), hits[0].tolist()
    ([0, 2], [0.0, 1.0])
    """

    def __init__(self, path):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None,
                                         check_same_thread=False)
            self._setup()
        except sqlite3.DatabaseError as exc:
            conn = getattr(self, "_conn", None)
            if conn is not None:
                conn.close()
            raise ValueError(f"{self.path} is not a usable embalg embedding cache ({exc})") from None

    def _setup(self) -> None:
        c = self._conn
        c.execute("PRAGMA busy_timeout = 60000")
        # 64 KiB pages (only takes effect when the file is new): a 1536-d float32 row
        # (6 KiB) then fits in a page instead of an overflow chain; puts run ~3x faster.
        c.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # pragma: no cover - e.g. a network filesystem
            raise sqlite3.DatabaseError(f"could not switch to WAL mode (got {mode!r})")
        # NORMAL in WAL mode: a committed transaction survives a killed process
        # (only an OS crash or power loss may drop the last few).
        c.execute("PRAGMA synchronous = NORMAL")
        version = c.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if version == 0 and not tables:
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute(_SCHEMA)
                c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
        elif version != SCHEMA_VERSION or "embeddings" not in tables:
            raise sqlite3.DatabaseError(
                f"schema version {version} with tables {sorted(tables)}; expected version "
                f"{SCHEMA_VERSION} with an 'embeddings' table")

    # -- context manager -------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent). Everything put so far is already committed."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError(f"the embedding cache {self.path} is closed")
        return self._conn

    # -- reads and writes --------------------------------------------------------------
    def get_many(self, provider: str, model: str, dimensions, texts) -> dict[int, np.ndarray]:
        """Cached vectors for ``texts``.

        Parameters
        ----------
        provider, model : str
            E.g. ``"openai"``, ``"text-embedding-3-small"``.
        dimensions : int or None
            Requested output size; ``None`` or ``0`` means native.
        texts : sequence of str

        Returns
        -------
        dict of int to numpy.ndarray
            ``{i: vector}`` for every ``i`` whose ``texts[i]`` is cached; each vector is
            float32, shape ``(dim,)``. Misses are absent.
        """
        dims = _check_key(provider, model, dimensions)
        digests = [text_sha256(t) for t in texts]
        where: dict[bytes, list[int]] = {}
        for i, h in enumerate(digests):
            where.setdefault(h, []).append(i)
        keys = list(where)
        out: dict[int, np.ndarray] = {}
        with self._lock:
            conn = self._connection()
            for start in range(0, len(keys), _QUERY_CHUNK):
                chunk = keys[start:start + _QUERY_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    "SELECT text_sha256, dim, vector FROM embeddings WHERE provider = ? AND model = ? "
                    f"AND dimensions = ? AND text_sha256 IN ({marks})",
                    (provider, model, dims, *chunk)).fetchall()
                for h, dim, blob in rows:
                    vec = self._decode(blob, dim, provider, model, dims)
                    for i in where[bytes(h)]:
                        out[i] = vec
        return out

    def _decode(self, blob, dim, provider, model, dims) -> np.ndarray:
        if len(blob) != 4 * dim:
            raise ValueError(f"corrupt row in {self.path} for {provider}/{model}/{dims}: "
                             f"{len(blob)} bytes for dim {dim}; delete the cache file")
        return np.frombuffer(blob, dtype="<f4").astype(np.float32, copy=False)

    def put_many(self, provider: str, model: str, dimensions, texts, vectors) -> None:
        """Store ``vectors[i]`` for ``texts[i]`` and commit (one transaction per call).

        Parameters
        ----------
        texts : sequence of str, length n
        vectors : array_like, shape (n, d)
            Stored as little-endian float32; must be finite.

        Raises
        ------
        ValueError
            Length mismatch, not 2-D, or non-finite values.
        """
        dims = _check_key(provider, model, dimensions)
        texts = list(texts)
        vecs = np.ascontiguousarray(vectors, dtype="<f4")
        if vecs.ndim != 2 or vecs.shape[0] != len(texts):
            raise ValueError(f"vectors must have shape (len(texts), d) = ({len(texts)}, d), "
                             f"got {vecs.shape}")
        if not np.isfinite(vecs).all():
            raise ValueError("vectors contain NaN or inf; refusing to cache them")
        dim = int(vecs.shape[1])
        rows = [(provider, model, dims, text_sha256(t), dim, vecs[i].tobytes())
                for i, t in enumerate(texts)]
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?, ?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # -- inspection -------------------------------------------------------------------
    def stats(self) -> dict:
        """Counts and sizes.

        Returns
        -------
        dict
            ``{"path": str, "file_bytes": int (database + WAL), "rows": int,
            "groups": [{"provider", "model", "dimensions", "dim", "rows"}, ...]}``.
        """
        with self._lock:
            groups = self._connection().execute(
                "SELECT provider, model, dimensions, dim, COUNT(*) FROM embeddings "
                "GROUP BY provider, model, dimensions, dim ORDER BY provider, model, dimensions").fetchall()
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        return {
            "path": str(self.path),
            "file_bytes": size,
            "rows": sum(g[4] for g in groups),
            "groups": [{"provider": p, "model": m, "dimensions": d, "dim": dim, "rows": n}
                       for p, m, d, dim, n in groups],
        }

    def export(self, provider=None, model=None, dimensions=None) -> tuple[list[str], np.ndarray]:
        """All cached vectors matching the filters, as ``(sha256 hex list, float32 (n, dim))``.

        ``None`` filters nothing; the matching rows must share one vector size.

        Raises
        ------
        ValueError
            The matching rows have different vector sizes (narrow the filters).
        """
        clauses, params = [], []
        for col, val in (("provider", provider), ("model", model)):
            if val is not None:
                clauses.append(f"{col} = ?")
                params.append(val)
        if dimensions is not None:
            clauses.append("dimensions = ?")
            params.append(_check_key("x", "x", dimensions))
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self._lock:
            conn = self._connection()
            sizes = conn.execute(f"SELECT DISTINCT dim FROM embeddings{where}", params).fetchall()
            if len(sizes) > 1:
                raise ValueError(f"the rows matching provider={provider!r} model={model!r} "
                                 f"dimensions={dimensions!r} have different sizes "
                                 f"{sorted(s[0] for s in sizes)}; pass model= and dimensions=")
            rows = conn.execute(f"SELECT text_sha256, dim, vector FROM embeddings{where} "
                                "ORDER BY provider, model, dimensions, text_sha256", params).fetchall()
        dim = sizes[0][0] if sizes else 0
        out = np.empty((len(rows), dim), dtype=np.float32)
        hashes = []
        for k, (h, d, blob) in enumerate(rows):
            out[k] = self._decode(blob, d, provider, model, dimensions)
            hashes.append(bytes(h).hex())
        return hashes, out

"""``load_vectors`` / ``save_vectors``: vector files chosen by extension.

=========== ============================================================
extension   content
=========== ============================================================
``.npy``    the (n, d) array only; opened memory-mapped (large files are
            not read into memory); ids, texts and model are not stored
``.parquet`` columns ``id``, ``text`` (when given), ``vector``
            (``fixed_size_list<float32>[d]``); schema metadata
            ``embalg.model``, ``embalg.dimensions``
``.jsonl``  ``{"id", "text", "vector"}`` per line
=========== ============================================================

Every writer is atomic (temporary file + rename). Every reader checks what
it reads: corrupt or truncated files, missing columns, ragged vectors, NaN or
inf values and a dimension that differs from the metadata raise
``ValueError`` naming the file and the row or line.
"""
from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..validation import as_vectors, first_nonfinite_row
from .npy import open_npy, save_npy

logger = logging.getLogger(__name__)

SUFFIXES = (".npy", ".parquet", ".jsonl")

#: rows checked for NaN/inf at a time (bounds memory on memory-mapped files)
_CHECK_ROWS = 1 << 16


@dataclass
class VectorTable:
    """Everything a vector file holds; ``ids``/``texts``/``model`` may be ``None``."""

    vectors: np.ndarray
    ids: list | None
    texts: list | None
    model: str | None
    dimensions: int


def _suffix(path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: vector files must end in one of {', '.join(SUFFIXES)}, "
                         f"got {suffix or 'no extension'!r}")
    return suffix


def _check_finite_rows(vectors: np.ndarray, what: str) -> None:
    for start in range(0, vectors.shape[0], _CHECK_ROWS):
        row = first_nonfinite_row(np.asarray(vectors[start:start + _CHECK_ROWS]))
        if row >= 0:
            raise ValueError(f"{what} holds NaN or inf (first at row {start + row}); "
                             "embeddings must be finite")


def load_vector_table(path, *, mmap: bool = True) -> VectorTable:
    """Read a vector file with its ids, texts and metadata (see the module docstring).

    Parameters
    ----------
    path : str or Path
        ``.npy``, ``.parquet`` or ``.jsonl``.
    mmap : bool
        Memory-map ``.npy`` files (read-only) instead of reading them.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Unsupported extension, corrupt/truncated file, missing ``vector``
        column, ragged vectors, NaN/inf, dimension mismatch with metadata.
    """
    suffix = _suffix(path)
    if not Path(path).exists():
        raise FileNotFoundError(f"no such vector file: {path}")
    if suffix == ".npy":
        vectors = open_npy(path, mmap=mmap)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        info = {"vectors": vectors, "ids": None, "texts": None, "model": None,
                "dimensions": vectors.shape[1]}
    elif suffix == ".parquet":
        from .parquet import read_parquet

        info = read_parquet(path)
    else:
        from .jsonl import read_jsonl

        info = read_jsonl(path)
    _check_finite_rows(info["vectors"], str(path))
    return VectorTable(**info)


def load_vectors(path, *, mmap: bool = True) -> np.ndarray:
    """The (n, d) vectors of a ``.npy``, ``.parquet`` or ``.jsonl`` vector file, checked.

    ``.npy`` files keep their float dtype and are memory-mapped read-only
    (``mmap=False`` reads them); Parquet and JSONL give float32. See
    :func:`load_vector_table` for ids, texts and the model name, and for the
    errors raised.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "v.jsonl"
    >>> save_vectors(p, np.eye(2, 3, dtype=np.float32), texts=["a", "b"])
    >>> load_vectors(p)
    array([[1., 0., 0.],
           [0., 1., 0.]], dtype=float32)
    """
    return load_vector_table(path, mmap=mmap).vectors


def save_vectors(path, vectors, *, ids=None, texts=None, model=None, dimensions=None) -> None:
    """Write vectors atomically; the format follows the extension of ``path``.

    Parameters
    ----------
    path : str or Path
        Ends in ``.npy``, ``.parquet`` or ``.jsonl``.
    vectors : array_like, shape (n, d)
        Finite floats; Parquet and JSONL store float32, ``.npy`` keeps the
        dtype.
    ids : sequence of int or str, length n, optional
        Row ids (default ``0..n-1``); not stored in ``.npy``.
    texts : sequence of str, length n, optional
        The embedded texts; not stored in ``.npy``.
    model : str, optional
        Model name, kept in Parquet metadata (``embalg.model``).
    dimensions : int, optional
        Must equal ``d`` when given; kept in Parquet metadata.

    Raises
    ------
    ValueError
        Unsupported extension; not (n, d); NaN/inf; ``ids``/``texts`` of the
        wrong length; ``dimensions`` differs from ``d``.
    TypeError
        Non-float vectors; non-string texts.
    """
    suffix = _suffix(path)
    x, _ = as_vectors(vectors, "vectors", allow_1d=False)
    n, d = x.shape
    _check_finite_rows(x, "vectors")
    if dimensions is not None:
        if isinstance(dimensions, bool) or not isinstance(dimensions, numbers.Integral) \
                or dimensions != d:
            raise ValueError(f"dimensions={dimensions!r} but the vectors have d={d}")
    if ids is not None:
        ids = list(ids.tolist() if isinstance(ids, np.ndarray) else ids)
        if len(ids) != n:
            raise ValueError(f"ids has {len(ids)} entries for {n} vectors")
    if texts is not None:
        texts = list(texts)
        if len(texts) != n:
            raise ValueError(f"texts has {len(texts)} entries for {n} vectors")
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"texts[{bad}] is {type(texts[bad]).__name__}; texts must be strings")
    if suffix == ".npy":
        if ids is not None or texts is not None or model is not None:
            logger.info("%s: .npy files hold the vectors only; ids, texts and model are not stored",
                        path)
        save_npy(path, x)
    elif suffix == ".parquet":
        from .parquet import write_parquet

        write_parquet(path, x, ids, texts, model, d)
    else:
        from .jsonl import write_jsonl

        write_jsonl(path, x.astype(np.float32, copy=False), ids, texts)


__all__ = ["load_vectors", "load_vector_table", "save_vectors", "VectorTable", "SUFFIXES"]

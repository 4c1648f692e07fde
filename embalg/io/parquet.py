"""Parquet vector files (pyarrow): columns ``id``, ``text``, ``vector``.

``vector`` is a ``fixed_size_list<float32>[d]``; ``id`` is int64 (or string);
``text`` (string) is present when texts were given. The schema metadata holds
``embalg.model`` and ``embalg.dimensions``. pyarrow is imported on first use.
"""
from __future__ import annotations

import numpy as np

from ..atomic import atomic_path

#: rows per Parquet row group when writing
ROW_GROUP = 65536

META_MODEL = b"embalg.model"
META_DIMENSIONS = b"embalg.dimensions"


def read_table(path, columns=None):
    """``pyarrow.Table`` of ``path``; a corrupt or truncated file raises ``ValueError``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path} is not a readable Parquet file (truncated or corrupt?): {exc}") from None


def write_parquet(path, vectors: np.ndarray, ids, texts, model, dimensions) -> None:
    """Write checked ``vectors`` (float32, (n, d)) with ``ids``/``texts`` atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, d = vectors.shape
    ids_array = pa.array(ids if ids is not None else np.arange(n, dtype=np.int64))
    fields = [pa.field("id", ids_array.type, nullable=False)]
    if texts is not None:
        fields.append(pa.field("text", pa.string(), nullable=False))
    fields.append(pa.field("vector", pa.list_(pa.float32(), d), nullable=False))
    meta = {META_MODEL: (model or "").encode(), META_DIMENSIONS: str(dimensions or d).encode()}
    schema = pa.schema(fields, metadata=meta)
    with atomic_path(path, suffix=".parquet") as tmp:
        with pq.ParquetWriter(tmp, schema) as writer:
            for start in range(0, max(n, 1), ROW_GROUP):
                stop = min(start + ROW_GROUP, n)
                flat = np.ascontiguousarray(vectors[start:stop], dtype=np.float32).reshape(-1)
                columns = [ids_array.slice(start, stop - start)]
                if texts is not None:
                    columns.append(pa.array(texts[start:stop], type=pa.string()))
                columns.append(pa.FixedSizeListArray.from_arrays(pa.array(flat), d))
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def read_parquet(path) -> dict:
    """``{"vectors", "ids", "texts", "model", "dimensions"}`` of a Parquet vector file, checked.

    Raises
    ------
    ValueError
        Corrupt/truncated file; no ``vector`` column; a vector column that is
        not a list of floats; null or ragged vectors (naming the first bad
        row); a dimension that differs from ``embalg.dimensions``.
    """
    import pyarrow as pa

    table = read_table(path)
    if "vector" not in table.column_names:
        raise ValueError(f"{path} has no 'vector' column (columns: {table.column_names}); "
                         "expected columns id, text, vector")
    column = table.column("vector").combine_chunks()
    t = column.type
    if not (pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t)) \
            or not pa.types.is_floating(t.value_type):
        raise ValueError(f"{path} column 'vector' has type {t}; expected a list of floats")
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"{path} row {row}: vector is null")
    n = len(column)
    if pa.types.is_fixed_size_list(t):
        d = t.list_size
    else:
        lengths = column.value_lengths().to_numpy(zero_copy_only=False)
        d = int(lengths[0]) if n else 0
        ragged = np.flatnonzero(lengths != d)
        if ragged.size:
            r = int(ragged[0])
            raise ValueError(f"{path} has ragged vectors: row {r} has {lengths[r]} values, row 0 has {d}")
    values = column.flatten()
    if values.null_count:
        raise ValueError(f"{path} holds null values inside vectors")
    vectors = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(n, d)
    meta = table.schema.metadata or {}
    dims_meta = meta.get(META_DIMENSIONS)
    if dims_meta is not None:
        try:
            declared = int(dims_meta)
        except ValueError:
            raise ValueError(f"{path} metadata embalg.dimensions={dims_meta!r} is not an integer") from None
        if declared != d:
            raise ValueError(f"{path} metadata says embalg.dimensions={declared}, "
                             f"but the vectors have {d} values")
    texts = table.column("text").to_pylist() if "text" in table.column_names else None
    ids = table.column("id").to_pylist() if "id" in table.column_names else None
    model = meta.get(META_MODEL, b"").decode() or None
    return {"vectors": vectors, "ids": ids, "texts": texts, "model": model,
            "dimensions": d}


__all__ = ["read_table", "write_parquet", "read_parquet"]

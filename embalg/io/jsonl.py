"""JSONL vector files: one ``{"id": ..., "text": ..., "vector": [...]}`` object per line.

Floats are written with 9 significant digits, which round-trips float32
exactly. ``text`` is omitted when no texts were given; JSONL has no place for
file metadata, so the model name is not stored (use Parquet for that).
"""
from __future__ import annotations

import json
import os

import numpy as np

from ..atomic import atomic_path


def write_jsonl(path, vectors: np.ndarray, ids, texts) -> None:
    """Write checked ``vectors`` (float32, (n, d)) with ``ids``/``texts`` atomically."""
    n, d = vectors.shape
    fmt = "[" + ",".join(["%.9g"] * d) + "]"
    with atomic_path(path, suffix=".jsonl") as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for i in range(n):
                head = {"id": ids[i] if ids is not None else i}
                if texts is not None:
                    head["text"] = texts[i]
                prefix = json.dumps(head, ensure_ascii=False)[:-1]
                f.write(f'{prefix}, "vector": {fmt % tuple(vectors[i].tolist())}}}\n')
            f.flush()
            os.fsync(f.fileno())


def iter_objects(path, field: str, example: str):
    """Yield ``(line_number, object)`` for each non-blank line of a JSONL file.

    Every line must be UTF-8 JSON (a leading BOM is allowed) holding an object
    with ``field``; otherwise ``ValueError`` names the file and the line
    (``example`` shows the expected shape).
    """
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path} is not valid UTF-8: line {lineno}, byte column "
                                 f"{exc.start + 1} ({exc.reason})") from None
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} line {lineno} is not valid JSON ({exc.msg}); "
                                 "a truncated or corrupt file?") from None
            if not isinstance(obj, dict) or field not in obj:
                raise ValueError(f"{path} line {lineno} has no \"{field}\" field; each line must be "
                                 f"an object like {example}")
            yield lineno, obj


def read_jsonl(path) -> dict:
    """``{"vectors", "ids", "texts", "model", "dimensions"}`` of a JSONL vector file, checked.

    Raises
    ------
    ValueError
        Not UTF-8; a line that is not a JSON object (a truncated last line
        included); a missing or non-numeric ``vector``; a vector whose length
        differs from the first line's (naming both lines); no vectors.
    """
    rows, ids, texts = [], [], []
    d = None
    for lineno, obj in iter_objects(path, "vector", '{"id": ..., "text": ..., "vector": [...]}'):
        vec = obj["vector"]
        if not isinstance(vec, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in vec):
            raise ValueError(f"{path} line {lineno}: \"vector\" must be a list of numbers")
        if d is None:
            d, first_line = len(vec), lineno
        elif len(vec) != d:
            raise ValueError(f"{path} has ragged vectors: line {lineno} has {len(vec)} values, "
                             f"line {first_line} has {d}")
        rows.append(vec)
        ids.append(obj.get("id"))
        texts.append(obj.get("text"))
    if d is None:
        raise ValueError(f"{path} holds no vectors")
    vectors = np.asarray(rows, dtype=np.float32)
    return {"vectors": vectors, "ids": ids,
            "texts": texts if all(t is not None for t in texts) else None,
            "model": None, "dimensions": d}


__all__ = ["write_jsonl", "read_jsonl", "iter_objects"]

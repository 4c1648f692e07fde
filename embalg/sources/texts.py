"""Read texts to embed from a file: ``.txt``, ``.jsonl``, ``.parquet``, or ``-`` (stdin).

Formats
-------
``.txt`` (and ``-``, standard input)
    One text per line, UTF-8 (strict; a leading BOM is dropped); ``\\n`` or
    ``\\r\\n`` line ends. The final newline is optional. An empty line is an
    error naming it (embedding models reject empty texts). Ids are the line
    numbers, from 1.
``.jsonl``
    One JSON object per line with a string field ``"text"`` and, optionally,
    ``"id"`` (int or str, the same type on every line); blank lines are
    skipped.
``.parquet``
    A string column ``text`` and, optionally, ``id``.

Every problem (bad UTF-8 bytes, broken JSON, missing field, empty or null
text) raises ``ValueError`` naming the file and the line or row, before
anything is embedded.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMATS = (".txt", ".jsonl", ".parquet", "-")


@dataclass
class TextsFile:
    """Texts read from a file, with their ids (``ids[i]`` names ``texts[i]``)."""

    texts: list[str]
    ids: list


def read_texts(source) -> TextsFile:
    """Read texts (and ids) from ``source``: a path ending ``.txt``/``.jsonl``/``.parquet``, or ``"-"``.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Unsupported extension; bad UTF-8 (naming line and column); empty
        text; broken JSON or a missing/non-string ``text`` field; no texts.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.txt"
    >>> _ = p.write_text("first text\\nsecond text\\n", encoding="utf-8")
    >>> read_texts(p).texts
    ['first text', 'second text']
    """
    if str(source) == "-":
        return _parse_txt(sys.stdin.buffer.read(), "<stdin>")
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot read texts from {path}: the extension must be one of "
                         f"{', '.join(FORMATS[:-1])} (or '-' for standard input)")
    if not path.exists():
        raise FileNotFoundError(f"no such input file: {path}")
    if suffix == ".parquet":
        result = _read_parquet(path)
    elif suffix == ".jsonl":
        result = _read_jsonl(path)
    else:
        result = _parse_txt(path.read_bytes(), str(path))
    if not result.texts:
        raise ValueError(f"{path} holds no texts")
    return result


def _decode(data: bytes, name: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ValueError(f"{name} is not valid UTF-8: line {line}, byte column {column} "
                         f"({exc.reason}, byte {data[exc.start:exc.start + 1]!r}); re-encode the "
                         "file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
    return text[1:] if text.startswith("\ufeff") else text


def _parse_txt(data: bytes, name: str) -> TextsFile:
    text = _decode(data, name)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [s[:-1] if s.endswith("\r") else s for s in lines]
    for i, s in enumerate(lines):
        if not s:
            raise ValueError(f"{name} line {i + 1} is empty; every line must hold one non-empty text")
    if not lines:
        raise ValueError(f"{name} holds no texts")
    return TextsFile(lines, list(range(1, len(lines) + 1)))


def _read_jsonl(path: Path) -> TextsFile:
    from ..io.jsonl import iter_objects

    texts, ids = [], []
    for lineno, obj in iter_objects(path, "text", '{"id": 1, "text": "..."}'):
        t = obj["text"]
        if not isinstance(t, str) or not t:
            raise ValueError(f"{path} line {lineno}: \"text\" must be a non-empty string, got {t!r:.60}")
        texts.append(t)
        ids.append(obj.get("id", lineno))
    _check_ids(ids, str(path))
    return TextsFile(texts, ids)


def _check_ids(ids: list, name: str) -> None:
    kinds = {type(i) for i in ids}
    if kinds and not (kinds <= {int} or kinds <= {str}):
        raise ValueError(f"{name}: ids must be all integers or all strings, got "
                         f"{sorted(k.__name__ for k in kinds)}")


def _read_parquet(path: Path) -> TextsFile:
    from ..io.parquet import read_table

    table = read_table(path, columns=None)
    if "text" not in table.column_names:
        raise ValueError(f"{path} has no 'text' column (columns: {table.column_names})")
    column = table.column("text")
    import pyarrow as pa

    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise ValueError(f"{path} column 'text' has type {column.type}; it must hold strings")
    texts = column.to_pylist()
    for i, t in enumerate(texts):
        if not t:
            raise ValueError(f"{path} row {i}: text is {'null' if t is None else 'empty'}")
    if "id" in table.column_names:
        ids = table.column("id").to_pylist()
        if any(i is None for i in ids):
            raise ValueError(f"{path} column 'id' holds nulls")
        _check_ids(ids, str(path))
    else:
        ids = np.arange(len(texts)).tolist()
    return TextsFile(texts, ids)


__all__ = ["read_texts", "TextsFile", "FORMATS"]

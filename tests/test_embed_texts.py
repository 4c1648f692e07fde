"""Reading texts to embed: .txt / .jsonl / .parquet / stdin, with UTF-8 and content checks."""
import io
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embalg.sources.texts import read_texts


def test_txt_lines_crlf_bom_and_no_final_newline(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes("\ufefffirst line\r\nsecond \u00e9\u4e2d\n  third with spaces  ".encode("utf-8"))
    got = read_texts(p)
    assert got.texts == ["first line", "second \u00e9\u4e2d", "  third with spaces  "]
    assert got.ids == [1, 2, 3]


def test_txt_keeps_unicode_line_separators_inside_a_text(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("a\u2028b\x0bc\nd\n", encoding="utf-8")
    assert read_texts(p).texts == ["a\u2028b\x0bc", "d"]


def test_txt_bad_utf8_names_line_and_column(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes(b"fine\nalso fine\nbad \xe9 latin-1\n")
    with pytest.raises(ValueError, match=r"not valid UTF-8: line 3, byte column 5"):
        read_texts(p)


def test_txt_empty_line_is_an_error(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("a\n\nb\n")
    with pytest.raises(ValueError, match="line 2 is empty"):
        read_texts(p)
    p.write_text("")
    with pytest.raises(ValueError, match="holds no texts"):
        read_texts(p)


def test_jsonl_texts_and_ids(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"id": "a", "text": "hello"}\n\n{"id": "b", "text": "world", "x": 1}\n')
    got = read_texts(p)
    assert got.texts == ["hello", "world"] and got.ids == ["a", "b"]
    p.write_text('{"text": "hello"}\n{"text": "world"}\n')
    assert read_texts(p).ids == [1, 2]  # line numbers when there is no id


@pytest.mark.parametrize("content, match", [
    ('{"text": "ok"}\n{"text": "cut', "line 2 is not valid JSON"),
    ('{"txt": "ok"}\n', 'line 1 has no "text" field'),
    ('{"text": ""}\n', r'line 1: "text" must be a non-empty string'),
    ('{"text": 5}\n', r'line 1: "text" must be a non-empty string'),
    ('{"id": 1, "text": "a"}\n{"id": "x", "text": "b"}\n', "all integers or all strings"),
])
def test_jsonl_errors(tmp_path, content, match):
    p = tmp_path / "t.jsonl"
    p.write_text(content)
    with pytest.raises(ValueError, match=match):
        read_texts(p)


def test_jsonl_bad_utf8(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_bytes(b'{"text": "ok"}\n{"text": "\xff"}\n')
    with pytest.raises(ValueError, match="line 2, byte column 11"):
        read_texts(p)


def test_parquet_texts(tmp_path):
    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": [10, 11], "text": ["a", "b"]}), p)
    got = read_texts(p)
    assert got.texts == ["a", "b"] and got.ids == [10, 11]
    pq.write_table(pa.table({"text": ["a", None]}), p)
    with pytest.raises(ValueError, match="row 1: text is null"):
        read_texts(p)
    pq.write_table(pa.table({"body": ["a"]}), p)
    with pytest.raises(ValueError, match="no 'text' column"):
        read_texts(p)
    pq.write_table(pa.table({"text": [1, 2]}), p)
    with pytest.raises(ValueError, match="must hold strings"):
        read_texts(p)
    p.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        read_texts(p)


def test_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"one\ntwo\n")))
    assert read_texts("-").texts == ["one", "two"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"one\n\x80\n")))
    with pytest.raises(ValueError, match="<stdin> is not valid UTF-8: line 2"):
        read_texts("-")


def test_unsupported_and_missing(tmp_path):
    with pytest.raises(ValueError, match=r"\.txt, \.jsonl, \.parquet"):
        read_texts(tmp_path / "t.csv")
    with pytest.raises(FileNotFoundError, match="no such input file"):
        read_texts(tmp_path / "t.txt")

"""Vector files: round trips in .npy / .parquet / .jsonl, atomic writes, and checked reads."""
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import embalg as ea
from embalg.io import load_vector_table


def unit(n, d, seed=0, dtype=np.float32):
    x = np.random.default_rng(seed).standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(dtype)


FORMATS = ["npy", "parquet", "jsonl"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("n, d", [(1, 1), (7, 384), (1001, 3)])
def test_round_trip_is_exact(tmp_path, fmt, n, d):
    v = unit(n, d, seed=n + d)
    texts = [f"text {i} \u00e9\u4e2d \"quoted\"\n" for i in range(n)]
    path = tmp_path / f"v.{fmt}"
    ea.save_vectors(path, v, ids=list(range(100, 100 + n)), texts=texts, model="local:m",
                    dimensions=d)
    table = load_vector_table(path)
    assert table.vectors.dtype == np.float32 and table.vectors.shape == (n, d)
    np.testing.assert_array_equal(table.vectors, v)  # bit-exact, JSONL included
    np.testing.assert_array_equal(ea.load_vectors(path), v)
    assert table.dimensions == d
    if fmt != "npy":
        assert table.ids == list(range(100, 100 + n))
        assert table.texts == texts
    if fmt == "parquet":
        assert table.model == "local:m"


def test_parquet_schema_and_metadata(tmp_path):
    path = tmp_path / "v.parquet"
    ea.save_vectors(path, unit(5, 12), texts=list("abcde"), model="openai:text-embedding-3-small")
    schema = pq.read_schema(path)
    assert schema.names == ["id", "text", "vector"]
    assert schema.field("vector").type == pa.list_(pa.float32(), 12)
    assert schema.metadata[b"embalg.model"] == b"openai:text-embedding-3-small"
    assert schema.metadata[b"embalg.dimensions"] == b"12"


def test_parquet_many_row_groups(tmp_path, monkeypatch):
    from embalg.io import parquet

    monkeypatch.setattr(parquet, "ROW_GROUP", 10)
    v = unit(35, 4)
    path = tmp_path / "v.parquet"
    ea.save_vectors(path, v, ids=[f"id{i}" for i in range(35)])
    assert pq.ParquetFile(path).num_row_groups == 4
    table = load_vector_table(path)
    np.testing.assert_array_equal(table.vectors, v)
    assert table.ids[34] == "id34" and table.texts is None


def test_npy_keeps_dtype_and_memory_maps(tmp_path):
    v = unit(300, 16, dtype=np.float64)
    path = tmp_path / "v.npy"
    ea.save_vectors(path, v, texts=["t"] * 300)  # texts are not stored in .npy
    out = ea.load_vectors(path)
    assert isinstance(out, np.memmap) and out.dtype == np.float64
    np.testing.assert_array_equal(out, v)
    assert not isinstance(ea.load_vectors(path, mmap=False), np.memmap)


def test_nonfinite_found_in_later_chunk(tmp_path, monkeypatch):
    from embalg.io import vectors

    monkeypatch.setattr(vectors, "_CHECK_ROWS", 8)
    v = unit(50, 4)
    v[37, 2] = np.nan
    np.save(tmp_path / "v.npy", v)
    with pytest.raises(ValueError, match="NaN or inf.*row 37"):
        ea.load_vectors(tmp_path / "v.npy")


@pytest.mark.parametrize("fmt", FORMATS)
def test_writer_is_atomic(tmp_path, fmt, monkeypatch):
    path = tmp_path / f"v.{fmt}"
    ea.save_vectors(path, unit(3, 4), texts=list("abc"))
    before = path.read_bytes()
    bad = unit(3, 4, seed=9)
    from embalg.io import jsonl

    def boom(*a, **k):
        raise OSError("disk full")

    class FailingTable:  # the Parquet writer is open when building a row group fails
        from_arrays = staticmethod(boom)

    monkeypatch.setattr(np, "save", boom)
    monkeypatch.setattr(pa, "Table", FailingTable)
    monkeypatch.setattr(jsonl.json, "dumps", boom)
    with pytest.raises(OSError, match="disk full"):
        ea.save_vectors(path, bad, texts=list("xyz"))
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left behind


# ------------------------------------------------------------------ save_vectors errors
@pytest.mark.parametrize("kwargs, exc, match", [
    ({"vectors": np.array([[1.0, np.nan]], np.float32)}, ValueError, "NaN or inf.*row 0"),
    ({"vectors": np.ones(3, np.float32)}, ValueError, "2-D"),
    ({"vectors": np.ones((2, 3), np.int64)}, TypeError, "floating-point"),
    ({"vectors": np.ones((2, 3), np.float32), "ids": [1]}, ValueError, "ids has 1 entries for 2"),
    ({"vectors": np.ones((2, 3), np.float32), "texts": ["a"]}, ValueError, "texts has 1 entries"),
    ({"vectors": np.ones((2, 3), np.float32), "texts": ["a", 1]}, TypeError, r"texts\[1\] is int"),
    ({"vectors": np.ones((2, 3), np.float32), "dimensions": 4}, ValueError, "dimensions=4.*d=3"),
])
def test_save_errors(tmp_path, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ea.save_vectors(tmp_path / "v.parquet", **kwargs)
    assert not (tmp_path / "v.parquet").exists()


def test_bad_extension(tmp_path):
    with pytest.raises(ValueError, match=r"\.npy, \.parquet, \.jsonl"):
        ea.save_vectors(tmp_path / "v.csv", unit(2, 2))
    with pytest.raises(ValueError, match="no extension"):
        ea.load_vectors(tmp_path / "vectors")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such vector file"):
        ea.load_vectors(tmp_path / "nope.parquet")


# ------------------------------------------------------------------ corrupt Parquet
def write_table(path, columns: dict, metadata=None):
    table = pa.table(columns)
    if metadata:
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("cut", [0.5, 0.95])
def test_parquet_truncated(tmp_path, cut):
    path = tmp_path / "v.parquet"
    ea.save_vectors(path, unit(100, 8))
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * cut)])
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        ea.load_vectors(path)


@pytest.mark.parametrize("name, content, match", [
    ("v.parquet", b"PAR1 this is not parquet at all PAR1", "not a readable Parquet file"),
    ("v.jsonl", b'{"vector": [1.0], "text": "\xff"}\n', "not valid UTF-8: line 1"),
    ("v.jsonl", b"\n\n", "holds no vectors"),
    ("v.npy", b"\x93NUMPY garbage", "corrupt .npy header|not a .npy file"),
])
def test_unreadable_files(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        ea.load_vectors(path)


def test_parquet_missing_vector_column(tmp_path):
    path = write_table(tmp_path / "v.parquet", {"id": [1, 2], "text": ["a", "b"]})
    with pytest.raises(ValueError, match="no 'vector' column.*'id', 'text'"):
        ea.load_vectors(path)


def test_parquet_ragged_vectors(tmp_path):
    path = write_table(tmp_path / "v.parquet", {"vector": [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0, 0.0]]})
    with pytest.raises(ValueError, match="ragged vectors: row 2 has 3 values, row 0 has 2"):
        ea.load_vectors(path)


def test_parquet_variable_list_of_equal_lengths_is_fine(tmp_path):
    path = write_table(tmp_path / "v.parquet", {"vector": [[1.0, 0.0], [0.0, 1.0]]})
    np.testing.assert_array_equal(ea.load_vectors(path), np.eye(2, dtype=np.float32))


def test_parquet_nan(tmp_path):
    path = write_table(tmp_path / "v.parquet", {"vector": [[1.0, 0.0], [0.0, float("nan")]]})
    with pytest.raises(ValueError, match="NaN or inf.*row 1"):
        ea.load_vectors(path)


def test_parquet_null_vector(tmp_path):
    path = write_table(tmp_path / "v.parquet", {"vector": [[1.0, 0.0], None]})
    with pytest.raises(ValueError, match="row 1: vector is null"):
        ea.load_vectors(path)


def test_parquet_null_inside_vector(tmp_path):
    path = write_table(tmp_path / "v.parquet", {"vector": [[1.0, None], [0.0, 1.0]]})
    with pytest.raises(ValueError, match="null values inside vectors"):
        ea.load_vectors(path)


def test_parquet_wrong_vector_type(tmp_path):
    path = write_table(tmp_path / "v.parquet", {"vector": ["a", "b"]})
    with pytest.raises(ValueError, match="expected a list of floats"):
        ea.load_vectors(path)


def test_parquet_dimension_disagrees_with_metadata(tmp_path):
    path = write_table(tmp_path / "v.parquet", {"vector": [[1.0, 0.0]]},
                       metadata={b"embalg.dimensions": b"384"})
    with pytest.raises(ValueError, match="embalg.dimensions=384, but the vectors have 2"):
        ea.load_vectors(path)


# ------------------------------------------------------------------ corrupt JSONL
def test_jsonl_truncated_last_line(tmp_path):
    path = tmp_path / "v.jsonl"
    ea.save_vectors(path, unit(3, 4))
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(ValueError, match="line 3 is not valid JSON"):
        ea.load_vectors(path)


def test_jsonl_ragged(tmp_path):
    path = tmp_path / "v.jsonl"
    path.write_text('{"vector": [1, 0]}\n\n{"vector": [0, 1]}\n{"vector": [0, 0, 1]}\n')
    with pytest.raises(ValueError, match="line 4 has 3 values, line 1 has 2"):
        ea.load_vectors(path)


@pytest.mark.parametrize("line, match", [
    ('{"id": 1, "text": "a"}', 'no "vector" field'),
    ('[1, 2]', 'no "vector" field'),
    ('{"vector": [1, "x"]}', "list of numbers"),
    ('{"vector": "1,2"}', "list of numbers"),
    ('{"vector": [1, NaN]}', "NaN or inf.*row 0"),
    ('{"vector": [1, 1e999]}', "NaN or inf.*row 0"),
])
def test_jsonl_bad_lines(tmp_path, line, match):
    path = tmp_path / "v.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=match):
        ea.load_vectors(path)


def test_jsonl_lines_are_plain_json(tmp_path):
    path = tmp_path / "v.jsonl"
    ea.save_vectors(path, np.array([[0.5, -0.25]], np.float32), ids=["x"], texts=["hi"])
    assert json.loads(path.read_text()) == {"id": "x", "text": "hi", "vector": [0.5, -0.25]}


# ------------------------------------------------------------------ corrupt .npy
def test_npy_truncated(tmp_path):
    path = tmp_path / "v.npy"
    ea.save_vectors(path, unit(10, 4))
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ValueError, match="truncated"):
        ea.load_vectors(path)

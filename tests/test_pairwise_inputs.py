"""pairwise_stats inputs: .npy paths and memmaps, and every bad-input error."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import embalg as ea
from embalg.io.npy import save_npy


def unit(n, d, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def npy_file(tmp_path) -> Path:
    path = tmp_path / "vectors.npy"
    save_npy(path, unit(70, 16, seed=1))
    return path


@pytest.mark.parametrize("as_type", [str, Path, "memmap"])
def test_npy_path_and_memmap_equal_array(npy_file, as_type):
    x = np.load(npy_file)
    src = np.load(npy_file, mmap_mode="r") if as_type == "memmap" else as_type(npy_file)
    got = ea.pairwise_stats(src, bins=40, topk=3, tile=16, threshold=0.3)
    ref = ea.pairwise_stats(x, bins=40, topk=3, tile=16, threshold=0.3)
    np.testing.assert_array_equal(got.counts, ref.counts)
    np.testing.assert_array_equal(got.topk_indices, ref.topk_indices)
    np.testing.assert_array_equal(got.threshold_pairs, ref.threshold_pairs)
    assert got.mean == ref.mean
    # y as a path too
    xy = ea.pairwise_stats(x[:10], src, bins=40, tile=16)
    assert xy.n_pairs == 10 * 70


def test_memmap_is_read_block_by_block(npy_file, monkeypatch):
    """Without the block cache, only tile-sized row blocks of the memmap are touched."""
    import embalg.pairwise as pw

    monkeypatch.setattr(pw, "BLOCK_CACHE_BYTES", 0)
    sizes = []
    real = pw.unit_rows

    def spy(raw, name, dtype, *, offset=0):
        sizes.append(len(raw))
        assert isinstance(raw, np.memmap)  # a view of the file, not a copy of all of it
        return real(raw, name, dtype, offset=offset)

    monkeypatch.setattr(pw, "unit_rows", spy)
    mm = np.load(npy_file, mmap_mode="r")
    st = ea.pairwise_stats(mm, bins=10, tile=16)
    assert max(sizes) <= 16 and len(sizes) > 5
    assert st.n_pairs == 70 * 69 // 2


def test_truncated_npy_raises(npy_file):
    data = npy_file.read_bytes()
    npy_file.write_bytes(data[:-100])
    with pytest.raises(ValueError, match="truncated"):
        ea.pairwise_stats(str(npy_file))


def test_lying_npy_header_raises(npy_file):
    data = npy_file.read_bytes()
    lied = data.replace(b"(70, 16)", b"(90, 16)")
    assert lied != data
    npy_file.write_bytes(lied)
    with pytest.raises(ValueError, match="header promises shape"):
        ea.pairwise_stats(npy_file)


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        ea.pairwise_stats(tmp_path / "nope.npy")


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_raises_naming_argument_and_row(backend, bad):
    x = unit(40, 8)
    x[27, 3] = bad
    with pytest.raises(ValueError, match="x contains NaN or inf at row 27"):
        ea.pairwise_stats(x, tile=8, backend=backend)
    with pytest.raises(ValueError, match="y contains NaN or inf at row 27"):
        ea.pairwise_stats(unit(5, 8), x, tile=8, backend=backend)


def test_nonfinite_in_memmap_raises(tmp_path):
    x = unit(50, 8)
    x[33, 0] = np.nan
    save_npy(tmp_path / "bad.npy", x)
    with pytest.raises(ValueError, match="x contains NaN or inf at row 33"):
        ea.pairwise_stats(tmp_path / "bad.npy", tile=10)


def test_zero_row_raises_naming_row():
    x = unit(30, 8)
    x[12] = 0.0
    with pytest.raises(ValueError, match="x has a zero vector at row 12"):
        ea.pairwise_stats(x, tile=5)


def test_dimension_mismatch():
    with pytest.raises(ValueError, match="dimension mismatch: x has d = 8 while y has d = 9"):
        ea.pairwise_stats(unit(4, 8), unit(4, 9))


@pytest.mark.parametrize("kw, exc, msg", [
    (dict(bins=0), ValueError, "bins must be > 0"),
    (dict(bins=-3), ValueError, "bins must be > 0"),
    (dict(bins=2.5), TypeError, "bins must be an integer"),
    (dict(range=(0.5, 0.5)), ValueError, "lo < hi"),
    (dict(range=(1.0, -1.0)), ValueError, "lo < hi"),
    (dict(range=(0.0, np.nan)), ValueError, "two finite numbers"),
    (dict(range=0.5), TypeError, "pair"),
    (dict(topk=10), ValueError, r"topk = 10 exceeds the 9 partners"),
    (dict(topk=-1), ValueError, "topk must be >= 0"),
    (dict(threshold=np.nan), ValueError, "threshold must be a finite number"),
    (dict(threshold="0.5"), ValueError, "threshold must be a finite number"),
    (dict(max_pairs=-1), ValueError, "max_pairs must be >= 0"),
    (dict(tile=0), ValueError, "tile must be > 0"),
    (dict(working_memory=0), ValueError, "working_memory must be > 0"),
    (dict(tile=4, working_memory=1), ValueError, "not both"),
    (dict(precision="tf32"), ValueError, "needs backend='cuda'"),
    (dict(precision="bf16"), ValueError, "needs backend='cuda'"),
    (dict(precision="float16"), ValueError, "precision must be one of"),
    (dict(backend="bogus"), ValueError, "unknown backend"),
])
def test_bad_parameters(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        ea.pairwise_stats(unit(10, 4), **kw)


def test_topk_bound_for_x_vs_y():
    with pytest.raises(ValueError, match="topk = 6 exceeds the 5 partners"):
        ea.pairwise_stats(unit(10, 4), unit(5, 4), topk=6)
    assert ea.pairwise_stats(unit(10, 4), unit(5, 4), topk=5).topk_indices.shape == (10, 5)


@pytest.mark.parametrize("x, exc, msg", [
    (np.ones((4, 3), dtype=np.int64), TypeError, "real floating-point"),
    (np.ones((2, 3, 4)), ValueError, "got 3-D"),
    (np.ones((4, 0)), ValueError, "d = 0"),
    (None, TypeError, "got None"),
])
def test_bad_arrays(x, exc, msg):
    with pytest.raises(exc, match=msg):
        ea.pairwise_stats(x)

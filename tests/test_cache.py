"""The SQLite embedding cache: keys, round trips, durability, concurrency, bad files."""
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from embalg.sources.cache import EmbeddingCache, default_cache_path, text_sha256


def unit(n, d, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def cache(tmp_path):
    with EmbeddingCache(tmp_path / "c.sqlite") as c:
        yield c


def test_roundtrip_exact_bits_and_indices(cache):
    texts = [f"t{i}" for i in range(1001)]
    vecs = unit(1001, 17)
    cache.put_many("openai", "m", None, texts, vecs)
    query = ["t5", "nope", "t1000", "t5", "t0"]
    hits = cache.get_many("openai", "m", None, query)
    assert sorted(hits) == [0, 2, 3, 4]
    for i, j in ((0, 5), (2, 1000), (3, 5), (4, 0)):
        assert hits[i].dtype == np.float32
        assert np.array_equal(hits[i], vecs[j])


def test_keys_separate_provider_model_dimensions(cache):
    a, b = unit(1, 8, 1), unit(1, 8, 2)
    cache.put_many("openai", "m", None, ["x"], a)
    cache.put_many("openai", "m", 8, ["x"], b)
    assert np.array_equal(cache.get_many("openai", "m", 0, ["x"])[0], a[0])  # 0 == native == None
    assert np.array_equal(cache.get_many("openai", "m", 8, ["x"])[0], b[0])
    assert cache.get_many("local", "m", None, ["x"]) == {}
    assert cache.get_many("openai", "m2", None, ["x"]) == {}


def test_replace_and_stats(cache):
    cache.put_many("openai", "a", None, ["x", "y"], unit(2, 4))
    cache.put_many("openai", "a", None, ["x"], unit(1, 4, 5))
    cache.put_many("local", "b", 2, ["x"], unit(1, 2))
    s = cache.stats()
    assert s["rows"] == 3
    assert {(g["provider"], g["model"], g["dimensions"], g["dim"], g["rows"]) for g in s["groups"]} == {
        ("openai", "a", 0, 4, 2), ("local", "b", 2, 2, 1)}
    assert s["file_bytes"] > 0
    assert np.array_equal(cache.get_many("openai", "a", None, ["x"])[0], unit(1, 4, 5)[0])


def test_export_filters_and_mixed_sizes(cache):
    v = unit(3, 4)
    cache.put_many("openai", "a", None, ["x", "y", "z"], v)
    cache.put_many("openai", "b", None, ["x"], unit(1, 6))
    with pytest.raises(ValueError, match="different sizes"):
        cache.export()
    hashes, arr = cache.export(provider="openai", model="a")
    assert arr.shape == (3, 4) and arr.dtype == np.float32
    by_hash = dict(zip(hashes, arr))
    for t, row in zip(["x", "y", "z"], v):
        assert np.array_equal(by_hash[hashlib.sha256(t.encode()).hexdigest()], row)
    hashes, arr = cache.export(model="nothing")
    assert hashes == [] and arr.shape[0] == 0


def test_bad_puts(cache):
    with pytest.raises(ValueError, match="shape"):
        cache.put_many("openai", "m", None, ["a", "b"], unit(1, 3))
    bad = unit(1, 3)
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cache.put_many("openai", "m", None, ["a"], bad)
    with pytest.raises(ValueError, match="dimensions"):
        cache.put_many("openai", "m", -3, ["a"], unit(1, 3))
    with pytest.raises(TypeError, match="provider"):
        cache.get_many("", "m", None, ["a"])
    assert cache.stats()["rows"] == 0


def test_unicode_keys_and_surrogates(cache):
    texts = ["café", "cafe\u0301", "\ud800 lone", "日本語"]
    cache.put_many("p", "m", None, texts, unit(4, 3))
    hits = cache.get_many("p", "m", None, texts)
    assert len(hits) == 4
    assert text_sha256("café") == hashlib.sha256("café".encode()).digest()


def test_not_a_cache_file(tmp_path):
    p = tmp_path / "junk.sqlite"
    p.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(ValueError, match="not a usable embalg embedding cache"):
        EmbeddingCache(p)
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE foo (x)")
    con.commit()
    con.close()
    with pytest.raises(ValueError, match="expected version"):
        EmbeddingCache(other)


def test_closed_cache_errors(tmp_path):
    c = EmbeddingCache(tmp_path / "c.sqlite")
    c.close()
    c.close()
    with pytest.raises(ValueError, match="closed"):
        c.get_many("p", "m", None, ["a"])


def test_wal_mode_and_reopen(tmp_path):
    p = tmp_path / "sub" / "c.sqlite"
    with EmbeddingCache(p) as c:
        c.put_many("p", "m", None, ["a"], unit(1, 3))
        assert c._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with EmbeddingCache(p) as c:
        assert len(c.get_many("p", "m", None, ["a"])) == 1


def test_writer_thread_and_reader(tmp_path):
    """One writer thread + the caller reading, on the same object."""
    with EmbeddingCache(tmp_path / "c.sqlite") as c:
        texts = [f"t{i}" for i in range(2000)]
        vecs = unit(2000, 8)

        def writer():
            for s in range(0, 2000, 100):
                c.put_many("p", "m", None, texts[s:s + 100], vecs[s:s + 100])

        th = threading.Thread(target=writer)
        th.start()
        seen = 0
        while th.is_alive():
            seen = max(seen, len(c.get_many("p", "m", None, texts)))
        th.join()
        hits = c.get_many("p", "m", None, texts)
        assert len(hits) == 2000
        assert np.array_equal(np.stack([hits[i] for i in range(2000)]), vecs)


def test_killed_writer_loses_nothing_committed(tmp_path):
    """SIGKILL a process mid-stream: every put_many that returned is readable afterwards."""
    path = tmp_path / "c.sqlite"
    script = textwrap.dedent(f"""
        import sys, numpy as np
        from embalg.sources.cache import EmbeddingCache
        c = EmbeddingCache({str(path)!r})
        k = 0
        while True:
            c.put_many("p", "m", None, [f"t{{k}}_{{j}}" for j in range(50)], np.ones((50, 16), np.float32))
            print(k, flush=True)
            k += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    done = -1
    for line in proc.stdout:
        done = int(line)
        if done >= 20:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with EmbeddingCache(path) as c:
        for k in range(done + 1):
            assert len(c.get_many("p", "m", None, [f"t{k}_{j}" for j in range(50)])) == 50
        assert c.stats()["rows"] % 50 == 0  # no half-written transaction


def test_default_cache_path(monkeypatch, tmp_path):
    monkeypatch.delenv("EMBALG_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg" / "embalg" / "embeddings.sqlite"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_path() == tmp_path / "home" / ".cache" / "embalg" / "embeddings.sqlite"
    monkeypatch.setenv("EMBALG_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_path() == tmp_path / "mine" / "embeddings.sqlite"


def test_cli_stats_and_export(tmp_path, capsys):
    import json

    import pyarrow.parquet as pq

    from embalg.cli import main

    path = tmp_path / "c.sqlite"
    v = unit(5, 6)
    with EmbeddingCache(path) as c:
        c.put_many("openai", "text-embedding-3-small", 6, [f"t{i}" for i in range(5)], v)
        c.put_many("local", "mini", None, ["q"], unit(1, 4))
    assert main(["cache", "--cache", str(path), "stats", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["rows"] == 6
    assert main(["cache", "--cache", str(path), "stats"]) == 0
    assert "text-embedding-3-small" in capsys.readouterr().out
    # mixed sizes without filters: clean error (exit 2)
    assert main(["cache", "--cache", str(path), "export", "--out", str(tmp_path / "a.npy")]) == 2
    assert "different sizes" in capsys.readouterr().err
    npy = tmp_path / "a.npy"
    assert main(["cache", "--cache", str(path), "export", "--out", str(npy), "--model",
                 "text-embedding-3-small"]) == 0
    arr = np.load(npy)
    hashes = (tmp_path / "a.npy.sha256.txt").read_text().split()
    want = {hashlib.sha256(f"t{i}".encode()).hexdigest(): v[i] for i in range(5)}
    assert len(hashes) == 5 and all(np.array_equal(arr[k], want[h]) for k, h in enumerate(hashes))
    assert main(["cache", "--cache", str(path), "export", "--out", str(npy), "--model", "mini"]) == 2
    assert "exists" in capsys.readouterr().err
    pqf = tmp_path / "b.parquet"
    assert main(["cache", "--cache", str(path), "export", "--out", str(pqf), "--provider", "openai",
                 "--dimensions", "6"]) == 0
    t = pq.read_table(pqf)
    assert t.schema.metadata[b"dimensions"] == b"6"
    got = np.asarray(t.column("vector").combine_chunks().flatten()).reshape(-1, 6)
    assert all(np.array_equal(got[k], want[h]) for k, h in enumerate(t.column("text_sha256").to_pylist()))
    assert main(["cache", "--cache", str(tmp_path / "none.sqlite"), "stats"]) == 2
    assert main(["cache", "--cache", str(path), "export", "--out", str(tmp_path / "x.csv")]) == 2


def test_new_cache_uses_large_pages(cache):
    from embalg.sources.cache import PAGE_SIZE

    assert cache._conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE

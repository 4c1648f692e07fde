"""The Batch API path against the fake server: write, submit, poll, ingest, resume, failures."""
import json

import numpy as np
import pytest
from fake_openai_server import FakeOpenAI, fake_vector

from embalg.sources.batch_api import (ingest_batch_output, read_batch_texts, run_batch_job,
                                      write_batch_requests)
from embalg.sources.cache import EmbeddingCache

KEY = "sk-test-batch-0123456789abcdef"
MODEL = "text-embedding-3-small"
TEXTS = [f"batch text {i} with a few words" for i in range(130)]


@pytest.fixture
def server():
    with FakeOpenAI(api_key=KEY) as srv:
        yield srv


@pytest.fixture
def cache(tmp_path):
    with EmbeddingCache(tmp_path / "c.sqlite") as c:
        yield c


def cached_matrix(cache, texts, dims=None):
    hits = cache.get_many("openai", MODEL, dims, texts)
    assert sorted(hits) == list(range(len(texts)))
    return np.stack([hits[i] for i in range(len(texts))])


def job(server, cache, workdir, texts=TEXTS, **kw):
    kw.setdefault("poll_interval", 0.01)
    return run_batch_job(texts, MODEL, kw.pop("dimensions", None), cache, workdir, api_key=KEY,
                         base_url=server.base_url, progress=False, **kw)


def test_end_to_end_multiple_files(server, cache, tmp_path):
    summary = job(server, cache, tmp_path / "w", batch_size=10, max_inputs_per_file=50, dimensions=128)
    assert summary["ingested"] == len(TEXTS) and summary["failed"] == []
    assert len(summary["batches"]) == 3 and len(server.batches) == 3
    assert all(b["status"] == "completed" for b in summary["batches"].values())
    ref = np.stack([fake_vector(MODEL, t, 128) for t in TEXTS])
    np.testing.assert_allclose(cached_matrix(cache, TEXTS, 128), ref, atol=2e-7)
    assert server.requests == 0  # nothing went through the online endpoint
    files = sorted(p.name for p in (tmp_path / "w").iterdir())
    assert "batch_state.json" in files and "output-0002.jsonl" in files
    for p in (tmp_path / "w").glob("requests-*.jsonl"):
        lines = [json.loads(x) for x in p.read_text().splitlines()]
        assert sum(len(x["body"]["input"]) for x in lines) <= 50
        assert all(x["url"] == "/v1/embeddings" and x["method"] == "POST" for x in lines)


def test_failed_requests_are_reported_not_cached(server, cache, tmp_path):
    paths = write_batch_requests(TEXTS, MODEL, None, tmp_path / "probe", batch_size=20)
    bad = json.loads(paths[0].read_text().splitlines()[1])["custom_id"]
    server.batch_failures = {bad}
    summary = job(server, cache, tmp_path / "w", batch_size=20)
    assert summary["failed"] == [bad]
    assert summary["ingested"] == len(TEXTS) - 20
    assert len(cache.get_many("openai", MODEL, None, TEXTS[20:40])) == 0
    assert len(cache.get_many("openai", MODEL, None, TEXTS[40:])) == len(TEXTS) - 40


def test_killed_job_resumes_without_resubmitting(server, cache, tmp_path):
    with pytest.raises(TimeoutError, match="resume"):
        job(server, cache, tmp_path / "w", max_wait=0.0, batch_size=50)
    uploads, batches = len(server.files), len(server.batches)
    assert batches == 1 and cache.stats()["rows"] == 0
    summary = job(server, cache, tmp_path / "w", batch_size=50)
    assert len(server.files) == uploads  # no new upload (the fake makes its output at create time)
    assert len(server.batches) == batches
    assert summary["ingested"] == len(TEXTS)
    again = job(server, cache, tmp_path / "w", batch_size=50)  # finished: nothing re-read or re-paid
    assert again["ingested"] == len(TEXTS) and len(server.batches) == batches


def test_workdir_for_other_texts_is_refused(server, cache, tmp_path):
    job(server, cache, tmp_path / "w")
    with pytest.raises(ValueError, match="other texts"):
        job(server, cache, tmp_path / "w", texts=TEXTS[:-1])


def test_ingest_downloaded_output(server, cache, tmp_path):
    job(server, cache, tmp_path / "w", batch_size=30)
    out = tmp_path / "w" / "output-0000.jsonl"
    with EmbeddingCache(tmp_path / "fresh.sqlite") as fresh:
        texts = read_batch_texts(sorted((tmp_path / "w").glob("requests-*.jsonl")))
        assert texts == TEXTS
        summary = ingest_batch_output(out, texts, "openai:" + MODEL, None, fresh)
        assert summary["ingested"] == len(TEXTS) and summary["failed"] == []
        np.testing.assert_array_equal(cached_matrix(fresh, TEXTS), cached_matrix(cache, TEXTS))
        with pytest.raises(ValueError, match="does not match the texts"):
            ingest_batch_output(out, TEXTS[::-1], MODEL, None, fresh)
    lines = out.read_bytes().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(lines[0] + lines[1][:50])
    with pytest.raises(ValueError, match=r"cut.jsonl:2 is not JSON"):
        ingest_batch_output(cut, TEXTS, MODEL, None, cache)
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text(json.dumps({"custom_id": "request-1", "response": None}) + "\n")
    with pytest.raises(ValueError, match="not written by embalg"):
        ingest_batch_output(foreign, TEXTS, MODEL, None, cache)


def test_ingest_checks_vectors(tmp_path, cache):
    paths = write_batch_requests(["x", "y"], MODEL, None, tmp_path)
    cid = json.loads(paths[0].read_text())["custom_id"]
    bad = {"custom_id": cid, "error": None,
           "response": {"status_code": 200, "body": {"data": [{"index": 0, "embedding": [1.0, 0.0]},
                                                               {"index": 1, "embedding": [0.0, 1.0]}]}}}
    f = tmp_path / "o.jsonl"
    f.write_text(json.dumps(bad) + "\n")
    from embalg.sources.openai_embedder import EmbeddingResponseError
    with pytest.raises(EmbeddingResponseError, match="expected 1536"):
        ingest_batch_output(f, ["x", "y"], MODEL, None, cache)


def test_write_limits_and_bad_input(tmp_path):
    paths = write_batch_requests(TEXTS, MODEL, None, tmp_path / "a", batch_size=7, max_inputs_per_file=20)
    counts = [sum(len(json.loads(x)["body"]["input"]) for x in p.read_text().splitlines()) for p in paths]
    assert counts == [14] * 8 + [18]  # 7-input requests, as many per file as fit in 20 inputs
    assert read_batch_texts(paths) == TEXTS
    with pytest.raises(ValueError, match="not available with the Batch API"):
        write_batch_requests(TEXTS, MODEL, None, tmp_path / "b", truncate="chunk_average")
    with pytest.raises(ValueError, match=r"texts\[1\] is an empty string"):
        write_batch_requests(["a", ""], MODEL, None, tmp_path / "c")
    assert not (tmp_path / "c").exists()
    with pytest.raises(ValueError, match="not supported"):
        write_batch_requests(["a"], "text-embedding-ada-002", 64, tmp_path / "d")
    with pytest.raises(ValueError, match="max_inputs_per_file"):
        write_batch_requests(["a"], MODEL, None, tmp_path / "e", max_inputs_per_file=60_000)


def test_missing_key(tmp_path, cache, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        run_batch_job(["a"], MODEL, None, cache, tmp_path / "w", progress=False)


def test_truncated_job_texts_read_back(server, cache, tmp_path):
    texts = ["short one", "word " * 9000, "another"]
    summary = job(server, cache, tmp_path / "w", texts=texts, truncate="truncate")
    assert summary["ingested"] == 3
    back = read_batch_texts((tmp_path / "w").glob("requests-*.jsonl"))
    assert back == texts  # the originals, not the truncated inputs that were sent
    sent = [t for t in server.inputs_seen if t.startswith("word")]
    assert len(sent) == 1 and len(sent[0]) < len(texts[1])
    assert len(cache.get_many("openai", MODEL, None, texts)) == 3  # keyed by the original text
    with EmbeddingCache(tmp_path / "f.sqlite") as fresh:
        s = ingest_batch_output(tmp_path / "w" / "output-0000.jsonl", back, MODEL, None, fresh)
        assert s["ingested"] == 3

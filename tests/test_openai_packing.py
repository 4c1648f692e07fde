"""Token counting, request packing, rate-limit pacing and retry timing (no server)."""
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embalg.sources.pacing import RateLimitPacer, RetryPolicy, parse_duration, retry_after_seconds
from embalg.sources.packing import (count_tokens, encoding, pack_requests, plan_inputs, split_tokens,
                                    validate_texts)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 100), max_size=300), st.integers(1, 20), st.integers(100, 400))
def test_pack_requests_limits_cover_and_greedy(tokens, max_inputs, max_tokens):
    tokens = np.array(tokens, dtype=np.int64)
    spans = pack_requests(tokens, max_inputs=max_inputs, max_tokens=max_tokens)
    assert [s for s, _ in spans] == ([0] + [e for _, e in spans[:-1]] if spans else [])
    assert (spans[-1][1] if spans else 0) == len(tokens)
    for a, b in spans:
        assert 0 < b - a <= max_inputs and tokens[a:b].sum() <= max_tokens
        if b < len(tokens):  # greedy: the next input would break a limit
            assert b - a == max_inputs or tokens[a:b + 1].sum() > max_tokens


def test_pack_requests_real_limits_and_too_big():
    spans = pack_requests(np.full(5000, 1))
    assert [b - a for a, b in spans] == [2048, 2048, 904]
    spans = pack_requests(np.full(100, 8000))
    assert all(8000 * (b - a) <= 300_000 for a, b in spans) and spans[0] == (0, 37)
    with pytest.raises(ValueError, match="more than the 10 allowed"):
        pack_requests(np.array([3, 11]), max_tokens=10)
    assert pack_requests(np.array([], dtype=np.int64)) == []


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_count_tokens_exact_for_short_texts(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return
    assert count_tokens(text) == len(encoding().encode_ordinary(text))


def test_count_tokens_long_texts_over_limit_detected():
    text = "token " * 150_000  # 900k characters, 150k tokens
    assert count_tokens(text) > 8191
    exact = "abc " * 30_000  # 120k chars: counted by prefixes, still exact under the limit?
    assert (count_tokens(exact) > 8191) == (len(encoding().encode_ordinary(exact)) > 8191)
    spaces = " " * 150_000  # few tokens per many characters
    n = len(encoding().encode_ordinary(spaces))
    assert count_tokens(spaces) == n if n <= 8191 else count_tokens(spaces) > 8191


def test_validate_counts_and_special_tokens_as_text():
    counts = validate_texts(["hello world", "<|endoftext|>", "é" * 10])
    enc = encoding()
    assert counts.tolist() == [2, len(enc.encode_ordinary("<|endoftext|>")), len(enc.encode_ordinary("é" * 10))]
    assert counts[1] > 1  # not the single special token


def test_split_tokens_pieces_within_limit_and_lossless():
    text = "".join(f"{i} é日本 " for i in range(5000))
    pieces = split_tokens(text, 1000)
    assert "".join(p for p, _ in pieces) == text
    assert all(0 < n <= 1000 for _, n in pieces)
    assert all(count_tokens(p) == n for p, n in pieces)
    assert sum(n for _, n in pieces) >= len(encoding().encode_ordinary(text)) - 2 * len(pieces)


def test_plan_inputs_modes():
    texts = ["short", "word " * 9000, "tail"]
    counts = validate_texts(texts, truncate="truncate")
    plan = plan_inputs(texts, counts, "truncate")
    assert not plan.chunked and plan.owner.tolist() == [0, 1, 2] and plan.tokens[1] == 8191
    plan = plan_inputs(texts, counts, "chunk_average")
    assert plan.chunked and plan.owner.tolist() == [0, 1, 1, 2] and plan.tokens.max() <= 8191
    with pytest.raises(ValueError, match="over 8191"):
        plan_inputs(texts, counts, None)


@pytest.mark.parametrize("text, seconds", [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5),
                                           ("0.5", 0.5), ("  7s ", 7.0), ("bogus", None), (None, None),
                                           ("5x", None)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_retry_after_forms():
    import email.utils
    import time

    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < retry_after_seconds({"retry-after": date}) <= 31
    assert retry_after_seconds({"retry-after": "whenever"}) is None
    assert retry_after_seconds({}) is None


def test_retry_policy_backoff_grows_with_jitter_and_caps():
    pol = RetryPolicy(max_retries=10, base_delay=0.5, max_delay=8.0, max_retry_after=60.0, seed=1)
    for k in range(1, 10):
        d = min(8.0, 0.5 * 2 ** (k - 1))
        samples = [pol.delay(k) for _ in range(50)]
        assert all(d / 2 <= s <= d for s in samples) and len(set(samples)) > 1
    assert pol.delay(3, retry_after=100.0) == 60.0
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)


def test_pacer_waits_for_request_budget_reset():
    p = RateLimitPacer()
    assert p.acquire(10) == 0.0  # unknown budget: go
    p.update({"x-ratelimit-remaining-requests": "1", "x-ratelimit-reset-requests": "100ms"})
    assert p.acquire(10) == 0.0  # the last slot
    assert p.acquire(10) > 0.0  # spent: waits for the reset
    assert p.acquire(10) == 0.0  # reset passed, budget unknown again


def test_pacer_waits_for_token_budget():
    p = RateLimitPacer()
    p.update({"x-ratelimit-remaining-tokens": "100", "x-ratelimit-reset-tokens": "80ms"})
    assert p.acquire(60) == 0.0
    assert p.acquire(60) > 0.0  # 40 left < 60


def test_pacer_pause_and_cancel():
    p = RateLimitPacer()
    p.pause(0.05)
    assert p.acquire() > 0.0
    p.pause(30.0)
    cancel = threading.Event()
    threading.Timer(0.05, cancel.set).start()
    assert p.acquire(1, cancel) < 30.0  # an abandoned job does not sleep out the pause


def test_pacer_ignores_garbage_headers():
    p = RateLimitPacer()
    p.update({"x-ratelimit-remaining-requests": "lots", "x-ratelimit-reset-requests": "1s",
              "x-ratelimit-remaining-tokens": "5", "x-ratelimit-reset-tokens": "never"})
    assert p.acquire(1000) == 0.0

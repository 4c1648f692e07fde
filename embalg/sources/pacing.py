"""Rate-limit pacing and the retry policy for bulk API requests.

:class:`RateLimitPacer` is shared by all request threads. Every response's
``x-ratelimit-remaining-{requests,tokens}`` and ``x-ratelimit-reset-{requests,tokens}``
headers update it; before a request is sent, :meth:`RateLimitPacer.acquire`
waits while the last known budget is spent and its reset time has not come,
and charges the request against the budget so concurrent threads do not all
rush through the same last slot. A 429 pauses every thread until its
``Retry-After``.

:class:`RetryPolicy` decides how long to sleep before attempt ``k``: the
server's ``retry-after-ms`` / ``Retry-After`` when given (capped), otherwise an
exponential backoff ``min(max_delay, base_delay * 2**k)`` with equal jitter.
"""
from __future__ import annotations

import email.utils
import random
import re
import threading
import time

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text) -> float | None:
    """Seconds in an OpenAI reset header such as ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1h2m3.5s"``.

    A bare number is seconds; anything unparseable gives ``None``.

    Examples
    --------
    >>> parse_duration("6m0s"), parse_duration("20ms"), parse_duration("1h2m3.5s"), parse_duration("2")
    (360.0, 0.02, 3723.5, 2.0)
    >>> parse_duration("soon") is None
    True
    """
    if text is None:
        return None
    text = str(text).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def retry_after_seconds(headers) -> float | None:
    """The server's requested wait: ``retry-after-ms`` first, then ``retry-after`` (seconds or an HTTP date).

    Examples
    --------
    >>> retry_after_seconds({"retry-after-ms": "250"}), retry_after_seconds({"retry-after": "3"})
    (0.25, 3.0)
    """
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RateLimitPacer:
    """Wait before sending when the server's last reported request/token budget is used up.

    Thread-safe. Unknown budgets (no headers yet, or past their reset time) never block.

    Examples
    --------
    >>> p = RateLimitPacer()
    >>> p.update({"x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "1s"})
    >>> p.acquire(tokens=100)  # budget left: returns at once
    0.0
    """

    def __init__(self, *, clock=time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self._requests = None  # (remaining, reset_at)
        self._tokens = None
        self._paused_until = 0.0

    def update(self, headers) -> None:
        """Take the budget from a response's ``x-ratelimit-*`` headers (missing ones are ignored)."""
        now = self._clock()
        with self._lock:
            for kind in ("requests", "tokens"):
                remaining = headers.get(f"x-ratelimit-remaining-{kind}")
                reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}"))
                if remaining is None or reset is None:
                    continue
                try:
                    value = float(remaining)
                except ValueError:
                    continue
                setattr(self, f"_{kind}", (value, now + reset))

    def pause(self, seconds: float) -> None:
        """Hold every thread for ``seconds`` (after a 429 with ``Retry-After``)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))

    def _wait_needed(self, tokens: int, now: float) -> float:
        wait = self._paused_until - now
        for kind, need in (("requests", 1), ("tokens", tokens)):
            budget = getattr(self, f"_{kind}")
            if budget is None:
                continue
            remaining, reset_at = budget
            if now >= reset_at:
                setattr(self, f"_{kind}", None)  # the window has reset: budget unknown again
            elif remaining < need:
                wait = max(wait, reset_at - now)
        return wait

    def acquire(self, tokens: int = 0, cancel: threading.Event | None = None) -> float:
        """Block until a request of ``tokens`` tokens may go; return the seconds waited.

        Setting ``cancel`` (the job was abandoned) ends the wait at once.
        """
        cancel = cancel or threading.Event()
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                wait = self._wait_needed(tokens, now)
                if wait <= 0 or cancel.is_set():
                    for kind, need in (("requests", 1), ("tokens", tokens)):
                        budget = getattr(self, f"_{kind}")
                        if budget is not None:
                            setattr(self, f"_{kind}", (budget[0] - need, budget[1]))
                    return waited
            cancel.wait(min(wait, 5.0))
            waited += min(wait, 5.0)


class RetryPolicy:
    """How often and how long to wait between attempts.

    Parameters
    ----------
    max_retries : int
        Retries after the first attempt (so ``max_retries + 1`` attempts at most).
    base_delay, max_delay : float
        Backoff before retry ``k`` (1-based) is ``d/2 + uniform(0, d/2)`` with
        ``d = min(max_delay, base_delay * 2**(k-1))``.
    max_retry_after : float
        Cap on a server-requested ``Retry-After``.

    Examples
    --------
    >>> pol = RetryPolicy(max_retries=3, base_delay=1.0, max_delay=4.0, seed=0)
    >>> 0.5 <= pol.delay(1) <= 1.0 and 2.0 <= pol.delay(5) <= 4.0
    True
    >>> pol.delay(1, retry_after=2.5)
    2.5
    """

    def __init__(self, max_retries: int = 8, base_delay: float = 0.5, max_delay: float = 30.0,
                 max_retry_after: float = 120.0, *, seed=None):
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.max_retries = int(max_retries)
        self.base_delay = float(base_delay)
        self.max_delay = float(max_delay)
        self.max_retry_after = float(max_retry_after)
        self._rng = random.Random(seed)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to sleep before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        d = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return d / 2 + self._rng.uniform(0, d / 2)

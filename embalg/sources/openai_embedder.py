"""OpenAI embeddings at scale: packed, concurrent, paced, retried, checked.

:class:`OpenAIEmbedder` sends already de-duplicated texts to ``/v1/embeddings``
through the official ``openai`` client (so ``OPENAI_BASE_URL`` /
``OPENAI_API_KEY`` and OpenAI-compatible servers work) and hands every
response's vectors to a callback as soon as it arrives, so a caller that
stores them (the cache) loses at most the requests in flight when killed.

Per request: at most 2048 inputs and 300k tokens (exact cl100k_base counts),
``encoding_format="base64"`` decoded straight into float32, ``dimensions`` for
text-embedding-3. Requests run on ``max_concurrency`` threads behind a shared
:class:`~embalg.sources.pacing.RateLimitPacer`. Retried (exponential backoff
with jitter, honouring ``retry-after-ms`` / ``Retry-After``): 429, 408, 409,
5xx, timeouts, connection errors, malformed or truncated JSON. A 400 that
mentions ``max_tokens_per_request`` splits the request in two. Any other 4xx
fails at once with :class:`OpenAIRequestError`. Every response is checked:
item count, each index present exactly once (rows are put back in index
order), vector size, finite values, non-zero norm; then rows are renormalized
to unit length. A response failing a check raises
:class:`EmbeddingResponseError` (not retried: a server that lies once is not
trusted with more money).

The API key never reaches a log record or an exception message written here:
messages pass through :func:`redact`.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import numpy as np

from .pacing import RateLimitPacer, RetryPolicy, retry_after_seconds
from .packing import (MAX_INPUTS_PER_REQUEST, MAX_TOKENS_PER_INPUT, MAX_TOKENS_PER_REQUEST,
                      pack_requests, plan_inputs, validate_texts)

log = logging.getLogger(__name__)

#: model -> (native dimension, accepts ``dimensions``, USD per 1M input tokens)
MODELS = {
    "text-embedding-3-small": (1536, True, 0.02),
    "text-embedding-3-large": (3072, True, 0.13),
    "text-embedding-ada-002": (1536, False, 0.10),
}
_RETRY_STATUS = {408, 409, 429}
_KEY_PATTERN = re.compile(r"(sk-[A-Za-z0-9_\-]{2})[A-Za-z0-9_\-*]{6,}")


class OpenAIRequestError(ValueError):
    """A request failed for good: a non-retryable 4xx, or retries exhausted."""


class EmbeddingResponseError(ValueError):
    """A response (or batch output line) failed a check: count, index, size, finite, norm."""


def redact(text: str, key: str | None = None) -> str:
    """``text`` with ``key`` and anything shaped like an OpenAI key (``sk-...``) masked.

    Examples
    --------
    >>> redact("bad key sk-abcdefghijklmnop given", key=None)
    'bad key sk-ab*** given'
    """
    text = str(text)
    if key:
        text = text.replace(key, "***")
    return _KEY_PATTERN.sub(r"\1***", text)


def estimate_cost(model: str, n_tokens: int, *, batch: bool = False) -> float:
    """US dollars for ``n_tokens`` input tokens at list price (half price through the Batch API).

    Prices per 1M tokens: text-embedding-3-small $0.02, -3-large $0.13, ada-002 $0.10.
    An unknown model (e.g. on a compatible server) gives ``nan``.

    Examples
    --------
    >>> estimate_cost("text-embedding-3-small", 1_000_000)
    0.02
    >>> round(estimate_cost("openai:text-embedding-3-large", 2_000_000, batch=True), 4)
    0.13
    """
    info = MODELS.get(_strip_provider(model))
    if info is None:
        return float("nan")
    return n_tokens / 1e6 * info[2] * (0.5 if batch else 1.0)


def _strip_provider(model: str) -> str:
    return model[len("openai:"):] if model.startswith("openai:") else model


def check_model_dimensions(model: str, dimensions) -> int | None:
    """Validate ``dimensions`` for ``model``; return it as int (``None`` = native).

    Raises
    ------
    ValueError
        ``dimensions`` given for a model without that option (ada-002), not a
        positive int, or above the model's native size.
    """
    if dimensions is None:
        return None
    if isinstance(dimensions, bool) or not isinstance(dimensions, (int, np.integer)) or dimensions < 1:
        raise ValueError(f"dimensions must be a positive int or None, got {dimensions!r}")
    info = MODELS.get(model)
    if info is not None:
        native, flexible, _ = info
        if not flexible:
            raise ValueError(f"dimensions={dimensions} is not supported by {model} (only "
                             "text-embedding-3 models accept it); pass dimensions=None")
        if dimensions > native:
            raise ValueError(f"dimensions={dimensions} is larger than {model}'s native {native}")
    return int(dimensions)


def decode_embeddings(payload, n_inputs: int, expected_dim: int | None, *, where: str = "response"
                      ) -> np.ndarray:
    """Checked float32 unit rows, shape ``(n_inputs, d)``, from an embeddings response body.

    Items are put in ``index`` order; ``embedding`` may be a base64 string of
    little-endian float32 (decoded with ``np.frombuffer``) or a list of floats.

    Raises
    ------
    EmbeddingResponseError
        No ``data`` list, wrong item count, a missing/duplicate/out-of-range index,
        a vector of the wrong size, a non-finite value or a zero vector.
    """
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise EmbeddingResponseError(f"{where}: no 'data' list in the response")
    if len(data) != n_inputs:
        raise EmbeddingResponseError(f"{where}: {len(data)} embeddings for {n_inputs} inputs")
    order: list = [None] * n_inputs
    for item in data:
        idx = item.get("index") if isinstance(item, dict) else None
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < n_inputs:
            raise EmbeddingResponseError(f"{where}: item index {idx!r} is not in 0..{n_inputs - 1}")
        if order[idx] is not None:
            raise EmbeddingResponseError(f"{where}: index {idx} appears twice (and another is missing)")
        order[idx] = item.get("embedding")
    if expected_dim is None:
        expected_dim = _length(order[0], 0, where) if n_inputs else 0
    out = np.empty((n_inputs, expected_dim), dtype=np.float32)
    for idx, emb in enumerate(order):
        if isinstance(emb, str):
            raw = binascii.a2b_base64(emb) if len(emb) == 4 * -(-4 * expected_dim // 3) else b""
            if len(raw) != 4 * expected_dim:
                raise EmbeddingResponseError(f"{where}: item {idx} has {_length(emb, idx, where)} "
                                             f"dimensions, expected {expected_dim}")
            out[idx] = np.frombuffer(raw, dtype="<f4")
        elif isinstance(emb, list):
            if len(emb) != expected_dim:
                raise EmbeddingResponseError(f"{where}: item {idx} has {len(emb)} dimensions, "
                                             f"expected {expected_dim}")
            out[idx] = emb
        else:
            raise EmbeddingResponseError(f"{where}: item {idx} has no embedding")
    # one pass for both checks: a NaN or inf anywhere makes its row's squared norm non-finite
    norms = np.sqrt(np.einsum("ij,ij->i", out, out, dtype=np.float64))
    if not np.isfinite(norms).all():
        bad = int(np.flatnonzero(~np.isfinite(norms))[0])
        raise EmbeddingResponseError(f"{where}: item {bad} has NaN or inf values")
    if n_inputs and norms.min() == 0:
        raise EmbeddingResponseError(f"{where}: item {int(np.argmin(norms))} is a zero vector")
    out *= (1.0 / norms).astype(np.float32)[:, None]
    return out


def _length(emb, idx: int, where: str) -> int:
    """Number of float32 values in one embedding (base64 string or list), checked."""
    if isinstance(emb, list):
        return len(emb)
    if not isinstance(emb, str):
        raise EmbeddingResponseError(f"{where}: item {idx} has no embedding")
    try:
        raw = base64.b64decode(emb, validate=True)
    except ValueError:
        raise EmbeddingResponseError(f"{where}: item {idx} is not valid base64") from None
    if len(raw) % 4:
        raise EmbeddingResponseError(f"{where}: item {idx} has {len(raw)} bytes, not float32 values")
    return len(raw) // 4


def resolve_api_key(api_key=None) -> str:
    """``api_key`` or ``$OPENAI_API_KEY``; a clear ``ValueError`` naming OPENAI_API_KEY when neither is set."""
    key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
    if not key:
        raise ValueError("no OpenAI API key: set the OPENAI_API_KEY environment variable "
                         "(or pass api_key=); for an offline model use model='local:all-MiniLM-L6-v2'")
    return key


def make_client(api_key, base_url, timeout, *, max_retries: int = 0):
    """An ``openai.OpenAI`` client; its own retries are off by default (ours are used)."""
    import openai

    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    return openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout)


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class OpenAIEmbedder:
    """Embeds texts with an OpenAI (or OpenAI-compatible) embeddings endpoint.

    Parameters
    ----------
    model : str
        ``"text-embedding-3-small"``, ``"text-embedding-3-large"``, ``"text-embedding-ada-002"``
        or any model a compatible server knows (an ``"openai:"`` prefix is dropped).
    dimensions : int, optional
        Output size for text-embedding-3 models; ``None`` = native.
    batch_size : int, optional
        Inputs per request, at most (and by default) 2048.
    max_concurrency : int
        Requests in flight at once (threads).
    truncate : {None, "truncate", "chunk_average"}
        Policy for inputs over 8191 tokens; ``None`` makes them an error.
    api_key, base_url : str, optional
        Default to ``$OPENAI_API_KEY`` / ``$OPENAI_BASE_URL``.
    timeout : float
        Seconds per request before it is abandoned and retried.
    max_retries : int
        Retries per request after the first attempt.
    retry_base_delay, retry_max_delay : float
        Backoff schedule (see :class:`~embalg.sources.pacing.RetryPolicy`).
    max_tokens_per_request : int
        Token budget per request (300k on OpenAI).

    Raises
    ------
    ValueError
        No API key (the message names ``OPENAI_API_KEY``), bad ``dimensions`` for
        the model, bad ``batch_size`` / ``max_concurrency`` / ``truncate``.

    Examples
    --------
    >>> OpenAIEmbedder("text-embedding-ada-002", dimensions=256, api_key="k")
    Traceback (most recent call last):
    ...
    ValueError: dimensions=256 is not supported by text-embedding-ada-002 (only text-embedding-3 models accept it); pass dimensions=None
    """

    provider = "openai"

    def __init__(self, model: str = "text-embedding-3-small", *, dimensions=None, batch_size=None,
                 max_concurrency: int = 8, truncate=None, api_key=None, base_url=None,
                 timeout: float = 60.0, max_retries: int = 8, retry_base_delay: float = 0.5,
                 retry_max_delay: float = 30.0, max_tokens_per_request: int = MAX_TOKENS_PER_REQUEST):
        if not isinstance(model, str) or not _strip_provider(model):
            raise ValueError(f"model must be a model name such as 'text-embedding-3-small', got {model!r}")
        self.model = _strip_provider(model)
        self.dimensions = check_model_dimensions(self.model, dimensions)
        if batch_size is None:
            batch_size = MAX_INPUTS_PER_REQUEST
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or \
                not 1 <= batch_size <= MAX_INPUTS_PER_REQUEST:
            raise ValueError(f"batch_size must be an int in 1..{MAX_INPUTS_PER_REQUEST}, got {batch_size!r}")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be a positive int, got {max_concurrency!r}")
        if truncate not in (None, "truncate", "chunk_average"):
            raise ValueError(f"truncate must be None, 'truncate' or 'chunk_average', got {truncate!r}")
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.truncate = truncate
        self.max_tokens_per_request = int(max_tokens_per_request)
        self._key = resolve_api_key(api_key)
        self._client = make_client(self._key, base_url, timeout)
        self.retry = RetryPolicy(max_retries, retry_base_delay, retry_max_delay)
        self.pacer = RateLimitPacer()
        native = MODELS.get(self.model, (None,))[0]
        self._dim = self.dimensions or native  # None until the first response for unknown models
        self._dim_lock = threading.Lock()
        #: totals over this embedder's life: requests sent (incl. retries), inputs and tokens paid for
        self.counters = {"requests": 0, "retries": 0, "inputs": 0, "tokens": 0, "splits": 0}
        self._count_lock = threading.Lock()

    def __repr__(self) -> str:  # never shows the key
        return (f"OpenAIEmbedder(model={self.model!r}, dimensions={self.dimensions!r}, "
                f"base_url={str(self._client.base_url)!r})")

    # -- checks ----------------------------------------------------------------------
    def validate_texts(self, texts) -> np.ndarray:
        """Check ``texts`` before any request; return the tokens each will be billed for.

        See :func:`~embalg.sources.packing.validate_texts` for the checks. With
        ``truncate="truncate"`` a long text counts 8191 tokens (what is sent).
        """
        counts = validate_texts(texts, truncate=self.truncate, max_tokens=MAX_TOKENS_PER_INPUT)
        if self.truncate == "truncate":
            np.minimum(counts, MAX_TOKENS_PER_INPUT, out=counts)
        return counts

    # -- the job -----------------------------------------------------------------------
    def embed_texts(self, texts, on_result, progress=None) -> None:
        """Embed ``texts`` (already de-duplicated and not cached), streaming results to ``on_result``.

        Parameters
        ----------
        texts : list of str, length n
        on_result : callable ``(indices: list[int], vectors: float32 (k, d)) -> None``
            Called in the calling thread after every successful response with the
            positions in ``texts`` it covers and their unit rows. An exception it
            raises (also ``KeyboardInterrupt``) stops the job: no new request is
            sent and requests in flight are abandoned.
        progress : None, bool or object with ``update(n)``
            ``None``/``True``/``False``: a tqdm bar (auto/on/off); an object: its
            ``update`` gets the number of texts finished, and ``set_postfix`` (if
            present) tokens and estimated cost.

        Raises
        ------
        TypeError, ValueError
            Bad texts (before any request is sent).
        OpenAIRequestError
            A request failed for good.
        EmbeddingResponseError
            A response failed its checks.
        """
        counts = validate_texts(texts, truncate=self.truncate, max_tokens=MAX_TOKENS_PER_INPUT)
        if len(texts) == 0:
            return
        plan = plan_inputs(texts, counts, self.truncate)
        requests = pack_requests(plan.tokens, max_inputs=self.batch_size,
                                 max_tokens=self.max_tokens_per_request)
        log.info("embedding %d texts (%d tokens) with %s in %d requests", len(texts),
                 int(plan.tokens.sum()), self.model, len(requests))
        bar, own_bar = _progress(progress, len(texts))
        combine = _ChunkAverager(plan) if plan.chunked else None
        cancel = threading.Event()  # per job: abandoned workers of an earlier job stay stopped
        pool = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="embalg-openai")
        pending = {}
        queue = iter(requests)
        tokens_done = 0
        try:
            for span in queue:
                pending[pool.submit(self._embed_span, plan, *span, cancel)] = span
                if len(pending) >= self.max_concurrency:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    pending.pop(fut)
                    for start, stop, vectors in fut.result():
                        if combine is None:
                            idx, vecs = list(range(start, stop)), vectors
                        else:
                            idx, vecs = combine.add(start, stop, vectors)
                        tokens_done += int(plan.tokens[start:stop].sum())
                        if len(idx):
                            on_result(idx, vecs)
                            bar.update(len(idx))
                            if hasattr(bar, "set_postfix"):
                                bar.set_postfix(tokens=tokens_done,
                                                usd=f"{estimate_cost(self.model, tokens_done):.4f}",
                                                refresh=False)
                    nxt = next(queue, None)
                    if nxt is not None:
                        pending[pool.submit(self._embed_span, plan, *nxt, cancel)] = nxt
        finally:
            if pending:
                cancel.set()
                for fut in pending:
                    fut.cancel()
                log.info("stopping: %d requests in flight are abandoned", len(pending))
            pool.shutdown(wait=not pending, cancel_futures=True)
            if own_bar:
                bar.close()

    # -- one request (runs on a worker thread) ---------------------------------------
    def _embed_span(self, plan, start: int, stop: int, cancel: threading.Event) -> list:
        """``[(start, stop, vectors), ...]`` for inputs ``start:stop`` (more than one part after splits)."""
        inputs = plan.inputs[start:stop]
        tokens = int(plan.tokens[start:stop].sum())
        attempt = 0
        while True:
            if cancel.is_set():
                raise OpenAIRequestError("the job was stopped")
            self.pacer.acquire(tokens, cancel)
            try:
                return [(start, stop, self._post(inputs, tokens, f"request for inputs {start}..{stop - 1}"))]
            except _Retryable as exc:
                attempt += 1
                if attempt > self.retry.max_retries:
                    raise OpenAIRequestError(redact(
                        f"request for inputs {start}..{stop - 1} failed after {attempt} attempts; "
                        f"last error: {exc.reason}", self._key)) from None
                delay = self.retry.delay(attempt, exc.retry_after)
                log.warning("retrying request for inputs %d..%d in %.2f s (attempt %d): %s",
                            start, stop - 1, delay, attempt + 1, redact(exc.reason, self._key))
                with self._count_lock:
                    self.counters["retries"] += 1
                cancel.wait(delay)
            except _SplitRequest:
                if stop - start < 2:
                    raise OpenAIRequestError(
                        f"input {start} alone is over the server's max_tokens_per_request") from None
                mid = (start + stop) // 2
                log.info("server says request %d..%d has too many tokens: splitting", start, stop - 1)
                with self._count_lock:
                    self.counters["splits"] += 1
                return (self._embed_span(plan, start, mid, cancel)
                        + self._embed_span(plan, mid, stop, cancel))

    def _post(self, inputs, tokens: int, where: str) -> np.ndarray:
        import openai

        kwargs = {"dimensions": self.dimensions} if self.dimensions is not None else {}
        with self._count_lock:
            self.counters["requests"] += 1
        try:
            # the inputs go in extra_body (which takes precedence over input=): the client's
            # per-item type transform of 2048 strings would cost more than the request itself
            raw = self._client.embeddings.with_raw_response.create(
                input="", model=self.model, encoding_format="base64", extra_body={"input": inputs},
                **kwargs)
            body = raw.content
        except openai.APIStatusError as exc:
            self._raise_for_status(exc, where)
        except openai.APITimeoutError:
            raise _Retryable("timed out") from None
        except openai.APIConnectionError as exc:
            raise _Retryable(f"connection error ({type(exc.__cause__ or exc).__name__})") from None
        self.pacer.update(raw.headers)
        try:
            payload = json.loads(body)
        except ValueError:
            raise _Retryable(f"malformed JSON in the response ({len(body)} bytes)") from None
        with self._count_lock:
            self.counters["inputs"] += len(inputs)
            self.counters["tokens"] += tokens
        with self._dim_lock:
            dim = self._dim
        vectors = decode_embeddings(payload, len(inputs), dim, where=where)
        if dim is None:
            with self._dim_lock:
                if self._dim is None:
                    self._dim = vectors.shape[1]
                elif self._dim != vectors.shape[1]:
                    raise EmbeddingResponseError(f"{where}: {vectors.shape[1]} dimensions, earlier "
                                                 f"responses had {self._dim}")
        return vectors

    def _raise_for_status(self, exc, where: str):
        status = exc.status_code
        message = redact(_error_message(exc), self._key)
        if status == 400 and ("max_tokens_per_request" in message
                              or "tokens per request" in message.lower()):
            raise _SplitRequest() from None
        if status in _RETRY_STATUS or status >= 500:
            after = retry_after_seconds(exc.response.headers)
            if status == 429 and after is not None:
                self.pacer.pause(after)
            self.pacer.update(exc.response.headers)
            raise _Retryable(f"HTTP {status}: {message}", after) from None
        hint = " (check OPENAI_API_KEY)" if status in (401, 403) else ""
        raise OpenAIRequestError(f"{where} was rejected with HTTP {status}{hint}: {message}") from None


class _SplitRequest(Exception):
    pass


def _error_message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            code = err.get("code") or err.get("type")
            return f"{err['message']}{f' ({code})' if code else ''}"
    return str(getattr(exc, "message", "") or exc)[:500]


class _ChunkAverager:
    """Collects the pieces of chunked texts; a text is finished when all its pieces are in.

    The text's vector is the token-weighted mean of its pieces' unit vectors, renormalized.
    """

    def __init__(self, plan):
        self.plan = plan
        self.remaining = np.bincount(plan.owner)
        self.sums: dict[int, np.ndarray] = {}

    def add(self, start: int, stop: int, vectors: np.ndarray):
        owner = self.plan.owner[start:stop]
        weights = self.plan.tokens[start:stop].astype(np.float64)
        done_idx, done_vecs = [], []
        for k in range(stop - start):
            i = int(owner[k])
            acc = self.sums.get(i)
            contrib = vectors[k].astype(np.float64) * weights[k]
            self.sums[i] = contrib if acc is None else acc + contrib
            self.remaining[i] -= 1
            if self.remaining[i] == 0:
                v = self.sums.pop(i)
                done_idx.append(i)
                done_vecs.append(v / np.linalg.norm(v))
        d = vectors.shape[1]
        return done_idx, np.asarray(done_vecs, dtype=np.float32).reshape(len(done_idx), d)


def _progress(progress, total):
    if progress is None or isinstance(progress, bool):
        from ..progress import progress_bar

        return progress_bar(total, desc="embedding", unit="text", progress=progress), True
    return progress, False

"""Token counting, input checks and request packing for the OpenAI embeddings API.

Token counts are exact cl100k_base counts computed offline with ``bpe-openai``
(the tokenizer of text-embedding-3-* and ada-002; special-token text such as
``"<|endoftext|>"`` is counted as ordinary text, as the API does).

The API limits are: at most :data:`MAX_INPUTS_PER_REQUEST` inputs and
:data:`MAX_TOKENS_PER_REQUEST` tokens per request, at most
:data:`MAX_TOKENS_PER_INPUT` tokens per input, no empty strings. An input over
the per-input limit is an error unless the caller asks for ``"truncate"`` (keep
the first 8191 tokens) or ``"chunk_average"`` (embed consecutive 8191-token
chunks and average them weighted by their token counts, then renormalize).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

MAX_INPUTS_PER_REQUEST = 2048
MAX_TOKENS_PER_REQUEST = 300_000
MAX_TOKENS_PER_INPUT = 8191
TRUNCATE_MODES = (None, "truncate", "chunk_average")

_EXACT_CHARS = 100_000  # texts shorter than this are encoded whole; longer ones by growing prefixes


@functools.lru_cache(maxsize=None)
def encoding():
    """The cl100k_base encoding (``bpe_openai``; loaded once, offline)."""
    import bpe_openai

    return bpe_openai.get_encoding("cl100k_base")


def _prefix_tokens(text: str, limit: int) -> list[int]:
    """Tokens of ``text`` when it has at most ``limit`` of them, else at least ``limit + 1``.

    Short texts are encoded whole. A long text is encoded by doubling prefixes and
    stops as soon as a prefix alone is over the limit, so a 50 MB string costs
    about as much as the first few hundred kB of it. (A prefix may tokenize its
    last few characters differently from the full text, which can only move the
    count near the cut, far beyond ``limit``.)
    """
    enc = encoding()
    if len(text) <= _EXACT_CHARS:
        return enc.encode_ordinary(text)
    n = _EXACT_CHARS
    while True:
        tokens = enc.encode_ordinary(text[:n])
        if n >= len(text) or len(tokens) > limit + 16:
            return tokens
        n = min(2 * n, len(text))


def count_tokens(text: str, limit: int = MAX_TOKENS_PER_INPUT) -> int:
    """Exact cl100k_base token count of ``text`` when it is at most ``limit``; otherwise some count > ``limit``.

    Examples
    --------
    >>> count_tokens("hello world")
    2
    """
    if len(text) <= _EXACT_CHARS:
        return len(encoding().encode_ordinary(text))
    return len(_prefix_tokens(text, limit))


def validate_texts(texts, *, truncate=None, max_tokens: int = MAX_TOKENS_PER_INPUT) -> np.ndarray:
    """Check every text before anything is sent, and count its tokens.

    Parameters
    ----------
    texts : sequence of str
    truncate : {None, "truncate", "chunk_average"}
        With ``None`` an input over ``max_tokens`` tokens is an error.
    max_tokens : int
        Per-input token limit (8191 for the OpenAI embedding models).

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        Token counts (exact up to ``max_tokens``; over it only "some larger number").

    Raises
    ------
    TypeError
        ``texts`` is a bare string, or an item is not a ``str`` (its index and type are named).
    ValueError
        An empty string, a string with lone surrogates (not encodable as UTF-8),
        an input over ``max_tokens`` without a truncation mode, or an unknown mode.

    Examples
    --------
    >>> validate_texts(["a cat", "hello world"]).tolist()
    [2, 2]
    >>> validate_texts(["ok", ""])
    Traceback (most recent call last):
    ...
    ValueError: texts[1] is an empty string; the embeddings API rejects empty inputs (drop it or replace it)
    """
    if truncate not in TRUNCATE_MODES:
        raise ValueError(f"truncate must be one of {TRUNCATE_MODES}, got {truncate!r}")
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a sequence of str, got a single "
                        f"{type(texts).__name__}; wrap it in a list")
    counts = np.empty(len(texts), dtype=np.int64)
    enc = encoding()
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__} ({t!r:.60}); every input must be a str")
        if not t:
            raise ValueError(f"texts[{i}] is an empty string; the embeddings API rejects empty inputs "
                             "(drop it or replace it)")
        if not t.isascii():
            try:
                t.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(f"texts[{i}] is not valid Unicode ({exc.reason} at position "
                                 f"{exc.start}); it cannot be sent as UTF-8") from None
        if len(t) <= _EXACT_CHARS:
            counts[i] = len(enc.encode_ordinary(t))
        else:
            counts[i] = len(_prefix_tokens(t, max_tokens))
        if counts[i] > max_tokens and truncate is None:
            raise ValueError(f"texts[{i}] has more than {max_tokens} tokens (counted {counts[i]}"
                             f"{'+' if len(t) > _EXACT_CHARS else ''}); the model accepts at most "
                             f"{max_tokens}: pass truncate='truncate' or truncate='chunk_average'")
    return counts


def _decode_prefix(tokens: list[int], limit: int) -> str:
    """Text of the first ``<= limit`` tokens whose re-encoding also has ``<= limit`` tokens."""
    enc = encoding()
    k = min(limit, len(tokens))
    while k > 0:
        text = enc.decode_bytes(tokens[:k]).decode("utf-8", "ignore")
        if text and len(enc.encode_ordinary(text)) <= limit:
            return text
        k -= 1
    raise ValueError("could not cut a text into a non-empty piece within the token limit")


def split_tokens(text: str, limit: int = MAX_TOKENS_PER_INPUT) -> list[tuple[str, int]]:
    """Cut ``text`` into consecutive pieces of at most ``limit`` tokens: ``[(piece, n_tokens), ...]``.

    Each piece re-encodes to at most ``limit`` tokens (cuts never split a UTF-8 character).
    """
    enc = encoding()
    pieces = []
    rest = text
    while rest:
        tokens = _prefix_tokens(rest, limit)
        if len(tokens) <= limit:
            pieces.append((rest, len(tokens)))
            break
        piece = _decode_prefix(tokens, limit)
        pieces.append((piece, len(enc.encode_ordinary(piece))))
        rest = rest[len(piece):]
    return pieces


@dataclass
class InputPlan:
    """What is actually sent for a list of texts.

    ``inputs[k]`` is sent; it belongs to text ``owner[k]`` with weight ``weights[k]``
    (its token count, used by chunk-averaging); ``tokens[k]`` is its token count.
    Without chunking ``owner`` is ``arange(n)``. Pieces of one text are consecutive.
    """

    inputs: list
    tokens: np.ndarray
    owner: np.ndarray
    chunked: bool


def plan_inputs(texts, counts: np.ndarray, truncate=None,
                max_tokens: int = MAX_TOKENS_PER_INPUT) -> InputPlan:
    """Turn checked ``texts`` (with :func:`validate_texts` counts) into the inputs to send."""
    long = np.flatnonzero(counts > max_tokens)
    if len(long) == 0:
        return InputPlan(list(texts), counts, np.arange(len(texts)), False)
    if truncate == "truncate":
        inputs = list(texts)
        tokens = counts.copy()
        for i in long:
            inputs[i], tokens[i] = split_tokens(texts[i], max_tokens)[0]
        return InputPlan(inputs, tokens, np.arange(len(texts)), False)
    if truncate != "chunk_average":
        raise ValueError(f"{len(long)} texts are over {max_tokens} tokens (first: texts[{long[0]}]); "
                         "pass truncate='truncate' or 'chunk_average'")
    inputs, tokens, owner = [], [], []
    is_long = np.zeros(len(texts), bool)
    is_long[long] = True
    for i, t in enumerate(texts):
        pieces = split_tokens(t, max_tokens) if is_long[i] else [(t, int(counts[i]))]
        for piece, n in pieces:
            inputs.append(piece)
            tokens.append(n)
            owner.append(i)
    return InputPlan(inputs, np.asarray(tokens, np.int64), np.asarray(owner, np.int64), True)


def pack_requests(tokens: np.ndarray, *, max_inputs: int = MAX_INPUTS_PER_REQUEST,
                  max_tokens: int = MAX_TOKENS_PER_REQUEST) -> list[tuple[int, int]]:
    """Greedy packing of consecutive inputs into requests: ``[(start, stop), ...]``.

    Each request holds at most ``max_inputs`` inputs whose token counts sum to at
    most ``max_tokens`` (every single count must be ``<= max_tokens``).

    Examples
    --------
    >>> pack_requests(np.array([5, 5, 5, 5, 5]), max_inputs=2)
    [(0, 2), (2, 4), (4, 5)]
    >>> pack_requests(np.array([6, 6, 6]), max_tokens=12)
    [(0, 2), (2, 3)]
    """
    n = len(tokens)
    if n and int(np.max(tokens)) > max_tokens:
        raise ValueError(f"an input has {int(np.max(tokens))} tokens, more than the "
                         f"{max_tokens} allowed per request")
    csum = np.concatenate([[0], np.cumsum(tokens, dtype=np.int64)])
    out = []
    start = 0
    while start < n:
        # furthest stop with csum[stop] - csum[start] <= max_tokens
        stop = int(np.searchsorted(csum, csum[start] + max_tokens, side="right")) - 1
        stop = min(stop, start + max_inputs, n)
        out.append((start, stop))
        start = stop
    return out

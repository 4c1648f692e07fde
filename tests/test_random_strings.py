"""``ea.random_strings``: reproducible, documented kinds, no empty strings, clear errors."""
import hashlib
import subprocess
import sys

import pytest

import embalg as ea
from embalg.sources.random_strings import KINDS, word_vocabulary


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_reproducible_and_seed_dependent(kind):
    a = ea.random_strings(50, kind=kind, seed=7)
    assert a == ea.random_strings(50, kind=kind, seed=7)
    assert a != ea.random_strings(50, kind=kind, seed=8)
    assert len(a) == 50 and all(isinstance(s, str) and s.strip() for s in a)
    assert len(set(a)) > 40  # random, not one string repeated


def test_same_strings_in_a_fresh_process():
    code = ("import hashlib, embalg as ea; print(hashlib.sha256('\\x00'.join("
            "ea.random_strings(200, kind=k, seed=3)[i] for k in ('words', 'chars', 'tokens', "
            "'sentences') for i in range(200)).encode()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = hashlib.sha256("\x00".join(
        ea.random_strings(200, kind=k, seed=3)[i] for k in ("words", "chars", "tokens", "sentences")
        for i in range(200)).encode()).hexdigest()
    assert out.stdout.strip() == here


def test_words_are_3_to_12_vocabulary_words():
    vocab = set(word_vocabulary())
    assert len(vocab) > 15000 and {"river", "music", "house"} <= vocab
    assert not any(w.startswith("##") or not w.isalpha() for w in vocab)
    counts = []
    for s in ea.random_strings(2000, kind="words", seed=1):
        words = s.split(" ")
        assert set(words) <= vocab
        counts.append(len(words))
    assert min(counts) == 3 and max(counts) == 12


def test_chars_are_printable_ascii():
    strings = ea.random_strings(2000, kind="chars", seed=2)
    lengths = [len(s) for s in strings]
    assert min(lengths) == 10 and max(lengths) == 80
    assert all(s.isascii() and s.isprintable() and s[0] != " " for s in strings)
    assert len(set("".join(strings))) == 95


def test_tokens_decode_from_cl100k():
    from embalg.sources.random_strings import _cl100k

    enc = _cl100k()
    strings = ea.random_strings(300, kind="tokens", seed=4)
    lengths = [len(enc.encode_ordinary(s)) for s in strings]
    # re-encoding merges or splits some pieces, but the size follows the 4-32 token draw
    assert 2 <= min(lengths) and max(lengths) <= 80 and 10 < sum(lengths) / len(lengths) < 30


def test_sentences_are_templates():
    strings = ea.random_strings(500, kind="sentences", seed=5)
    assert all(s[0].isupper() and s[-1] in ".?" for s in strings)
    assert any(s.startswith("The ") and s.count(" ") == 3 for s in strings)  # "The {noun} is {adj}."


def test_zero_strings():
    assert ea.random_strings(0) == []


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"n": -1}, ValueError, "n must be >= 0"),
    ({"n": 2.5}, TypeError, "n must be an integer"),
    ({"n": True}, TypeError, "n must be an integer"),
    ({"n": 3, "kind": "emoji"}, ValueError, "kind must be one of"),
    ({"n": 3, "seed": "x"}, TypeError, "seed must be an integer"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ea.random_strings(**kwargs)


def test_pinned_values_do_not_drift():
    """Strings recorded once (numpy default_rng is stable across platforms and versions):
    a change here means every study built on random strings would change too."""
    assert ea.random_strings(2, kind="sentences", seed=0) == [
        "Why is the storm so red?", "Every mountain visits the quiet river."]
    assert ea.random_strings(2, kind="words", seed=0)[0] == (
        "jenks preliminary disabled bill glanced across missions shreveport scaled etymology tutor")
    assert ea.random_strings(2, kind="chars", seed=0)[0].startswith("$p%9d<^6N#*8c.5!5r0LM2")
    assert ea.random_strings(2, kind="tokens", seed=0)[0].startswith("Php Essay suspectsacity")

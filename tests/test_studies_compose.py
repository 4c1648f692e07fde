"""The composition study's logic, with a deterministic stand-in embedder (the real model runs in
tests/test_studies_cli.py)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import embalg as ea
from embalg.studies import compose as cp


def word_embed(texts, d=32):
    """Bag of words of seeded random vectors: "A and B" is close to A + B by construction."""
    out = []
    for t in texts:
        v = np.zeros(d)
        for w in t.lower().replace(".", " ").split():
            seed = int.from_bytes(hashlib.sha256(w.encode()).digest()[:4], "little")
            v += np.random.default_rng(seed).standard_normal(d)
        out.append(v / np.linalg.norm(v))
    return np.array(out, dtype=np.float32)


def test_table_matrix_and_operator_json():
    t = cp.compose_table("The ball is blue.", "The ball is big.", ["The ball is blue and big."],
                         word_embed)
    texts = ["The ball is blue.", "The ball is big.", "The ball is blue and big.",
             "The ball is blue. The ball is big."]
    assert t["labels"] == texts + list(cp.OPERATORS)
    m = np.asarray(t["matrix"])
    assert m.shape == (len(t["labels"]),) * 2
    np.testing.assert_allclose(m, m.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-6)
    # JSON: {"operators": {name: {text: cosine}}}, names as in the API
    assert set(t["operators"]) == set(cp.OPERATORS)
    assert {"nsum", "geomean_signed", "geomean_agree", "hadamard", "hadamard_div"} <= set(t["operators"])
    vecs = word_embed(texts).astype(np.float64)
    expect = ea.nsum(vecs[0], vecs[1])
    for i, text in enumerate(texts):
        assert t["operators"]["nsum"][text] == pytest.approx(float(expect @ vecs[i]), abs=1e-6)
    expect = ea.geomean(vecs[0], vecs[1], variant="agree")
    assert t["operators"]["geomean_agree"][texts[2]] == pytest.approx(float(expect @ vecs[2]), abs=1e-6)
    json.dumps(t)


def test_format_table_like_the_thread():
    t = cp.compose_table("a b", "c d", [], word_embed)
    lines = cp.format_table(t, digits=3).splitlines()
    assert len(lines) == 1 + len(t["labels"])
    assert lines[1].startswith("a b ") and lines[1].split()[-len(t["labels"]):][0] == "1.000"
    assert all(len(line) == len(lines[0]) for line in lines)


def test_table_refuses_identical_texts():
    with pytest.raises(ValueError, match="same text"):
        cp.compose_table("x", "x", [], word_embed)


def test_template_triples_are_distinct_and_seeded():
    a = cp.template_triples("and", 50, seed=1)
    assert a == cp.template_triples("and", 50, seed=1)
    assert len({json.dumps(t) for t in a}) == 50
    for t in a:
        x = t["a"].split()[1]
        adj_a, adj_b = t["a"].split()[-1][:-1], t["b"].split()[-1][:-1]
        assert t["combined"] == f"The {x} is {adj_a} and {adj_b}."
    n = cp.template_triples("not", 3, seed=2)
    assert all(" and not " in t["combined"] for t in n)
    with pytest.raises(ValueError, match="unknown template"):
        cp.template_triples("or", 3)
    with pytest.raises(ValueError, match="between 1 and"):
        cp.template_triples("and", 0)


def test_dataset_ranking_means_cis_and_baselines():
    triples = cp.template_triples("and", 40, seed=0)
    rep = cp.compose_dataset(triples, word_embed, resamples=300, seed=0)
    names = [r["name"] for r in rep["ranking"]]
    assert set(names) == set(cp.OPERATORS) | {"A alone", "B alone", "closer of A and B",
                                              "concatenation 'A B' (re-embedded)"}
    means = [r["mean"] for r in rep["ranking"]]
    assert means == sorted(means, reverse=True)
    # direct recomputation of two entries
    uniq = sorted({s for t in triples for s in (t["a"], t["b"], t["combined"])})
    e = dict(zip(uniq, word_embed(uniq)))
    a = np.array([e[t["a"]] for t in triples], np.float64)
    b = np.array([e[t["b"]] for t in triples], np.float64)
    c = np.array([e[t["combined"]] for t in triples], np.float64)
    by = {r["name"]: r for r in rep["ranking"]}
    ca, cb = (a * c).sum(1), (b * c).sum(1)
    assert by["A alone"]["mean"] == pytest.approx(ca.mean(), abs=1e-6)
    assert by["closer of A and B"]["mean"] == pytest.approx(np.maximum(ca, cb).mean(), abs=1e-6)
    ns = np.asarray(ea.nsum(a, b))
    assert by["nsum"]["mean"] == pytest.approx((ns * c).sum(1).mean(), abs=1e-6)
    for r in rep["ranking"]:
        assert r["ci"][0] <= r["mean"] <= r["ci"][1]
    assert by["closer of A and B"]["vs_closer"]["mean_diff"] == 0.0
    # bag of words: the sum of A and B beats either part alone
    assert by["nsum"]["mean"] > by["closer of A and B"]["mean"]
    assert rep["operators"]["nsum"] == by["nsum"]["mean"]


def test_dataset_needs_two_triples():
    with pytest.raises(ValueError, match="at least 2 triples"):
        cp.compose_dataset(cp.template_triples("and", 1), word_embed)


def test_bootstrap_ci_covers_and_narrows():
    rng = np.random.default_rng(0)
    v = rng.normal(0.5, 0.1, 400)
    lo, hi = cp.bootstrap_ci(v, resamples=1000)
    assert lo < v.mean() < hi
    se = v.std(ddof=1) / np.sqrt(v.size)
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.2)
    with pytest.raises(ValueError):
        cp.bootstrap_ci([])


@pytest.mark.parametrize("body,msg", [
    ('{"a": "x", "b": "y"}\n', "'combined'"),
    ('not json\n', "not valid JSON"),
    ('{"a": "x", "b": "x", "combined": "z"}\n', "a == b"),
    ('\n', "holds no triples"),
])
def test_read_pairs_errors(tmp_path, body, msg):
    p = tmp_path / "p.jsonl"
    p.write_text(body)
    with pytest.raises(ValueError, match=msg):
        cp.read_pairs(p)


def test_read_pairs_ok(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"a": "x.", "b": "y.", "combined": "x and y.", "extra": 1}\n\n')
    assert cp.read_pairs(p) == [{"a": "x.", "b": "y.", "combined": "x and y."}]
    with pytest.raises(FileNotFoundError):
        cp.read_pairs(tmp_path / "missing.jsonl")


def test_ranking_figure_draws():
    rep = cp.compose_dataset(cp.template_triples("not", 6, seed=3), word_embed, resamples=50)
    fig = cp.ranking_figure(rep)
    assert len(fig.axes[0].patches) == len(rep["ranking"])
    assert "| 1 |" in cp.dataset_markdown(rep)

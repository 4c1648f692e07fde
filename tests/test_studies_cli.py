"""End-to-end study commands on the real offline local model (all-MiniLM-L6-v2), tiny n.

The model is loaded once per process (``embalg.sources.local`` keeps it); the texts embedded
here total about 200.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import embalg as ea
from embalg.cli import main


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private embedding cache, with the local model loaded once for the module."""
    path = tmp_path_factory.mktemp("cache") / "embeddings.sqlite"
    ea.embed(["warm up the model"], cache=None, progress=False)
    return str(path)


def read_report(d):
    return json.loads((d / "report.json").read_text())


def test_cone_end_to_end_then_from_its_vectors(tmp_path, cache, capsys):
    out = tmp_path / "cone"
    assert main(["cone", "--n", "60", "--kind", "words", "--seed", "3", "--out", str(out),
                 "--save-vectors", "--bins", "200", "--cache", cache]) == 0
    rep = read_report(out)
    for key in ("half_angle_deg", "cone_width_deg", "mean_pairwise_cosine", "min_pairwise_cosine",
                "anisotropy", "isoscore", "centroid_norm", "variants", "timing_s"):
        assert key in rep
    assert rep["n"] == 60 and rep["d"] == 384 and rep["model"] == "local:all-MiniLM-L6-v2"
    assert rep["timing_s"]["embedding"] > 0 and rep["timing_s"]["statistics"] > 0
    assert set(rep["variants"]) == {"raw", "centered", "all_but_the_top"}
    x = np.load(out / "vectors.npy")
    texts = (out / "texts.txt").read_text().splitlines()
    assert x.shape == (60, 384) and texts == ea.random_strings(60, kind="words", seed=3)
    # the figures, recomputed directly from the saved vectors
    u = x.astype(np.float64)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    mu = u.mean(axis=0)
    np.testing.assert_allclose(np.load(out / "centroid.npy"), mu, atol=1e-12)
    half = math.degrees(math.acos((u @ mu / np.linalg.norm(mu)).min()))
    assert rep["half_angle_deg"] == pytest.approx(half, abs=1e-6)
    iu = np.triu_indices(60, 1)
    assert rep["mean_pairwise_cosine"] == pytest.approx((u @ u.T)[iu].mean(), abs=1e-5)
    close = rep["variants"]["raw"]["pairwise"]["closest_pair"]
    assert close["text_i"] == texts[close["i"]] and close["text_j"] == texts[close["j"]]
    for png in ("pairwise_hist.png", "cos_to_centroid_hist.png", "pca_spectrum.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"

    # the same study from the vectors file (texts label the rows; --model checks d)
    again = tmp_path / "again"
    assert main(["cone", "--vectors", str(out / "vectors.npy"), "--texts", str(out / "texts.txt"),
                 "--model", "local:all-MiniLM-L6-v2", "--bins", "200", "--seed", "3",
                 "--out", str(again), "--cache", cache]) == 0
    rep2 = read_report(again)
    for key in ("half_angle_deg", "mean_pairwise_cosine", "min_pairwise_cosine", "isoscore"):
        assert rep2[key] == pytest.approx(rep[key], abs=1e-9)
    assert rep2["timing_s"]["embedding"] == 0.0


def test_vectors_dimension_must_match_model(tmp_path, cache, capsys):
    np.save(tmp_path / "v.npy", np.eye(12, 16, dtype=np.float32))
    rc = main(["cone", "--vectors", str(tmp_path / "v.npy"), "--model", "local:all-MiniLM-L6-v2",
               "--out", str(tmp_path / "o"), "--cache", cache])
    err = capsys.readouterr().err
    assert rc == 2 and "d = 16" in err and "d = 384" in err
    assert not (tmp_path / "o" / "report.json").exists()


def test_long_texts_are_truncated_by_the_local_model(tmp_path, cache):
    long = " ".join(["embedding"] * 600)             # over 256 word pieces
    (tmp_path / "t.txt").write_text("\n".join([long, "short text", "another one", "blue ball"]))
    assert main(["cone", "--texts", str(tmp_path / "t.txt"), "--out", str(tmp_path / "o"),
                 "--cache", cache, "--bins", "50"]) == 0
    assert read_report(tmp_path / "o")["n"] == 4


def test_openai_model_without_key_is_a_clear_error(tmp_path, cache, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    rc = main(["cone", "--n", "5", "--model", "openai:text-embedding-3-small",
               "--out", str(tmp_path / "o"), "--no-cache"])
    assert rc != 0
    assert "OPENAI_API_KEY" in capsys.readouterr().err


def test_compose_table_and_json(tmp_path, cache, capsys):
    path = tmp_path / "t.json"
    assert main(["compose", "The ball is blue.", "The ball is big.",
                 "--target", "The ball is blue and big.", "--json", str(path),
                 "--cache", cache]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].startswith("The ball is blue.")
    table = json.loads(path.read_text())
    assert set(table["operators"]) >= {"nsum", "geomean_signed", "geomean_agree", "hadamard",
                                       "hadamard_div"}
    row = table["operators"]["nsum"]
    assert set(row) == {"The ball is blue.", "The ball is big.", "The ball is blue and big.",
                        "The ball is blue. The ball is big."}
    v = ea.embed(["The ball is blue.", "The ball is big.", "The ball is blue and big."],
                 cache=cache, progress=False).astype(np.float64)
    s = ea.nsum(v[0], v[1])
    assert row["The ball is blue and big."] == pytest.approx(float(s @ v[2]), abs=1e-5)
    # the thread's finding, on this model: the normalized sum beats the product
    assert row["The ball is blue and big."] > table["operators"]["hadamard"]["The ball is blue and big."]


def test_compose_dataset_template_and_pairs(tmp_path, cache, capsys):
    out = tmp_path / "ds"
    assert main(["compose", "--template", "and", "--n", "12", "--resamples", "200",
                 "--out", str(out), "--cache", cache]) == 0
    rep = read_report(out)
    assert rep["n_triples"] == 12 and (out / "ranking.png").exists() and (out / "report.md").exists()
    names = {r["name"] for r in rep["ranking"]}
    assert {"A alone", "B alone", "closer of A and B", "nsum", "hadamard_div"} <= names
    assert main(["compose", "--template", "and", "--n", "12", "--out", str(out),
                 "--cache", cache]) == 2                       # existing DIR refused
    pairs = tmp_path / "p.jsonl"
    pairs.write_text("\n".join(json.dumps(t) for t in [
        {"a": "The cup is red.", "b": "The cup is full.", "combined": "The cup is red and full."},
        {"a": "The car is old.", "b": "The car is fast.", "combined": "The car is old and fast."},
        {"a": "The sky is grey.", "b": "The sky is cold.", "combined": "The sky is grey and cold."},
    ]))
    assert main(["compose", "--pairs", str(pairs), "--out", str(tmp_path / "p"), "--resamples",
                 "100", "--cache", cache]) == 0
    assert read_report(tmp_path / "p")["n_triples"] == 3
    capsys.readouterr()
    assert main(["compose", "--template", "and", "--cache", cache]) == 2
    assert "--out" in capsys.readouterr().err


def test_compose_bad_texts(tmp_path, capsys):
    assert main(["compose", "only one"]) == 2
    assert main(["compose", "same", "same"]) == 2
    assert "same text" in capsys.readouterr().err
    assert main(["compose", " ", "x"]) == 2
    assert "empty" in capsys.readouterr().err


def test_props_end_to_end(tmp_path, cache):
    out = tmp_path / "props"
    assert main(["props", "--n", "40", "--out", str(out), "--cache", cache]) == 0
    rep = read_report(out)
    assert rep["d"] == 384 and rep["n"] == 40
    assert set(rep["operators"]) == {"nsum", "hadamard", "hadamard_div", "geomean_signed",
                                     "geomean_agree"}
    ex = rep["all_negative_example"]["angle_to_operand_deg"]
    assert ex["min"] == pytest.approx(180.0, abs=1e-3)
    for png in ("closure_cone.png", "closure_nearest.png", "algebra_errors.png"):
        assert (out / png).exists()
    assert main(["props", "--n", "5", "--out", str(tmp_path / "few"), "--cache", cache]) == 2


def test_studies_through_an_openai_compatible_server(tmp_path, monkeypatch, capsys):
    """--model openai:... goes through the OpenAI client (a loopback fake: no network, no key)."""
    from fake_openai_server import FakeOpenAI, fake_vector

    with FakeOpenAI(api_key="sk-test-studies-0123456789") as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-studies-0123456789")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        model = ["--model", "openai:text-embedding-3-small", "--dimensions", "64",
                 "--cache", str(tmp_path / "c.sqlite")]
        assert main(["cone", "--n", "30", "--out", str(tmp_path / "cone"), "--save-vectors",
                     *model]) == 0
        rep = read_report(tmp_path / "cone")
        assert rep["d"] == 64 and rep["model"] == "openai:text-embedding-3-small"
        texts = (tmp_path / "cone" / "texts.txt").read_text().splitlines()
        x = np.load(tmp_path / "cone" / "vectors.npy")
        np.testing.assert_allclose(x[7], fake_vector("text-embedding-3-small", texts[7], 64),
                                   atol=1e-6)
        # a 64-d file fits the 64-d model; the native 1536-d model does not
        assert main(["cone", "--vectors", str(tmp_path / "cone" / "vectors.npy"),
                     "--out", str(tmp_path / "again"), *model]) == 0
        capsys.readouterr()
        assert main(["cone", "--vectors", str(tmp_path / "cone" / "vectors.npy"),
                     "--out", str(tmp_path / "bad"), "--model", "openai:text-embedding-3-small",
                     "--no-cache"]) == 2
        assert "d = 1536" in capsys.readouterr().err
        assert main(["compose", "A cat.", "A dog.", "--json", str(tmp_path / "t.json"),
                     *model]) == 0
        assert "hadamard" in json.loads((tmp_path / "t.json").read_text())["operators"]

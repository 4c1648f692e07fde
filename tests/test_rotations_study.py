"""The rotation and alignment studies: core functions with a cheap deterministic embedder,
the CLI end to end, and one small real run with the offline local model (< 200 texts)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import embalg as ea
from embalg.alignment import AlignmentMap
from embalg.cli import main
from embalg.studies import align as align_study_mod
from embalg.studies import rotations as rs


def hashed_bag_embed(texts, d=48):
    """Deterministic fake embedder: the normalized sum of a fixed random vector per word."""
    out = np.zeros((len(texts), d))
    for i, t in enumerate(texts):
        for word in t.lower().replace(".", " ").split():
            seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
            out[i] += np.random.default_rng(seed).standard_normal(d)
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def planted_rotation_embed(texts, d=32):
    """'after' texts (ending in ' [edited]') are 'before' rotated by one fixed plane rotation."""
    base = hashed_bag_embed([t.replace(" [edited]", "") for t in texts], d).astype(np.float64)
    r = ea.rotation(np.eye(d)[0] + 0.3 * np.eye(d)[2], np.eye(d)[1] + 0.2 * np.eye(d)[3])
    edited = np.array([t.endswith(" [edited]") for t in texts])
    base[edited] = r.apply(base[edited])
    return base


def test_template_pairs_are_distinct_reproducible_and_of_one_kind():
    for kind in rs.EDIT_KINDS:
        p1 = rs.template_pairs(kind, 60, seed=4)
        assert p1 == rs.template_pairs(kind, 60, seed=4)
        assert len(set(p1)) == 60
        assert p1 != rs.template_pairs(kind, 60, seed=5)
    assert all(a.replace(" is ", " is not ") == b for a, b in rs.template_pairs("negate", 30))
    assert all(a.replace("red", "blue") == b for a, b in rs.template_pairs("colour", 30))
    with pytest.raises(ValueError, match="only 240 distinct pairs"):
        rs.template_pairs("colour", 1000)
    with pytest.raises(ValueError, match="unknown edit kind"):
        rs.template_pairs("shout", 3)


def test_plane_angles_known_cases():
    e = np.eye(5)
    # same plane, different bases -> both angles 0
    c, s = np.cos(0.3), np.sin(0.3)
    ang = rs.plane_angles(e[[0]], e[[1]], c * e[[0]] + s * e[[1]], -s * e[[0]] + c * e[[1]])
    np.testing.assert_allclose(ang, [[0, 0]], atol=1e-7)
    # orthogonal planes -> both 90 degrees
    np.testing.assert_allclose(np.degrees(rs.plane_angles(e[[0]], e[[1]], e[[2]], e[[3]])), [[90, 90]])
    # one shared line, the other tilted by 30 degrees
    t = np.radians(30)
    ang = np.degrees(rs.plane_angles(e[[0]], e[[1]], e[[0]], np.cos(t) * e[[1]] + np.sin(t) * e[[2]]))
    np.testing.assert_allclose(np.sort(ang[0]), [0, 30], atol=1e-6)


def test_score_ranks_and_cosines():
    t = np.eye(4)
    s = rs.score(t, t)
    assert s == {"mean_cosine": 1.0, "top1": 1.0, "mean_rank": 1.0, "mrr": 1.0}
    s = rs.score(t[[1, 0, 2, 3]], t)       # rows 0 and 1 swapped: their true target ranks 2nd
    assert s["top1"] == 0.5 and s["mean_rank"] == 1.5


def test_planted_rotation_is_recovered():
    """When every edit IS one (non-minimal) rotation, Procrustes recovers it; one pair's minimal
    rotation acts in span{a, Ra}, not in the planted plane, so it helps but is not exact."""
    pairs = {"planted": [(b, b + " [edited]") for b, _ in rs.template_pairs("negate", 60, seed=1)]}
    rep = rs.rotation_study(pairs, planted_rotation_embed, seed=3, progress=False)
    k = rep["kinds"]["planted"]
    m = k["methods"]
    assert m["procrustes"]["mean_cosine"] > 0.99
    assert m["procrustes"]["top1"] >= m["no change"]["top1"]
    assert m["procrustes"]["mean_cosine"] > m["one pair's rotation (best on train)"]["mean_cosine"]
    assert m["one pair's rotation (best on train)"]["mean_cosine"] > m["no change"]["mean_cosine"]
    assert k["rotation_angle_deg"]["max"] < 90
    # pair rotation planes are not the planted plane (minimal rotations of different
    # vectors), but the mismatched reference is further apart
    pa = k["plane_angle_deg"]
    assert pa["same_kind_larger"]["median"] < pa["mismatched_larger"]["median"]
    assert rep["verdict"]["planted"]["single_rotation_beats_baselines"]


def test_unstructured_edits_are_not_called_rotations():
    """Random 'after' vectors: no method beats 'no change' by much and planes look random."""
    rng = np.random.default_rng(0)
    texts = [f"t{i}" for i in range(120)]
    table = {t: v for t, v in zip(texts, rng.standard_normal((120, 40)))}
    pairs = {"random": [(texts[i], texts[60 + i]) for i in range(60)]}
    rep = rs.rotation_study(pairs, lambda ts: np.array([table[t] for t in ts]), progress=False)
    k = rep["kinds"]["random"]
    assert k["plane_angle_deg"]["same_kind_larger"]["median"] > 80
    assert abs(k["difference_direction_cosine"]["mean"]) < 0.1
    assert k["methods"]["one pair's rotation (median)"]["mean_cosine"] < 0.2


def test_study_rejects_bad_arguments():
    pairs = {"negate": rs.template_pairs("negate", 10)}
    with pytest.raises(ValueError, match="train_frac"):
        rs.rotation_study(pairs, hashed_bag_embed, train_frac=1.0, progress=False)
    with pytest.raises(ValueError, match="at least 4 pairs"):
        rs.rotation_study({"negate": pairs["negate"][:3]}, hashed_bag_embed, progress=False)
    with pytest.raises(ValueError, match="embed returned shape"):
        rs.rotation_study(pairs, lambda t: np.ones((3, 4)), progress=False)


def test_read_pairs_formats_and_errors(tmp_path):
    j = tmp_path / "p.jsonl"
    j.write_text('{"before": "a b", "after": "a c", "kind": "x"}\n\n{"before": "d", "after": "e"}\n')
    assert rs.read_pairs(j) == {"x": [("a b", "a c")], "pairs": [("d", "e")]}
    t = tmp_path / "p.tsv"
    t.write_text("a\tb\n c\td\tk\n")
    assert rs.read_pairs(t) == {"pairs": [("a", "b")], "k": [(" c", "d")]}
    bad = {"bad1.jsonl": "{not json}\n", "bad2.jsonl": '{"before": "a"}\n',
           "bad3.tsv": "only one field\n", "bad4.tsv": "same\tsame\n", "bad5.tsv": "\n"}
    for name, body in bad.items():
        (tmp_path / name).write_text(body)
        with pytest.raises(ValueError, match=name.split(".")[0][:3]):
            rs.read_pairs(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        rs.read_pairs(tmp_path / "missing.jsonl")


def test_rotations_cli_with_pairs_file(tmp_path, monkeypatch, capsys):
    import embalg.studies.inputs as inputs

    monkeypatch.setattr(inputs, "embed_texts", lambda texts, args, progress=None: hashed_bag_embed(texts))
    pf = tmp_path / "pairs.jsonl"
    pf.write_text("".join(json.dumps({"before": b, "after": a, "kind": k}) + "\n"
                          for k in ("negate", "plural") for b, a in rs.template_pairs(k, 30)))
    out = tmp_path / "run"
    assert main(["rotations", "--pairs", str(pf), "--out", str(out), "--seed", "2"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["kinds"]) == {"negate", "plural"} and rep["d"] == 48
    assert "_raw" not in rep["kinds"]["negate"]
    assert set(rep["kinds"]["negate"]["methods"]) == set(rs.METHODS)
    for f in ("report.md", "rotation_angles.png", "plane_angles.png", "methods.png"):
        assert (out / f).stat().st_size > 0
    assert "negate" in capsys.readouterr().out
    # refuses an existing directory without --force
    assert main(["rotations", "--pairs", str(pf), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["rotations", "--pairs", str(pf), "--out", str(out), "--force"]) == 0
    assert main(["rotations", "--pairs", str(pf), "--kinds", "negate", "--out", str(tmp_path / "k")]) == 2
    assert "--kinds chooses generated edits" in capsys.readouterr().err
    assert main(["rotations", "--n", "0", "--out", str(tmp_path / "z")]) == 2


def test_align_study_recovers_a_rotation_across_dimensions():
    rng = np.random.default_rng(1)
    src = rng.standard_normal((600, 24))
    Q, _ = np.linalg.qr(rng.standard_normal((40, 24)))          # 24 -> 40, orthonormal columns
    dst = src @ Q.T + 0.05 * rng.standard_normal((600, 40))
    rep, maps = align_study_mod.align_study(src, dst, train_frac=0.5, seed=3)
    assert rep["n_train"] == 300 and rep["n_heldout"] == 300
    assert rep["methods"]["procrustes"]["top1"] == 1.0
    assert rep["methods"]["procrustes"]["mean_cosine"] > 0.99
    np.testing.assert_allclose(maps["procrustes"].matrix, Q.T, atol=0.02)
    # the same space twice: identity is scored as the baseline and is perfect
    rep2, _ = align_study_mod.align_study(src, src, seed=0)
    assert rep2["methods"]["identity (no map)"] == {"mean_cosine": pytest.approx(1.0), "top1": 1.0,
                                                   "n": 120}
    with pytest.raises(ValueError, match="SRC has 600 rows but DST has 599"):
        align_study_mod.align_study(src, dst[:-1])
    with pytest.raises(ValueError, match="at least 2 rows"):
        align_study_mod.align_study(src[:1], dst[:1])


def test_retrieval_scores_blocks_agree():
    rng = np.random.default_rng(2)
    t = rng.standard_normal((50, 8))
    p = t + 0.8 * rng.standard_normal((50, 8))
    full = align_study_mod.retrieval_scores(p, t)
    assert align_study_mod.retrieval_scores(p, t, block_rows=7) == full
    assert 0 < full["top1"] < 1


def test_align_cli_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(4)
    src = rng.standard_normal((400, 16)).astype(np.float32)
    dst = (src @ np.linalg.qr(rng.standard_normal((16, 16)))[0]).astype(np.float32)
    np.save(tmp_path / "src.npy", src)
    ea.save_vectors(tmp_path / "dst.jsonl", dst)
    out = tmp_path / "al"
    assert main(["align", str(tmp_path / "src.npy"), str(tmp_path / "dst.jsonl"), "--out", str(out),
                 "--seed", "1"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["methods"]["procrustes"]["top1"] == 1.0
    assert rep["methods"]["identity (no map)"]["top1"] < 0.5
    m = AlignmentMap.load(out / "procrustes.npz")
    np.testing.assert_allclose(m.apply(src[:5]), dst[:5], atol=1e-4)
    assert AlignmentMap.load(out / "linear.npz").kind == "linear"
    np.save(tmp_path / "short.npy", src[:10])
    assert main(["align", str(tmp_path / "src.npy"), str(tmp_path / "short.npy"), "--out",
                 str(tmp_path / "x")]) == 2
    assert "same texts" in capsys.readouterr().err


def test_rotations_cli_real_local_model(tmp_path, capsys):
    """One small real run: 2 kinds x 40 pairs = 160 texts through all-MiniLM-L6-v2."""
    out = tmp_path / "real"
    rc = main(["rotations", "--kinds", "negate", "colour", "--n", "40", "--out", str(out),
               "--no-cache", "--seed", "1"])
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["d"] == 384 and rep["model"] == "local:all-MiniLM-L6-v2" and rep["n_texts"] == 160
    for kind in ("negate", "colour"):
        k = rep["kinds"][kind]
        assert 0 < k["rotation_angle_deg"]["median"] < 90
        for s in k["methods"].values():
            assert np.isfinite(s["mean_cosine"]) and 1 <= s["mean_rank"] <= k["n_heldout"]

"""The cone study on synthetic vectors (no model): figures against direct float64 computations."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from embalg.cli import main
from embalg_testing import make_vectors
from embalg.io import save_npy
from embalg.studies.cone import cone_study, default_abtt_components
from embalg.studies.report import StudyOutput


def cone_vectors(n, d, *, spread, seed=0):
    """Unit vectors in a cone (anisotropic, like real embeddings); larger ``spread`` is wider."""
    return make_vectors(n, d, seed=seed, cone=1.0 / spread, dtype=np.float32)


@pytest.fixture(scope="module")
def small():
    x = cone_vectors(240, 16, spread=0.9, seed=1)
    texts = [f"text {i}" for i in range(len(x))]
    report, arrays = cone_study(x, texts, bins=200, variant_sample=100, anisotropy_pairs=20_000,
                                progress=False)
    return x, texts, report, arrays


def test_raw_figures_match_direct(small):
    x, texts, report, _ = small
    u = x.astype(np.float64)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    mu = u.mean(axis=0)
    cos_c = u @ mu / np.linalg.norm(mu)
    g = u @ u.T
    iu = np.triu_indices(len(u), 1)
    pairs = g[iu]
    assert report["n"] == 240 and report["d"] == 16
    assert report["centroid_norm"] == pytest.approx(np.linalg.norm(mu), abs=1e-12)
    assert report["half_angle_deg"] == pytest.approx(math.degrees(math.acos(cos_c.min())), abs=1e-6)
    assert report["cone_width_deg"] == pytest.approx(2 * report["half_angle_deg"])
    assert report["mean_pairwise_cosine"] == pytest.approx(pairs.mean(), abs=1e-5)
    assert report["variants"]["raw"]["mean_pairwise_cosine_exact"] == pytest.approx(pairs.mean(),
                                                                                    abs=1e-12)
    assert report["min_pairwise_cosine"] == pytest.approx(pairs.min(), abs=1e-5)
    assert report["max_pairwise_angle_deg"] == pytest.approx(math.degrees(math.acos(pairs.min())),
                                                             abs=1e-3)
    assert abs(report["anisotropy"] - pairs.mean()) < 5 * report["variants"]["raw"]["anisotropy"]["stderr"]
    raw = report["variants"]["raw"]
    assert raw["cosine_to_centroid"]["min"] == pytest.approx(cos_c.min(), abs=1e-12)
    assert raw["cosine_to_centroid"]["quantiles"]["0.5"] == pytest.approx(np.median(cos_c), abs=1e-12)
    assert sum(raw["cosine_to_centroid"]["histogram"]["counts"]) == 240
    assert sum(raw["pairwise"]["histogram"]["counts"]) == len(pairs)
    # closest and farthest pairs, with their texts
    far = raw["pairwise"]["farthest_pair"]
    i, j = iu[0][pairs.argmin()], iu[1][pairs.argmin()]
    assert {far["i"], far["j"]} == {i, j}
    assert far["text_i"] == texts[far["i"]] and far["text_j"] == texts[far["j"]]
    close = raw["pairwise"]["closest_pair"]
    assert close["cosine"] == pytest.approx(pairs.max(), abs=1e-5)


def test_variants_are_centered_and_sampled(small):
    x, texts, report, _ = small
    assert report["abtt_components"] == default_abtt_components(16) == 1
    for name in ("centered", "all_but_the_top"):
        v = report["variants"][name]
        assert abs(v["mean_pairwise_cosine_exact"]) < 0.02      # centering removes the common part
        assert v["pairwise"]["sampled"] is True
        assert v["pairwise"]["n_rows"] == 100
        p = v["pairwise"]["closest_pair"]
        assert p["text_i"] == texts[p["i"]]                     # sample rows mapped back
    assert report["variants"]["all_but_the_top"]["removed_components"] == 1
    assert report["variants"]["centered"]["removed_components"] == 0
    assert report["variants"]["raw"]["centroid_norm"] > 0.5


def test_report_is_json_and_files_are_written(small, tmp_path):
    from embalg.studies.cone import write_cone

    x, texts, report, arrays = small
    out = StudyOutput(tmp_path / "run")
    rep = json.loads(json.dumps(report))          # plain JSON types only
    write_cone(out, rep, arrays, vectors=x, texts=texts, save_vectors=True)
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"report.json", "report.md", "centroid.npy", "vectors.npy", "texts.txt",
            "pairwise_hist.png", "cos_to_centroid_hist.png", "pca_spectrum.png"} <= files
    assert not any(f.startswith(".") for f in files)        # no temporaries left
    np.testing.assert_allclose(np.load(tmp_path / "run" / "centroid.npy"),
                               x.astype(np.float64).mean(axis=0) / 1.0, atol=1e-6)
    assert (tmp_path / "run" / "texts.txt").read_text().splitlines() == texts
    on_disk = json.loads((tmp_path / "run" / "report.json").read_text())
    assert on_disk["half_angle_deg"] == report["half_angle_deg"]


def test_cone_study_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        cone_study(np.ones((1, 4), np.float32))
    x = cone_vectors(10, 4, spread=1.0)
    with pytest.raises(ValueError, match="texts has 3 entries for 10"):
        cone_study(x, ["a", "b", "c"])
    x[4] = np.nan
    with pytest.raises(ValueError, match="row 4"):
        cone_study(x)


def test_cli_vectors_file_force_and_refusal(tmp_path, capsys):
    x = cone_vectors(120, 8, spread=1.2, seed=2)
    save_npy(tmp_path / "v.npy", x)
    out = tmp_path / "out"
    args = ["cone", "--vectors", str(tmp_path / "v.npy"), "--out", str(out), "--bins", "100"]
    assert main(args) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["source"]["vectors"] == str(tmp_path / "v.npy") and rep["model"] is None
    assert rep["timing_s"]["embedding"] == 0.0 and rep["timing_s"]["statistics"] > 0
    before = (out / "report.json").read_bytes()
    capsys.readouterr()
    assert main(args) == 2                                  # existing DIR refused
    assert "exists and is not empty" in capsys.readouterr().err
    assert (out / "report.json").read_bytes() == before     # untouched
    assert main(args + ["--force", "--bins", "50"]) == 0
    assert json.loads((out / "report.json").read_text())["arguments"]["bins"] == 50


def test_cli_vectors_with_texts(tmp_path):
    x = cone_vectors(30, 8, spread=1.0, seed=3)
    save_npy(tmp_path / "v.npy", x)
    (tmp_path / "t.txt").write_text("".join(f"line {i}\n" for i in range(30)))
    assert main(["cone", "--vectors", str(tmp_path / "v.npy"), "--texts", str(tmp_path / "t.txt"),
                 "--out", str(tmp_path / "o")]) == 0
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rep["variants"]["raw"]["pairwise"]["closest_pair"]["text_i"].startswith("line ")


@pytest.mark.parametrize("rows,texts,msg", [
    (1, None, "at least 2"),
    (5, 4, "has 4 texts but --vectors"),
])
def test_cli_bad_inputs(tmp_path, capsys, rows, texts, msg):
    save_npy(tmp_path / "v.npy", cone_vectors(rows, 8, spread=1.0))
    args = ["cone", "--vectors", str(tmp_path / "v.npy"), "--out", str(tmp_path / "o")]
    if texts is not None:
        (tmp_path / "t.txt").write_text("x\n" * texts)
        args += ["--texts", str(tmp_path / "t.txt")]
    assert main(args) == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "o" / "report.json").exists()


def test_cli_empty_text_file_and_missing_vectors(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("\n\n")
    assert main(["cone", "--texts", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "o")]) == 2
    assert "line 1 is empty" in capsys.readouterr().err
    assert main(["cone", "--vectors", str(tmp_path / "nope.npy"), "--out", str(tmp_path / "o")]) == 2
    assert "no such vector file" in capsys.readouterr().err
    assert main(["cone", "--n", "1", "--out", str(tmp_path / "o")]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_forced_run_that_fails_leaves_no_stale_report(tmp_path, capsys):
    good = cone_vectors(40, 8, spread=1.0, seed=4)
    save_npy(tmp_path / "good.npy", good)
    bad = good.copy()
    bad[17, 3] = np.inf
    save_npy(tmp_path / "bad.npy", bad)
    out = tmp_path / "o"
    assert main(["cone", "--vectors", str(tmp_path / "good.npy"), "--out", str(out)]) == 0
    assert (out / "report.json").exists()
    assert main(["cone", "--vectors", str(tmp_path / "bad.npy"), "--out", str(out), "--force"]) == 2
    assert "row 17" in capsys.readouterr().err
    assert not (out / "report.json").exists()      # no old report beside a new, partial run


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_cli_vector_table_files_bring_their_texts(tmp_path, suffix):
    from embalg.io import save_vectors

    x = cone_vectors(25, 8, spread=1.0, seed=5)
    texts = [f"row {i}" for i in range(25)]
    save_vectors(tmp_path / f"v{suffix}", x, texts=texts)
    assert main(["cone", "--vectors", str(tmp_path / f"v{suffix}"), "--out", str(tmp_path / "o"),
                 "--bins", "50"]) == 0
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    far = rep["variants"]["raw"]["pairwise"]["farthest_pair"]
    assert far["text_i"] == texts[far["i"]] and far["text_j"] == texts[far["j"]]

"""``embalg pairs`` end to end on a small file."""
from __future__ import annotations

import json

import numpy as np
import pytest

import embalg as ea
from embalg.cli import main
from embalg.io.npy import save_npy


@pytest.fixture
def vectors(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 16)).astype(np.float32) + 0.5
    path = tmp_path / "vectors.npy"
    save_npy(path, x)
    return path, x


def test_pairs_writes_report_and_png(vectors, tmp_path, capsys):
    path, x = vectors
    out = tmp_path / "run"
    rc = main(["pairs", str(path), "--bins", "200", "--topk", "3", "--threshold", "0.8",
               "--tile", "32", "--out", str(out), "--no-progress"])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert {"command", "input", "settings", "timing", "stats", "files"} <= set(report)
    st = report["stats"]
    for key in ("n_pairs", "mean", "std", "min", "max", "argmin", "argmax", "counts", "edges",
                "quantiles", "threshold_count", "threshold_pairs", "truncated"):
        assert key in st
    ref = ea.pairwise_stats(x, bins=200, topk=3, threshold=0.8, tile=32)
    assert st["n_pairs"] == 120 * 119 // 2 == sum(st["counts"])
    assert st["counts"] == ref.counts.tolist()
    assert st["mean"] == pytest.approx(ref.mean)
    assert report["input"]["n"] == 120 and report["input"]["d"] == 16
    assert report["timing"]["pairs_per_second"] > 0
    png = (out / "pairwise_hist.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    np.testing.assert_array_equal(np.load(out / "topk_indices.npy"), ref.topk_indices)
    assert (out / "report.md").read_text().startswith("# All-pairs cosine")
    assert "pairs in" in capsys.readouterr().out


def test_pairs_refuses_existing_output_without_force(vectors, tmp_path, capsys):
    path, _ = vectors
    out = tmp_path / "run"
    assert main(["pairs", str(path), "--out", str(out), "--bins", "10", "--no-progress"]) == 0
    assert main(["pairs", str(path), "--out", str(out), "--bins", "10", "--no-progress"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["pairs", str(path), "--out", str(out), "--bins", "20", "--force",
                 "--no-progress"]) == 0
    assert len(json.loads((out / "report.json").read_text())["stats"]["counts"]) == 20


def test_pairs_bad_input_is_a_clean_error(vectors, tmp_path, capsys):
    path, _ = vectors
    out = tmp_path / "bad"
    assert main(["pairs", str(path), "--out", str(out), "--topk", "500", "--no-progress"]) == 2
    assert "topk = 500 exceeds" in capsys.readouterr().err
    assert not out.exists()  # nothing left behind
    truncated = tmp_path / "t.npy"
    truncated.write_bytes(path.read_bytes()[:-7])
    assert main(["pairs", str(truncated), "--out", str(out), "--no-progress"]) == 2
    assert "truncated" in capsys.readouterr().err


def test_pairs_x_vs_y(vectors, tmp_path):
    path, x = vectors
    ypath = tmp_path / "y.npy"
    save_npy(ypath, x[:10] * 2.0)
    out = tmp_path / "xy"
    assert main(["pairs", str(path), "--y", str(ypath), "--out", str(out), "--bins", "50",
                 "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["stats"]["n_pairs"] == 120 * 10
    assert report["stats"]["max"] == pytest.approx(1.0, abs=1e-6)  # x[:10] vs themselves, scaled

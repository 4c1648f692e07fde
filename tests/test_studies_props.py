"""The properties study on synthetic cone-shaped sets (the real model runs in test_studies_cli.py)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import embalg as ea
from embalg_testing import make_vectors
from embalg.studies import props as pr


def cone_vectors(n, d, *, spread, seed=0):
    """Unit vectors in a cone (anisotropic, like real embeddings); larger ``spread`` is wider."""
    return make_vectors(n, d, seed=seed, cone=1.0 / spread, dtype=np.float64)


@pytest.fixture(scope="module")
def study():
    x = cone_vectors(203, 24, spread=0.8, seed=1)
    report, arrays = pr.props_study(x, quantile=0.05, seed=2)
    return x, report, arrays


def test_split_and_real_set_figures(study):
    x, rep, arrays = study
    m = 203 // 4
    assert rep["n_triples"] == m and rep["pool"] == 203 - 3 * m
    mu = x.mean(axis=0)
    cos = x @ (mu / np.linalg.norm(mu))
    assert rep["real_set"]["cone_min"] == pytest.approx(cos.min(), abs=1e-12)
    assert rep["real_set"]["cone_quantile"]["value"] == pytest.approx(np.quantile(cos, 0.05), abs=1e-12)
    assert rep["real_set"]["half_angle_deg"] == pytest.approx(math.degrees(math.acos(cos.min())), abs=1e-9)
    np.testing.assert_allclose(np.sort(arrays["real"]["cos_to_centroid"]), np.sort(cos), atol=1e-12)


def test_closure_against_direct_computation(study):
    x, rep, arrays = study
    perm = np.random.default_rng(2).permutation(len(x))
    m = rep["n_triples"]
    a, b = x[perm[:m]], x[perm[m:2 * m]]
    pool = x[perm[3 * m:]]
    mu = x.mean(axis=0)
    cdir = mu / np.linalg.norm(mu)
    for name in pr.STUDY_OPERATORS:
        r = np.asarray(ea.OPERATORS[name](a, b), np.float64)
        r /= np.linalg.norm(r, axis=1, keepdims=True)
        cos = r @ cdir
        c = rep["operators"][name]["closure"]
        assert c["leaves_cone"] == pytest.approx(np.mean(cos < rep["real_set"]["cone_min"]))
        assert c["below_quantile"] == pytest.approx(
            np.mean(cos < rep["real_set"]["cone_quantile"]["value"]))
        nn = (r @ pool.T).max(axis=1)
        np.testing.assert_allclose(arrays[name]["nearest"], nn, atol=1e-5)
        assert c["nearest_real_cosine"]["min"] == pytest.approx(nn.min(), abs=1e-5)


def test_algebra_from_properties(study):
    _, rep, _ = study
    ops = rep["operators"]
    assert set(ops) == set(pr.STUDY_OPERATORS)
    for name in pr.STUDY_OPERATORS:
        assert pr.property_error(ops[name]["algebra"], "commutativity") is not None
    # the thread's claims, measured: the normalized Hadamard product is associative and
    # commutative to rounding; division undoes it; the normalized sum is not associative
    assert pr.property_error(ops["hadamard"]["algebra"], "associativity") < 1e-12
    assert pr.property_error(ops["hadamard"]["algebra"], "commutativity") < 1e-12
    assert pr.property_error(ops["hadamard"]["algebra"], "inverse") < 1e-9
    assert pr.property_error(ops["nsum"]["algebra"], "associativity") > 1e-4
    assert pr.property_error(ops["hadamard_div"]["algebra"], "commutativity") > 0.1
    assert pr.property_error(ops["geomean_signed"]["algebra"], "inverse") is None


def test_all_negative_example_is_180_degrees(study):
    x, rep, _ = study
    ex = rep["all_negative_example"]
    assert ex["angle_to_operand_deg"]["min"] == pytest.approx(180.0, abs=1e-5)
    assert ex["angle_to_operand_deg"]["max"] == pytest.approx(180.0, abs=1e-5)
    assert ex["leaves_cone"] == 1.0            # -x is outside any cone narrower than a half-space
    mu = x.mean(axis=0)
    assert ex["cosine_to_centroid"]["max"] == pytest.approx(-(x @ (mu / np.linalg.norm(mu))).min(),
                                                            abs=1e-12)


def test_report_serializes_and_renders(study, tmp_path):
    _, rep, arrays = study
    json.dumps(rep)
    md = pr.props_markdown(rep)
    assert "| hadamard |" in md and "180.0000" in md
    figs = pr.props_figures(rep, arrays)
    assert set(figs) == {"closure_cone.png", "closure_nearest.png", "algebra_errors.png"}


def test_bad_input():
    with pytest.raises(ValueError, match="at least 8"):
        pr.props_study(cone_vectors(7, 4, spread=1.0))
    with pytest.raises(ValueError, match="quantile"):
        pr.props_study(cone_vectors(20, 4, spread=1.0), quantile=1.0)
    x = cone_vectors(20, 4, spread=1.0)
    x[3] = 0
    with pytest.raises(ValueError, match="row 3"):
        pr.props_study(x)


def test_large_sets_are_sampled():
    x = cone_vectors(300, 8, spread=1.0, seed=5)
    rep, _ = pr.props_study(x, max_rows=40, seed=1)
    assert rep["n"] == 40 and rep["sampled_from"] == 300 and rep["n_triples"] == 10
    rep, _ = pr.props_study(x[:40], max_rows=40)
    assert rep["sampled_from"] is None

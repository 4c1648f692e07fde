"""Bad input gets a clear error naming the argument; every policy in embalg.validation is tested."""
import numpy as np
import pytest

import embalg as ea

from embalg_testing import make_vectors


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["x", "y"])
@pytest.mark.parametrize("op", ["hadamard", "nsum", "hadamard_div", "geomean", "normalize", "cosine"])
def test_nonfinite_inputs_raise_naming_argument_and_row(bad, where, op, backend):
    x = make_vectors(20, 16, seed=1)
    y = make_vectors(20, 16, seed=2)
    (x if where == "x" else y)[13, 5] = bad
    if op == "normalize":
        if where == "y":
            return
        call = lambda: ea.normalize(x, backend=backend)  # noqa: E731
    else:
        f = getattr(ea, op)
        call = lambda: f(x, y, backend=backend)  # noqa: E731
    with pytest.raises(ValueError, match=rf"{where} contains NaN or inf \(row 13\)"):
        call()


def test_inf_divisor_is_caught_even_though_x_over_inf_is_finite(backend):
    x = make_vectors(3, 4, seed=1)
    y = make_vectors(3, 4, seed=2)
    y[1, 2] = np.inf
    with pytest.raises(ValueError, match="y contains NaN or inf"):
        ea.hadamard_div(x, y, backend=backend)


def test_dimension_mismatch(backend):
    with pytest.raises(ValueError, match="x has d = 4 while y has d = 5"):
        ea.hadamard(np.ones((2, 4)), np.ones((2, 5)), backend=backend)


def test_rows_that_do_not_broadcast(backend):
    with pytest.raises(ValueError, match=r"row counts do not broadcast \(x: 3, y: 4\)"):
        ea.nsum(np.ones((3, 4)), np.ones((4, 4)), backend=backend)


@pytest.mark.parametrize("arr,kind", [(np.ones((2, 3), int), "integer"), (np.ones((2, 3), bool), "bool"),
                                      (np.ones((2, 3), complex), "complex"),
                                      (np.array([["a", "b"]]), "string")])
def test_non_float_dtypes_raise_type_error(arr, kind, backend):
    with pytest.raises(TypeError, match=rf"x must hold real floating-point values .*{kind}"):
        ea.hadamard(arr, np.ones(arr.shape), backend=backend)


def test_wrong_ndim(backend):
    with pytest.raises(ValueError, match="x must be a vector .* got 3-D"):
        ea.normalize(np.ones((2, 2, 2)), backend=backend)
    with pytest.raises(ValueError, match="d = 0"):
        ea.normalize(np.ones((2, 0)), backend=backend)
    with pytest.raises(TypeError, match="got None"):
        ea.normalize(None)


def test_zero_rows_raise_by_default_and_opt_out(backend):
    x = make_vectors(6, 8, seed=3)
    x[4] = 0
    with pytest.raises(ValueError, match=r"zero norm in 1 row\(s\) \(first: row 4\)"):
        ea.normalize(x, backend=backend)
    assert np.isnan(ea.normalize(x, on_zero="nan", backend=backend)[4]).all()
    assert (ea.normalize(x, on_zero="zero", backend=backend)[4] == 0).all()
    with pytest.raises(ValueError, match="x has a zero row"):
        ea.cosine(x, x, backend=backend)
    assert np.isnan(ea.cosine(x, x, on_zero="nan", backend=backend)[4])
    with pytest.raises(ValueError, match="on_zero must be one of"):
        ea.normalize(x, on_zero="ignore")


def test_hadamard_of_disjoint_supports_is_a_zero_row(backend):
    with pytest.raises(ValueError, match="hadamard: the result has zero norm"):
        ea.hadamard([1.0, 0.0], [0.0, 1.0], backend=backend)


def test_empty_inputs_give_empty_outputs(backend, dtype):
    e = np.empty((0, 384), dtype)
    assert ea.hadamard(e, e, backend=backend).shape == (0, 384)
    assert ea.nsum(e, np.ones(384, dtype), backend=backend).shape == (0, 384)
    assert ea.cosine(e, e, backend=backend).shape == (0,)
    assert ea.normalize(e, backend=backend).dtype == dtype


def test_out_checks(backend):
    x = make_vectors(4, 8, seed=1, dtype=np.float32)
    with pytest.raises(ValueError, match=r"out has shape \(4, 7\)"):
        ea.hadamard(x, x, out=np.empty((4, 7), np.float32), backend=backend)
    with pytest.raises(TypeError, match="out has dtype float64, the result needs float32"):
        ea.hadamard(x, x, out=np.empty((4, 8)), backend=backend)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        ea.hadamard(x, x, out=[[0.0] * 8] * 4, backend=backend)
    frozen = np.empty_like(x)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        ea.hadamard(x, x, out=frozen, backend=backend)


def test_parameter_errors():
    x = make_vectors(2, 4, seed=1)
    with pytest.raises(ValueError, match="eps must be > 0"):
        ea.hadamard_div(x, x, eps=0)
    with pytest.raises(ValueError, match="variant must be one of"):
        ea.geomean(x, x, variant="plain")
    with pytest.raises(ValueError, match="one value per input"):
        ea.nsum(x, x, weights=[1.0])
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        ea.normalize(x, backend="gpu")


def test_unavailable_backend_says_why(monkeypatch):
    from embalg import backends

    monkeypatch.setattr(backends, "_probe", lambda name: (False, "no GPU driver") if name == "cuda"
                        else (True, ""))
    with pytest.raises(ValueError, match="backend 'cuda' is not available: no GPU driver"):
        backends.resolve_backend("cuda", np.ones((2, 2)))


def test_sequences_are_accepted():
    np.testing.assert_allclose(ea.normalize([[3, 4.0]]), [[0.6, 0.8]])

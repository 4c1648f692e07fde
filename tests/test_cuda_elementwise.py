"""The CUDA backend of the element-wise operators against the float64 NumPy reference.

Every case in :data:`CASES` runs on ``backend="cuda"`` and is compared with
:mod:`embalg.kernels.elementwise_numpy` (kernel cases) or with the public API on
``backend="numpy"`` (API cases), max-abs within ``TOLERANCE[dtype]``; norms,
NaN rows and error messages must match too.

* Simulator (runs everywhere, CI): the Numba CUDA simulator must be switched on
  before ``numba.cuda`` is first imported, so one subprocess runs this file as a
  script with ``NUMBA_ENABLE_CUDASIM=1``; it runs every case and writes the
  results to an ``.npz`` that the tests below compare. Kernel cases pass NumPy
  arrays (host path: copy in, compute, copy back) or simulated device arrays
  (device path: in place), with small thread blocks and a small grid so the
  strided column loop, the tree reduction and the grid-stride row loop are all
  exercised; a few cases use the production block size.
* ``@pytest.mark.gpu``: the same cases on a real GPU, once with CuPy arrays in
  and out and once with NumPy arrays; skipped with "no CUDA GPU" when none is
  present (``bench/gpu_check.sh`` runs them on a lent GPU with ``EMBALG_REQUIRE_GPU=1``,
  which turns that skip into a failure).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent


sys.path.insert(0, str(HERE))  # also when run as a script under the simulator
from embalg_testing import TOLERANCE, make_vectors  # noqa: E402

#: the simulator runs threads as Python threads; a short GIL switch interval makes
#: its busy-polled ``syncthreads`` barriers ~10x faster
SIM_SWITCH_INTERVAL = 1e-4

#: the simulator's default launch shape: 16 threads stride over d, 3 blocks stride over n,
#: rows up to 16 * 24 columns kept in registers
SIM_BLOCK = 16
SIM_MAX_BLOCKS = 3
SIM_MAX_UNROLL = 24

ROWS_FOR_D = {1: 33, 3: 17, 33: 9, 384: 5}

OP_CONFIGS = [  # (op, K, weights)
    ("normalize", 1, None),
    ("hadamard", 2, None),
    ("hadamard", 3, None),
    ("nsum", 2, None),
    ("nsum", 3, (0.5, -1.25, 2.0)),
    ("hadamard_div", 2, None),
    ("geomean_signed", 2, None),
    ("geomean_signed", 3, None),
    ("geomean_agree", 2, None),
    ("geomean_agree", 3, None),
]


def _dt(name):
    return {"f32": np.float32, "f64": np.float64}[name]


def _cases():
    cases = []

    def add(**c):
        c.setdefault("kind", "rowwise")
        c.setdefault("eps", 1e-6)
        c.setdefault("normalize", True)
        c.setdefault("broadcast", ())
        c.setdefault("order", "C")
        c.setdefault("special", None)
        c.setdefault("device", False)
        c.setdefault("cone", 0.0)
        c["seed"] = len(cases)
        cases.append(c)

    # every operator and arity, both dtypes, d in {1, 3, 33, 384}
    for op, K, w in OP_CONFIGS:
        for dt in ("f32", "f64"):
            for d, n in ROWS_FOR_D.items():
                add(id=f"{op}-K{K}-{dt}-d{d}", op=op, K=K, weights=w, dtype=dt, n=n, d=d,
                    broadcast=(1,) if K > 1 and d in (3, 384) else (),
                    normalize=d != 33, cone=3.0 if d == 384 else 0.0)
    # edge cases
    for dt in ("f32", "f64"):
        # hadamard propagates NaN/inf into z; geomean_agree and hadamard_div can hide them
        # (NaN has no sign, x / inf = 0): only the kernels' explicit check catches those
        for op in ("hadamard", "geomean_agree", "hadamard_div"):
            add(id=f"nan-inf-rows-{op}-{dt}", op=op, K=2, weights=None, dtype=dt, n=9, d=33,
                special="nan_inf")
        add(id=f"zero-rows-{dt}", op="normalize", K=1, weights=None, dtype=dt, n=7, d=33,
            special="zero_rows")
        add(id=f"agree-no-common-sign-{dt}", op="geomean_agree", K=2, weights=None, dtype=dt,
            n=6, d=3, special="sign_mix")
        add(id=f"div-clamp-{dt}", op="hadamard_div", K=2, weights=None, dtype=dt, n=4, d=8,
            eps=1e-3, normalize=False, special="tiny_divisor")
    add(id="inf-in-broadcast-row", op="nsum", K=3, weights=(1.0, 2.0, 3.0), dtype="f64", n=5,
        d=33, broadcast=(2,), special="inf_broadcast")
    add(id="overflow-f64", op="hadamard", K=3, weights=None, dtype="f64", n=4, d=33,
        special="huge")
    add(id="all-broadcast-n1", op="hadamard", K=2, weights=None, dtype="f64", n=1, d=33,
        broadcast=(0, 1))
    add(id="empty-n0", op="nsum", K=2, weights=None, dtype="f32", n=0, d=33)
    add(id="fortran-order-f32", op="geomean_signed", K=3, weights=None, dtype="f32", n=9,
        d=33, order="F", broadcast=(2,))
    add(id="strided-rows-f64", op="hadamard", K=2, weights=None, dtype="f64", n=9, d=33,
        order="strided")
    # rows longer than block * MAX_UNROLL: stored, then rescaled in a second pass
    for op, K, w in [("hadamard", 2, None), ("nsum", 3, (0.5, -1.25, 2.0)),
                     ("geomean_agree", 3, None), ("normalize", 1, None)]:
        for dt in ("f32", "f64"):
            add(id=f"two-pass-{op}-K{K}-{dt}", op=op, K=K, weights=w, dtype=dt, n=5, d=384,
                max_unroll=2, broadcast=(0,) if K == 3 else ())
    add(id="two-pass-unnormalized", op="hadamard", K=2, weights=None, dtype="f64", n=5, d=384,
        max_unroll=3, normalize=False)
    add(id="two-pass-nan", op="geomean_agree", K=2, weights=None, dtype="f32", n=9, d=33,
        max_unroll=1, special="nan_inf")
    # launch shapes: production block, one-thread blocks, one block per row
    add(id="block128-d384", op="nsum", K=3, weights=(1.0, -2.0, 0.5), dtype="f32", n=3, d=384,
        block=128)
    add(id="block128-d33", op="geomean_agree", K=2, weights=None, dtype="f64", n=2, d=33,
        block=128)
    add(id="block1", op="hadamard_div", K=2, weights=None, dtype="f64", n=4, d=33, block=1,
        max_blocks=2)
    add(id="block2-many-blocks", op="hadamard", K=3, weights=None, dtype="f32", n=9, d=3,
        block=2, max_blocks=65535)
    # device arrays in and out (zero-copy path); in the simulator these are simulated
    add(id="device-hadamard-K3-F-bcast", op="hadamard", K=3, weights=None, dtype="f32", n=9,
        d=33, order="F", broadcast=(1,), device=True)
    add(id="device-strided-f64", op="geomean_signed", K=2, weights=None, dtype="f64", n=9,
        d=33, order="strided", device=True)
    add(id="device-nan", op="nsum", K=2, weights=None, dtype="f64", n=9, d=33,
        special="nan_inf", device=True)
    add(id="device-inplace-out-is-x", op="nsum", K=2, weights=(2.0, -1.0), dtype="f32", n=9,
        d=33, special="inplace", device=True)
    add(id="host-inplace-out-is-x", op="hadamard", K=2, weights=None, dtype="f64", n=9, d=33,
        special="inplace")
    # row-wise cosine
    for dt in ("f32", "f64"):
        for d in (1, 33, 384):
            add(id=f"cosine-{dt}-d{d}", kind="cosine", op=None, K=2, weights=None, dtype=dt,
                n=ROWS_FOR_D[d], d=d, broadcast=(1,) if d == 33 else (), cone=2.0)
    add(id="cosine-nan-zero-rows", kind="cosine", op=None, K=2, weights=None, dtype="f64", n=9,
        d=33, special="cos_nan_zero")
    add(id="cosine-device-F", kind="cosine", op=None, K=2, weights=None, dtype="f32", n=9,
        d=33, order="F", device=True)
    add(id="cosine-two-pass", kind="cosine", op=None, K=2, weights=None, dtype="f64", n=9,
        d=384, max_unroll=2, special="cos_nan_zero")
    # the public API (embalg.operators._apply) with backend="cuda" on NumPy arrays
    for api, K, kw in [
        ("hadamard", 3, {}),
        ("hadamard", 2, {"normalize": False}),
        ("nsum", 3, {"weights": [0.3, -1.7, 1.0]}),
        ("hadamard_div", 2, {"eps": 1e-2}),
        ("geomean", 3, {}),
        ("geomean", 2, {"variant": "agree", "on_zero": "zero"}),
        ("normalize", 1, {}),
        ("cosine", 2, {}),
    ]:
        for dt in ("f32", "f64"):
            add(id=f"api-{api}-K{K}-{dt}", kind="api", op=api, K=K, weights=None, dtype=dt,
                n=9, d=33, kwargs=kw, broadcast=(1,) if K == 3 else ())
    add(id="api-1d-inputs", kind="api", op="hadamard", K=2, weights=None, dtype="f64", n=1,
        d=33, kwargs={}, special="one_d")
    add(id="api-out-fortran", kind="api", op="nsum", K=2, weights=None, dtype="f32", n=9, d=33,
        kwargs={}, special="out_F")
    add(id="api-zero-rows-nan", kind="api", op="normalize", K=1, weights=None, dtype="f64", n=7,
        d=33, kwargs={"on_zero": "nan"}, special="zero_rows")
    add(id="api-zero-rows-raise", kind="api", op="normalize", K=1, weights=None, dtype="f64",
        n=7, d=33, kwargs={}, special="zero_rows")
    add(id="api-nan-raises", kind="api", op="hadamard", K=2, weights=None, dtype="f32", n=9,
        d=33, kwargs={}, special="nan_inf")
    add(id="api-cosine-zero-row-nan", kind="api", op="cosine", K=2, weights=None, dtype="f64",
        n=9, d=33, kwargs={"on_zero": "nan"}, special="cos_nan_zero_finite")
    add(id="api-empty", kind="api", op="geomean", K=2, weights=None, dtype="f32", n=0, d=33,
        kwargs={})
    return cases


CASES = _cases()
CASE_BY_ID = {c["id"]: c for c in CASES}
assert len(CASE_BY_ID) == len(CASES), "case ids must be unique"


def make_inputs(case):
    """The case's host inputs: a list of NumPy arrays (views for the strided order)."""
    dtype = _dt(case["dtype"])
    n, d, K = case["n"], case["d"], case["K"]
    xs = []
    for k in range(K):
        rows = 1 if k in case["broadcast"] else n
        seed = 1000 * case["seed"] + k
        if case["order"] == "strided":
            x = make_vectors(2 * rows, d, seed=seed, cone=case["cone"], dtype=dtype)[::2]
        else:
            x = make_vectors(rows, d, seed=seed, cone=case["cone"], dtype=dtype,
                             order="F" if case["order"] == "F" else "C")
        if case["kind"] != "cosine" and case["op"] in ("hadamard", "geomean", "geomean_signed",
                                                       "geomean_agree", "hadamard_div"):
            x = x * dtype(np.sqrt(d))  # components of order 1, so products do not underflow
        xs.append(x)
    special = case["special"]
    if special in ("nan_inf", "cos_nan_zero"):
        xs[0][min(3, n - 1), d // 2] = np.nan
        xs[-1][min(6, n - 1), 0] = np.inf
    if special == "zero_rows":
        xs[0][[0, 4]] = 0.0
    if special in ("cos_nan_zero", "cos_nan_zero_finite"):
        xs[1][[2, 5]] = 0.0
    if special == "sign_mix":
        xs[1][:] = -xs[0]  # no column has a common sign: every result row is zero
        xs[1][-1] = xs[0][-1]  # except the last row
    if special == "tiny_divisor":
        xs[1][:] = np.array([0.0, -0.0, 1e-9, -1e-9, 1e-3, -1e-3, 5e-4, 2.0], dtype)
    if special == "inf_broadcast":
        xs[2][0, 7] = -np.inf
    if special == "huge":
        xs[0][1] = 1e120
        xs[1][1] = 1e120
    if special == "one_d":
        xs = [x[0].copy() for x in xs]
    return xs


# ------------------------------------------------------------------ running one case

def _run_case(case, put, get, module):
    """Run ``case`` on the cuda backend; ``put`` moves a host array to the array kind under
    test (identity for NumPy), ``get`` brings a result back to NumPy."""
    xs_host = make_inputs(case)
    dtype = _dt(case["dtype"])
    if case["kind"] == "api":
        return _run_api(case, xs_host, put, get)
    if case["order"] == "strided":
        xs = [put(np.repeat(x, 2, axis=0))[::2] for x in xs_host]
    else:
        xs = [put(x) for x in xs_host]
    n, d = case["n"], case["d"]
    if case["kind"] == "cosine":
        out = put(np.full(n, -7.0, dtype))
        nx, ny = module.cosine(xs[0], xs[1], out)
        return {"out": get(out), "norms": np.asarray(nx), "norms_y": np.asarray(ny)}
    if case["special"] == "inplace":
        out = xs[0]
    else:
        out = put(np.full((n, d), -7.0, dtype, order="F" if case["order"] == "F" else "C"))
    w = np.ones(case["K"]) if case["weights"] is None else np.asarray(case["weights"])
    norms = module.rowwise(case["op"], tuple(xs), out, weights=w, eps=case["eps"],
                           normalize=case["normalize"])
    assert isinstance(norms, np.ndarray) and norms.dtype == np.float64
    return {"out": get(out), "norms": norms}


def _run_api(case, xs_host, put, get, backend="cuda"):
    import embalg as ea

    fn = getattr(ea, case["op"])
    kwargs = dict(case["kwargs"])
    xs = [put(x) for x in xs_host]
    if case["special"] == "out_F":
        kwargs["out"] = put(np.empty((case["n"], case["d"]), _dt(case["dtype"]), order="F"))
    try:
        got = fn(*xs, backend=backend, **kwargs)
    except (ValueError, TypeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    if "out" in kwargs:
        assert got is kwargs["out"]
    return {"out": get(got)}


# ------------------------------------------------------------------ comparing

def _reference(case):
    from embalg.kernels import elementwise_numpy as ref

    xs = make_inputs(case)
    if case["kind"] == "api":
        return _run_api(case, xs, lambda a: a, lambda a: a, backend="numpy")
    n, d = case["n"], case["d"]
    if case["kind"] == "cosine":
        out = np.empty(n)
        nx, ny = ref.cosine(xs[0], xs[1], out)
        return {"out": out, "norms": nx, "norms_y": ny}
    out = np.empty((n, d))
    w = np.ones(case["K"]) if case["weights"] is None else np.asarray(case["weights"])
    norms = ref.rowwise(case["op"], tuple(xs), out, weights=w, eps=case["eps"],
                        normalize=case["normalize"])
    return {"out": out, "norms": norms}


def check_case(case, got):
    """Assert that ``got`` (results of one case) matches the reference."""
    want = _reference(case)
    assert "error" not in want or "error" in got, f"expected {want.get('error')}, got a result"
    if "error" in want:
        assert got["error"] == want["error"]
        return
    assert "error" not in got, got.get("error")
    dtype = _dt(case["dtype"])
    tol = TOLERANCE[dtype]
    out = got["out"]
    assert out.dtype == dtype and out.shape == want["out"].shape
    if "norms" in want:
        nw, ng = want["norms"], got["norms"]
        assert ng.shape == nw.shape
        np.testing.assert_array_equal(np.isnan(ng), np.isnan(nw))
        np.testing.assert_allclose(ng, nw, rtol=1e-12, atol=0)
        for key in ("norms_y",):
            if key in want:
                np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=0)
        rows = np.isfinite(nw)  # the values of rows flagged not finite are unspecified
        if case["kind"] == "cosine":
            np.testing.assert_array_equal(np.isnan(out), np.isnan(want["out"]))
        if not case.get("normalize", True) and rows.any():
            tol *= max(1.0, float(np.abs(want["out"][rows]).max()))  # raw z: relative to its size
        np.testing.assert_allclose(out[rows], want["out"][rows], rtol=0, atol=tol)
    else:
        np.testing.assert_array_equal(np.isnan(out), np.isnan(want["out"]))
        np.testing.assert_allclose(out, want["out"], rtol=0, atol=tol)


# ------------------------------------------------------------------ simulator

def _sim_main(path):
    """Script mode (``NUMBA_ENABLE_CUDASIM=1``): run every case, write results to ``path``."""
    sys.setswitchinterval(SIM_SWITCH_INTERVAL)
    from numba import cuda

    from embalg.kernels import elementwise_cuda as ec

    assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    arrays, meta = {}, {}
    for case in CASES:
        ec.BLOCK_THREADS = case.get("block", SIM_BLOCK)
        ec.MAX_BLOCKS = case.get("max_blocks", SIM_MAX_BLOCKS)
        ec.MAX_UNROLL = case.get("max_unroll", SIM_MAX_UNROLL)
        put = cuda.to_device if case["device"] else (lambda a: a)

        def get(a):
            return a if isinstance(a, np.ndarray) else a.copy_to_host()

        try:
            res = _run_case(case, put, get, ec)
        except Exception as exc:  # recorded, reported by the case's test
            res = {"crash": f"{type(exc).__name__}: {exc}"}
        meta[case["id"]] = {k: v for k, v in res.items() if isinstance(v, str)}
        for k, v in res.items():
            if not isinstance(v, str):
                arrays[f"{case['id']}/{k}"] = v
    from embalg.kernels import elementwise_ops as ops

    meta["__fold__"] = {"same_code": str(all(
        twin.__code__ is orig.__code__ and twin is not orig
        for twin, orig in ((ec._init, ops.init), (ec._step, ops.step), (ec._finish, ops.finish),
                           (ec._cosine_finish, ops.cosine_finish))))}
    np.savez(path, **arrays)
    Path(str(path) + ".json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def sim_results(tmp_path_factory):
    path = tmp_path_factory.mktemp("cudasim") / "results.npz"
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, __file__, str(path)], env=env, capture_output=True,
                          text=True, timeout=600, cwd=HERE.parent)
    assert proc.returncode == 0, f"simulator run failed:\n{proc.stdout}\n{proc.stderr[-5000:]}"
    meta = json.loads(Path(str(path) + ".json").read_text())
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    results = {}
    for cid, strings in meta.items():
        res = dict(strings)
        res.update({k.split("/", 1)[1]: v for k, v in arrays.items() if k.split("/", 1)[0] == cid})
        results[cid] = res
    return results


@pytest.mark.parametrize("case_id", list(CASE_BY_ID))
def test_simulator_matches_reference(case_id, sim_results):
    got = sim_results[case_id]
    assert "crash" not in got, got.get("crash")
    check_case(CASE_BY_ID[case_id], got)


def test_cuda_kernels_compile_the_cpu_fold(sim_results):
    # one per-operator source: the CUDA fold runs the very code objects of elementwise_ops
    assert sim_results["__fold__"]["same_code"] == "True"


def test_simulator_run_covered_every_launch_shape():
    # the cases above must exercise a grid-stride loop (n > blocks), threads without
    # columns (block > d), several columns per thread (d > block), whole rows in
    # registers and rows too long for them (two passes)
    shapes = [(c["n"], c["d"], c.get("block", SIM_BLOCK), c.get("max_blocks", SIM_MAX_BLOCKS),
               c.get("max_unroll", SIM_MAX_UNROLL)) for c in CASES if c["kind"] != "api"]
    assert any(n > mb for n, d, b, mb, mu in shapes)
    assert any(b > d for n, d, b, mb, mu in shapes)
    assert any(d > 2 * b and d <= b * mu for n, d, b, mb, mu in shapes)
    assert sum(d > b * mu for n, d, b, mb, mu in shapes) >= 8
    assert any(c.get("block") == 128 for c in CASES)


def test_reference_check_can_fail():
    # the comparison is not vacuous: a perturbed result is rejected
    case = CASE_BY_ID["hadamard-K2-f64-d33"]
    got = _reference(case)
    got["out"] = got["out"].copy()
    got["out"][1, 2] += 1e-9
    with pytest.raises(AssertionError):
        check_case(case, got)


# ------------------------------------------------------------------ real GPU

def _gpu_unavailable_reason():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return "no CUDA GPU (NUMBA_ENABLE_CUDASIM=1 in this process)"
    try:
        import cupy as cp

        if cp.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA GPU"
    except Exception as exc:  # no CuPy, no driver, no device
        return f"no CUDA GPU ({type(exc).__name__}: {exc})"
    return None


@pytest.fixture(scope="module")
def gpu():
    reason = _gpu_unavailable_reason()
    if reason and os.environ.get("EMBALG_REQUIRE_GPU") == "1":  # bench/gpu_check.sh sets it
        pytest.fail(f"EMBALG_REQUIRE_GPU=1 but {reason}")
    if reason:
        pytest.skip(reason)
    import cupy as cp

    from embalg.kernels import elementwise_cuda as ec

    return cp, ec


@pytest.mark.gpu
@pytest.mark.parametrize("arrays", ["cupy", "numpy"])
@pytest.mark.parametrize("case_id", list(CASE_BY_ID))
def test_gpu_matches_reference(case_id, arrays, gpu):
    cp, ec = gpu
    case = CASE_BY_ID[case_id]
    put = cp.asarray if arrays == "cupy" else (lambda a: a)
    got = _run_case(case, put, lambda a: cp.asnumpy(a) if isinstance(a, cp.ndarray) else a, ec)
    check_case(case, got)


@pytest.mark.gpu
def test_gpu_grid_stride_two_pass_and_cupy_result_type(gpu, monkeypatch):
    cp, ec = gpu
    import embalg as ea

    monkeypatch.setattr(ec, "MAX_BLOCKS", 7)
    x = make_vectors(1001, 1536, seed=3, cone=3.0, dtype=np.float32)
    y = make_vectors(1001, 1536, seed=4, cone=3.0, dtype=np.float32)
    got = ea.hadamard(cp.asarray(x), cp.asarray(y), backend="cuda")
    assert isinstance(got, cp.ndarray) and got.dtype == np.float32
    want = ea.hadamard(x, y, backend="numpy")
    np.testing.assert_allclose(cp.asnumpy(got), want, rtol=0, atol=TOLERANCE[np.float32])
    auto = ea.nsum(cp.asarray(x), cp.asarray(y))  # "auto" picks cuda for CuPy input
    assert isinstance(auto, cp.ndarray)
    monkeypatch.setattr(ec, "MAX_UNROLL", 4)  # 1536 > 128 * 4: the two-pass path
    got = ea.geomean(cp.asarray(x), cp.asarray(y), backend="cuda")
    want = ea.geomean(x, y, backend="numpy")
    np.testing.assert_allclose(cp.asnumpy(got), want, rtol=0, atol=TOLERANCE[np.float32])


if __name__ == "__main__":
    _sim_main(sys.argv[1])

"""GPU element-wise operators (backend "cuda") against their same-run ceiling and naive CuPy.

``python bench/run.py --only cuda [--quick]``; ``pytest bench/bench_cuda.py``.
Runs only where a CUDA GPU and CuPy are present; elsewhere :func:`rows` returns
one row saying "no GPU" and the pytest-benchmark tests skip with that reason.

Data: seeded unit rows in a cone (like real embeddings), (n, 1536), on the
device, built outside the timed body. Times are GPU times from CUDA events
(``cupyx.profiler.benchmark``, warm-up first, median), so kernel compilation
is never timed. Every row reports:

* ``vs_add``: achieved bandwidth over the same-run ``cp.add(a, b, out=o)``
  bandwidth (two arrays read, one written); bytes counted = inputs read once +
  output written once (cosine: two inputs read, n values written).
* ``x_naive``: speed-up over the naive CuPy expression (e.g. ``z = a * b;
  z / cp.linalg.norm(z, axis=1, keepdims=True)``), same data, same run.
* ``kernel`` rows call :func:`embalg.kernels.elementwise_cuda.rowwise` once on
  the whole array; ``api`` rows call the public function (validation, row
  batching of :func:`embalg.operators._apply`, the host copy of the norms).
"""
from __future__ import annotations

import numpy as np

from common import unit_rows

D = 1536
EPS = 1e-6


def no_gpu_reason() -> str | None:
    """Why the GPU benchmarks cannot run here, or None when they can."""
    try:
        import cupy as cp

        if cp.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device"
    except Exception as exc:  # no CuPy, no driver
        return f"{type(exc).__name__}: {exc}"
    from embalg.backends import available_backends

    ok, why = available_backends()["cuda"]
    return None if ok else why


def gpu_seconds(fn, repeat: int) -> float:
    """Median GPU time of ``fn()`` (CUDA events), after a warm-up."""
    from cupyx.profiler import benchmark

    res = benchmark(fn, n_repeat=repeat, n_warmup=2)
    return float(np.median(res.gpu_times[0]))


def _naive(cp):
    """The naive CuPy expressions: one temporary per operation, then normalize."""
    def unit(z):
        return z / cp.linalg.norm(z, axis=1, keepdims=True)

    def clamp(y):
        return cp.where(cp.abs(y) >= EPS, y, cp.where(y < 0, -EPS, EPS))

    def agree(a, b):
        same = cp.sign(a) == cp.sign(b)
        return cp.where(same & (a != 0), cp.sign(a) * cp.sqrt(cp.abs(a * b)), 0)

    return {
        "normalize": lambda a, b, c: unit(a),
        "hadamard": lambda a, b, c: unit(a * b),
        "nsum": lambda a, b, c: unit(a + b),
        "hadamard_div": lambda a, b, c: unit(a / clamp(b)),
        "geomean_signed": lambda a, b, c: unit(cp.sign(a + b) * cp.sqrt(cp.abs(a * b))),
        "geomean_agree": lambda a, b, c: unit(agree(a, b)),
        "hadamard3": lambda a, b, c: unit(a * b * c),
    }


def _api(ea):
    return {
        "normalize": lambda a, b, c, o: ea.normalize(a, backend="cuda", out=o),
        "hadamard": lambda a, b, c, o: ea.hadamard(a, b, backend="cuda", out=o),
        "nsum": lambda a, b, c, o: ea.nsum(a, b, backend="cuda", out=o),
        "hadamard_div": lambda a, b, c, o: ea.hadamard_div(a, b, eps=EPS, backend="cuda", out=o),
        "geomean_signed": lambda a, b, c, o: ea.geomean(a, b, backend="cuda", out=o),
        "geomean_agree": lambda a, b, c, o: ea.geomean(a, b, variant="agree", on_zero="zero",
                                                       backend="cuda", out=o),
        "hadamard3": lambda a, b, c, o: ea.hadamard(a, b, c, backend="cuda", out=o),
    }


def operator_rows(n: int, dtype, repeat: int, ops=None) -> list[dict]:
    import cupy as cp

    import embalg as ea
    from embalg.kernels import elementwise_cuda as ec

    a, b, c = (cp.asarray(unit_rows(n, D, seed=s, cone=0.5, dtype=dtype)) for s in (0, 1, 2))
    o = cp.empty_like(a)
    tag = f"{n}x{D} {np.dtype(dtype).name}"
    t_add = gpu_seconds(lambda: cp.add(a, b, out=o), repeat)
    add_gbps = 3 * a.nbytes / t_add / 1e9
    naive, api = _naive(cp), _api(ea)
    rows = [{"case": f"cp.add (ceiling), {tag}", "path": "cupy", "ms": t_add * 1e3,
             "GB/s": add_gbps, "vs_add": 1.0, "naive_ms": float("nan"), "x_naive": float("nan")}]
    for name in ops or list(naive):
        k = 1 if name == "normalize" else 3 if name == "hadamard3" else 2
        xs = (a, b, c)[:k]
        op = "hadamard" if name == "hadamard3" else name
        nbytes = (k + 1) * a.nbytes
        w = np.ones(k)
        t_naive = gpu_seconds(lambda: naive[name](a, b, c), max(3, repeat // 2))
        t_kernel = gpu_seconds(lambda: ec.rowwise(op, xs, o, weights=w, eps=EPS, normalize=True),
                               repeat)
        t_api = gpu_seconds(lambda: api[name](a, b, c, o), repeat)
        for path, t in (("kernel", t_kernel), ("api", t_api)):
            gbps = nbytes / t / 1e9
            rows.append({"case": f"{name}, {tag}", "path": path, "ms": t * 1e3, "GB/s": gbps,
                         "vs_add": gbps / add_gbps, "naive_ms": t_naive * 1e3,
                         "x_naive": t_naive / t})
    # row-wise cosine: two inputs read, n values written
    nbytes = 2 * a.nbytes + n * a.itemsize
    out = cp.empty(n, dtype)

    def naive_cos():
        return (a * b).sum(axis=1) / (cp.linalg.norm(a, axis=1) * cp.linalg.norm(b, axis=1))

    t_naive = gpu_seconds(naive_cos, max(3, repeat // 2))
    for path, fn in (("kernel", lambda: ec.cosine(a, b, out)),
                     ("api", lambda: ea.cosine(a, b, backend="cuda", out=out))):
        t = gpu_seconds(fn, repeat)
        gbps = nbytes / t / 1e9
        rows.append({"case": f"cosine, {tag}", "path": path, "ms": t * 1e3, "GB/s": gbps,
                     "vs_add": gbps / add_gbps, "naive_ms": t_naive * 1e3, "x_naive": t_naive / t})
    return rows


def tuning_rows(n: int, repeat: int) -> list[dict]:
    """The fused normalized Hadamard product under other launch shapes (same run, same data):
    threads per block, and whole rows in registers (default) against two passes over out."""
    import cupy as cp

    from embalg.kernels import elementwise_cuda as ec

    a, b = (cp.asarray(unit_rows(n, D, seed=s, cone=0.5)) for s in (0, 1))
    o = cp.empty_like(a)
    add_gbps = 3 * a.nbytes / gpu_seconds(lambda: cp.add(a, b, out=o), repeat) / 1e9
    saved = ec.BLOCK_THREADS, ec.MAX_UNROLL
    rows = []
    try:
        for block, max_unroll in ((128, saved[1]), (64, saved[1]), (256, saved[1]), (128, 1),
                                  (128, 4)):
            ec.BLOCK_THREADS, ec.MAX_UNROLL = block, max_unroll
            t = gpu_seconds(lambda: ec.rowwise("hadamard", (a, b), o, weights=np.ones(2),
                                               eps=EPS, normalize=True), repeat)
            gbps = 3 * a.nbytes / t / 1e9
            how = "row in registers" if D <= block * ec.unroll_for(D) else "two passes"
            rows.append({"case": f"hadamard {n}x{D} float32, block {block}, "
                                 f"{ec.unroll_for(D)} cols/pass ({how})",
                         "path": "kernel", "ms": t * 1e3, "GB/s": gbps, "vs_add": gbps / add_gbps,
                         "naive_ms": float("nan"), "x_naive": float("nan")})
    finally:
        ec.BLOCK_THREADS, ec.MAX_UNROLL = saved
    return rows


def rows(quick: bool) -> list[dict]:
    reason = no_gpu_reason()
    if reason:
        return [{"case": "cuda element-wise operators", "path": "-",
                 "result": f"no GPU ({reason})"}]
    if quick:
        return operator_rows(20_000, np.float32, 10, ops=["hadamard", "nsum", "geomean_signed"])
    return (operator_rows(200_000, np.float32, 20)
            + operator_rows(200_000, np.float64, 10, ops=["hadamard", "nsum"])
            + tuning_rows(200_000, 10))


# -- pytest-benchmark suite (small sizes) ------------------------------------

def _device_pair(n):
    import pytest

    reason = no_gpu_reason()
    if reason:
        pytest.skip(f"no CUDA GPU ({reason})")
    import cupy as cp

    return (cp.asarray(unit_rows(n, D, seed=s, cone=0.5)) for s in (0, 1))


def test_cuda_hadamard_api(benchmark):
    import embalg as ea

    a, b = _device_pair(50_000)
    out = a.copy()
    ea.hadamard(a, b, backend="cuda", out=out)  # compile outside the timed body
    benchmark(ea.hadamard, a, b, backend="cuda", out=out)


def test_cuda_cosine_api(benchmark):
    import embalg as ea

    a, b = _device_pair(50_000)
    out = a[:, 0].copy()
    ea.cosine(a, b, backend="cuda", out=out)
    benchmark(ea.cosine, a, b, backend="cuda", out=out)

"""Element-wise operators: fused kernels vs the naive NumPy expression, a peer (torch) and memory bandwidth.

Targets (issue "Operator core", 200,000 x 1536 float32 on the 2-core CI machine):
every fused operator >= 4x the naive NumPy expression and >= 85% of the same-run
``np.add(x, y, out=o)`` bandwidth (same traffic: two arrays read, one written);
float32 within 2e-6 and float64 within 1e-12 (max abs) of the float64 reference.

    python bench/run.py --only elementwise          # the table (full size)
    pytest bench/bench_elementwise.py               # pytest-benchmark suite (smaller)
"""
from __future__ import annotations

import numpy as np

import embalg as ea
from common import add_bandwidth, median_time, unit_rows
from embalg.kernels import elementwise_numpy as ref


def _naive(op):
    """The way people write it in NumPy: whole-array temporaries, then divide by the norm."""
    def unit(z):
        return z / np.linalg.norm(z, axis=1, keepdims=True)

    return {
        "nsum": lambda x, y: unit(x + y),
        "hadamard": lambda x, y: unit(x * y),
        "hadamard_div": lambda x, y: unit(x / np.where(np.abs(y) >= 1e-6, y, np.where(y < 0, -1e-6, 1e-6))),
        "geomean": lambda x, y: unit(np.sign(x + y) * np.sqrt(np.abs(x * y))),
        "normalize": lambda x, y: unit(x),
    }[op]


def _peer(op):
    """torch (CPU) as the peer library; None where torch is missing."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    exprs = {
        "nsum": lambda a, b: a + b,
        "hadamard": lambda a, b: a * b,
        "hadamard_div": lambda a, b: a / torch.where(b.abs() >= 1e-6, b, torch.where(b < 0, -1e-6, 1e-6)),
        "geomean": lambda a, b: torch.sign(a + b) * torch.sqrt((a * b).abs()),
        "normalize": lambda a, b: a,
    }

    def run(x, y):
        with torch.no_grad():
            return F.normalize(exprs[op](torch.from_numpy(x), torch.from_numpy(y)), dim=1)

    return run


def _fused(op):
    f = ea.OPERATORS.get(op) or ea.normalize
    if op == "normalize":
        return lambda x, y, out: ea.normalize(x, backend="numba", out=out)
    return lambda x, y, out: f(x, y, backend="numba", out=out)


OPS = ("nsum", "hadamard", "hadamard_div", "geomean", "normalize")


def _accuracy(op, dtype, n=2000, d=1536):
    x = unit_rows(n, d, seed=11, cone=3.0).astype(dtype)
    y = unit_rows(n, d, seed=12, cone=3.0).astype(dtype)
    got = _fused(op)(x, y, None)
    code = {"geomean": "geomean_signed"}.get(op, op)
    z = ref.raw(code, [x.astype(np.float64)] + ([] if op == "normalize" else [y.astype(np.float64)]),
                np.ones(2), 1e-6)
    want = z / np.linalg.norm(z, axis=1, keepdims=True)
    return float(np.max(np.abs(got - want)))


def rows(quick: bool = False) -> list[dict]:
    n, d = (20_000, 1536) if quick else (200_000, 1536)
    repeat = 3 if quick else 5
    x = unit_rows(n, d, seed=1, cone=3.0)
    y = unit_rows(n, d, seed=2, cone=3.0)
    out = np.empty_like(x)
    ceiling = add_bandwidth(x, y, out, repeat=repeat)
    table = []
    for op in OPS:
        traffic = (2 if op == "normalize" else 3) * x.nbytes
        fused = _fused(op)
        t = median_time(lambda: fused(x, y, out), repeat=repeat)
        naive = _naive(op)
        t_naive = median_time(lambda: naive(x, y), repeat=max(2, repeat - 2))
        peer = _peer(op)
        t_peer = median_time(lambda: peer(x, y), repeat=max(2, repeat - 2)) if peer else float("nan")
        gbps = traffic / t / 1e9
        table.append({
            "op": op, "n x d": f"{n} x {d} f32", "fused s": t, "GB/s": gbps,
            "% of add GB/s": 100 * gbps / ceiling["GBps"], "add GB/s": ceiling["GBps"],
            "x naive NumPy": t_naive / t, "x torch": t_peer / t,
            "f32 max err": _accuracy(op, np.float32), "f64 max err": _accuracy(op, np.float64),
        })
    return table


# ----------------------------------------------------------------- pytest-benchmark suite
N_BENCH = 20_000


def _data():
    return unit_rows(N_BENCH, 1536, seed=1, cone=3.0), unit_rows(N_BENCH, 1536, seed=2, cone=3.0)


def test_add_ceiling(benchmark):
    x, y = _data()
    out = np.empty_like(x)
    benchmark(np.add, x, y, out=out)


def test_fused_hadamard(benchmark):
    x, y = _data()
    out = np.empty_like(x)
    ea.hadamard(x, y, backend="numba", out=out)  # compile outside the timed body
    benchmark(ea.hadamard, x, y, backend="numba", out=out)


def test_naive_hadamard(benchmark):
    x, y = _data()
    benchmark(_naive("hadamard"), x, y)


def test_fused_geomean(benchmark):
    x, y = _data()
    out = np.empty_like(x)
    ea.geomean(x, y, backend="numba", out=out)
    benchmark(ea.geomean, x, y, backend="numba", out=out)

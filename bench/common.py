"""Shared benchmark machinery: timers and the same-run hardware ceilings.

Every figure in ``bench/`` is reported next to a ceiling measured in the same
process: memory-bound kernels against :func:`add_bandwidth` (``np.add(a, b,
out=o)``: two arrays read, one written), GEMM-bound ones against
:func:`gemm_rate` (BLAS SGEMM). Machines are shared and noisy, so every time is
the median of several runs after a warm-up.
"""
from __future__ import annotations

import statistics
import time

import numpy as np


def median_time(fn, *, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def unit_rows(n: int, d: int, *, seed: int = 0, dtype=np.float32, cone: float = 0.0) -> np.ndarray:
    """Seeded unit vectors; ``cone > 0`` adds a common direction (anisotropic, like real embeddings)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    if cone:
        x += cone * np.sqrt(d) * np.ones(d, np.float32) / np.sqrt(d)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(dtype, copy=False)


def add_bandwidth(a: np.ndarray, b: np.ndarray, out: np.ndarray, *, repeat: int = 5) -> dict:
    """Same-run memory ceiling: ``np.add(a, b, out=out)``; bytes moved = 3 arrays."""
    t = median_time(lambda: np.add(a, b, out=out), repeat=repeat)
    nbytes = a.nbytes + b.nbytes + out.nbytes
    return {"seconds": t, "bytes": nbytes, "GBps": nbytes / t / 1e9}


def gemm_rate(m: int = 4096, n: int = 4096, k: int = 1536, *, dtype=np.float32, repeat: int = 3) -> dict:
    """Same-run compute ceiling: ``a @ b.T`` on (m, k) x (n, k) in ``dtype``."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((m, k), dtype=np.float32).astype(dtype, copy=False)
    b = rng.standard_normal((n, k), dtype=np.float32).astype(dtype, copy=False)
    out = np.empty((m, n), dtype)
    t = median_time(lambda: np.matmul(a, b.T, out=out), repeat=repeat)
    flops = 2.0 * m * n * k
    return {"seconds": t, "flops": flops, "GFLOPs": flops / t / 1e9}


def format_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A Markdown table of ``rows`` (floats with 4 significant digits)."""
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)

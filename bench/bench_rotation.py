"""Rotation apply and Procrustes fits against their same-run ceilings and peers.

``python bench/run.py --only rotation [--quick]``; ``pytest bench/bench_rotation.py``.

* apply, one rotation on every row, (n, 1536) float32: bytes = one read + one
  write of the rows (the rotation's two float32 vectors stay in cache and are
  counted once); compared with ``np.add`` bandwidth (3 arrays) measured in the
  same run, and with the naive NumPy way (``x @ u``, ``x @ w``, two outer updates).
* apply, a batch of n rotations row by row: bytes = x, u, w read + out written
  (u and w cast to float32 once, outside the timed body).
* Procrustes on (n, 768) float32 against ``scipy.linalg.orthogonal_procrustes``
  (same data, same run) and against the same-run SGEMM rate for ``X^T Y``.
"""
from __future__ import annotations

import numpy as np

from common import add_bandwidth, median_time, unit_rows

D_APPLY = 1536
D_PROC = 768


def interleaved_medians(fns, *, repeat: int) -> list[float]:
    """Median time of each of ``fns``, calling them in turn (a warm-up round first), so a
    noisy shared machine slows all of them alike rather than whichever ran during a spike."""
    import statistics
    import time

    times = [[] for _ in fns]
    for rnd in range(repeat + 1):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            if rnd:
                times[k].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def _naive_apply(x, a, w, cm1, s):
    alpha = x @ a
    beta = x @ w
    return x + np.outer(cm1 * alpha - s * beta, a) + np.outer(cm1 * beta + s * alpha, w)


def apply_rows(n: int, repeat: int) -> list[dict]:
    import embalg as ea

    x = unit_rows(n, D_APPLY, seed=0, cone=0.5)
    v0, v1 = unit_rows(2, D_APPLY, seed=1, dtype=np.float64)
    out = np.empty_like(x)
    tmp = np.empty_like(x)
    ceiling = add_bandwidth(x, x[::-1], tmp, repeat=repeat)
    r = ea.rotation(v0, v1, backend="numba")
    rows = []
    rot_bytes = 2 * D_APPLY * 4
    nbytes = 2 * x.nbytes + rot_bytes
    t_nb = median_time(lambda: r.apply(x, out=out, backend="numba"), repeat=repeat)
    st = r._stages[0]
    a32, w32 = (v.astype(np.float32) for v in st.planes_as(np.float32))
    t_naive = median_time(lambda: _naive_apply(x, a32[0], w32[0], np.float32(st.cm1[0]),
                                               np.float32(st.s[0])), repeat=max(2, repeat // 2))
    rows.append(_row(f"apply single, {n}x{D_APPLY} f32", t_nb, nbytes / t_nb / 1e9, "GB/s",
                     ceiling["GBps"], "np.add GB/s", "naive numpy", t_naive))
    # batch of n rotations applied row by row
    nb_rows = n // 4
    xb = x[:nb_rows]
    vb0 = unit_rows(nb_rows, D_APPLY, seed=2, cone=0.5)
    vb1 = unit_rows(nb_rows, D_APPLY, seed=3, cone=0.5)
    rb = ea.rotation(vb0, vb1, backend="numba")
    rb._stages[0].planes_as(np.float32)
    outb = np.empty_like(xb)
    t_b = median_time(lambda: rb.apply(xb, out=outb, backend="numba"), repeat=repeat)
    bytes_b = 4 * xb.nbytes
    ub, wb = rb._stages[0].planes_as(np.float32)
    cm1b = rb._stages[0].cm1.astype(np.float32)
    sb = rb._stages[0].s.astype(np.float32)

    def naive_batch():
        alpha = np.einsum("ij,ij->i", xb, ub)
        beta = np.einsum("ij,ij->i", xb, wb)
        return xb + (cm1b * alpha - sb * beta)[:, None] * ub + (cm1b * beta + sb * alpha)[:, None] * wb

    t_naive_b = median_time(naive_batch, repeat=max(2, repeat // 2))
    cb = add_bandwidth(xb, xb[::-1], tmp[:nb_rows], repeat=repeat)
    rows.append(_row(f"apply batch, {nb_rows}x{D_APPLY} f32", t_b, bytes_b / t_b / 1e9, "GB/s",
                     cb["GBps"], "np.add GB/s", "naive numpy", t_naive_b))
    return rows


def procrustes_rows(n: int, repeat: int) -> list[dict]:
    from scipy.linalg import orthogonal_procrustes

    import embalg as ea

    X = unit_rows(n, D_PROC, seed=4, cone=0.5)
    Y = unit_rows(n, D_PROC, seed=5, cone=0.5) + 0.5 * X
    t_ea, t_sp, t_gemm = interleaved_medians(
        [lambda: ea.procrustes(X, Y), lambda: orthogonal_procrustes(X, Y), lambda: X.T @ Y],
        repeat=repeat)
    flops = 2.0 * n * D_PROC * D_PROC
    gflops_gemm = flops / t_gemm / 1e9
    return [_row(f"procrustes {n}x{D_PROC} f32", t_ea, flops / t_ea / 1e9, "GFLOP/s (X^T Y)",
                 gflops_gemm, "X^T Y GEMM alone GFLOP/s", "scipy orthogonal_procrustes", t_sp)]


def _row(case, seconds, rate, unit, ceiling, ceiling_name, peer, peer_s):
    """One table row: the figure, its same-run ceiling and the peer, as ratios."""
    return {"case": case, "seconds": seconds, "rate": rate, "unit": unit,
            "ceiling": ceiling, "ceiling_is": ceiling_name, "vs_ceiling": rate / ceiling,
            "peer": peer, "peer_s": peer_s, "speedup_vs_peer": peer_s / seconds}


def rows(quick: bool) -> list[dict]:
    if quick:
        return apply_rows(50_000, 5) + procrustes_rows(50_000, 3)
    return apply_rows(200_000, 7) + procrustes_rows(200_000, 3)


# -- pytest-benchmark suite (small sizes) ------------------------------------

def test_apply_single_numba(benchmark):
    import embalg as ea

    x = unit_rows(20_000, D_APPLY, seed=0)
    r = ea.rotation(*unit_rows(2, D_APPLY, seed=1, dtype=np.float64), backend="numba")
    out = np.empty_like(x)
    r.apply(x, out=out)
    benchmark(r.apply, x, out=out, backend="numba")


def test_procrustes_20k(benchmark):
    import embalg as ea

    X = unit_rows(20_000, 256, seed=4)
    Y = unit_rows(20_000, 256, seed=5)
    benchmark(ea.procrustes, X, Y)

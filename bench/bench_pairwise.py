"""All-pairs cosine statistics: GEMM-bound, so every figure is compared with bare GEMM tiles.

``rows(quick)`` measures, in one run:

* ``pairwise_stats`` (1000-bin histogram + min/max + mean/std, and with
  ``topk=10``) on N x 1536 float32 self-pairs (N = 16,384; quick: 4,096)
  against the same-run time of bare BLAS GEMM tiles doing the same
  multiplications (the same tile schedule, ``np.matmul(a, b.T, out=tile)``,
  nothing else). Targets: >= 90% and >= 70% of the bare rate.
* scikit-learn ``pairwise_distances_chunked(metric="cosine")`` with a histogram
  ``reduce_func`` on the same data (the counts must match ours except pairs
  within 1e-6 of a bin edge). Target: ours >= 3x faster.
* peak RSS of 60,000 x 384 self-pairs (quick: 12,000), in a fresh process,
  sampled with psutil. Target: at most input + 500 MB.
* a scale table for N = 10k (measured) and 100k, 1M (extrapolated from the
  measured per-tile times of this run: labelled as such), d = 1536.

Threads: BLAS and Numba both at 2 (the reference machine has 2 cores).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np

from common import gemm_rate, median_time, unit_rows

THREADS = 2
D = 1536


def _limit_threads():
    import numba
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))
    return threadpool_limits(THREADS)


def _schedule(n, d):
    from embalg.pairwise import DEFAULT_WORKING_MEMORY, tile_schedule, tile_size

    t = min(tile_size(d, 4, DEFAULT_WORKING_MEMORY), n)
    return t, tile_schedule(n, None, t)


def bare_gemm_tiles(x, schedule, t):
    """The ceiling: the same tile multiplications into one preallocated buffer, nothing else."""
    buf = np.empty(t * t, np.float32)

    def run():
        for i0, i1, j0, j1 in schedule:
            s = buf[:(i1 - i0) * (j1 - j0)].reshape(i1 - i0, j1 - j0)
            np.matmul(x[i0:i1], x[j0:j1].T, out=s)
    return run


def _warm():
    import embalg as ea

    x = unit_rows(600, 64, seed=9)
    ea.pairwise_stats(x, tile=256, topk=10, backend="numba")
    ea.pairwise_stats(x, tile=256, backend="numba")


def gemm_bound_rows(n, repeat):
    import embalg as ea

    x = unit_rows(n, D, seed=0, cone=1.0)
    t, schedule = _schedule(n, D)
    _warm()
    pairs = n * (n - 1) // 2
    flops = sum(2.0 * (i1 - i0) * (j1 - j0) * D for i0, i1, j0, j1 in schedule)
    t_bare = median_time(bare_gemm_tiles(x, schedule, t), repeat=repeat)
    t_stats = median_time(lambda: ea.pairwise_stats(x, bins=1000, backend="numba"), repeat=repeat)
    t_topk = median_time(lambda: ea.pairwise_stats(x, bins=1000, topk=10, backend="numba"),
                         repeat=repeat)
    ceiling = gemm_rate(4096, 4096, D)
    base = {"N": n, "d": D, "tile": t, "tiles": len(schedule)}
    return [
        {**base, "what": "bare GEMM tiles (same multiplications)", "seconds": t_bare,
         "Mpairs/s": pairs / t_bare / 1e6, "GFLOP/s": flops / t_bare / 1e9,
         "ratio": 1.0, "target": "ceiling",
         "note": f"square 4096x4096x{D} SGEMM: {ceiling['GFLOPs']:.0f} GFLOP/s"},
        {**base, "what": "pairwise_stats hist+min/max+mean/std", "seconds": t_stats,
         "Mpairs/s": pairs / t_stats / 1e6, "GFLOP/s": flops / t_stats / 1e9,
         "ratio": t_bare / t_stats, "target": ">= 0.90 of bare"},
        {**base, "what": "pairwise_stats + topk=10", "seconds": t_topk,
         "Mpairs/s": pairs / t_topk / 1e6, "GFLOP/s": flops / t_topk / 1e9,
         "ratio": t_bare / t_topk, "target": ">= 0.70 of bare"},
    ]


def sklearn_histogram(x, bins=1000):
    """Peer: scikit-learn's chunked cosine distances, histogram of the upper triangle per chunk."""
    from sklearn.metrics import pairwise_distances_chunked

    counts = np.zeros(bins, np.int64)

    def reduce(chunk, start):
        r = np.arange(start, start + chunk.shape[0])[:, None]
        mask = np.arange(chunk.shape[1])[None, :] > r
        cos = 1.0 - chunk[mask]
        counts[:] += np.histogram(cos, bins=bins, range=(-1.0, 1.0))[0]
        return np.zeros(chunk.shape[0])  # sklearn wants one entry per row; the sum is kept above

    for _ in pairwise_distances_chunked(x, metric="cosine", reduce_func=reduce,
                                        working_memory=128, n_jobs=1):
        pass
    return counts


def sklearn_rows(n, repeat):
    import embalg as ea

    x = unit_rows(n, D, seed=0, cone=1.0)
    _warm()
    t_sk = median_time(lambda: sklearn_histogram(x), repeat=repeat, warmup=0)
    t_ea = median_time(lambda: ea.pairwise_stats(x, bins=1000, backend="numba"), repeat=repeat)
    ours = ea.pairwise_stats(x, bins=1000, backend="numba").counts
    theirs = sklearn_histogram(x)
    pairs = n * (n - 1) // 2
    return [{"N": n, "d": D, "what": "sklearn pairwise_distances_chunked + histogram",
             "seconds": t_sk, "Mpairs/s": pairs / t_sk / 1e6, "ratio": 1.0, "target": "peer"},
            {"N": n, "d": D, "what": "pairwise_stats (same histogram)", "seconds": t_ea,
             "Mpairs/s": pairs / t_ea / 1e6, "ratio": t_sk / t_ea, "target": ">= 3x peer",
             "note": f"count difference {int(np.abs(ours - theirs).sum())} of {pairs} pairs "
                     "(float32 rounding next to bin edges)"}]


RSS_SCRIPT = textwrap.dedent("""
    import json, sys, threading, time, resource
    import numpy as np, psutil
    sys.path.insert(0, {bench!r})
    from common import unit_rows
    import embalg as ea
    n, d = {n}, {d}
    proc = psutil.Process()
    ea.pairwise_stats(unit_rows(600, 64, seed=9), tile=256, backend="numba")  # JIT warm-up
    x = unit_rows(n, d, seed=0, cone=1.0)
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()
    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.002)
    th = threading.Thread(target=sample); th.start()
    t0 = time.perf_counter()
    st = ea.pairwise_stats(x, bins=1000, backend="numba")
    secs = time.perf_counter() - t0
    done.set(); th.join()
    print(json.dumps({{"input_bytes": x.nbytes, "base_rss": base, "peak_rss": peak[0],
                      "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "seconds": secs, "pairs": st.n_pairs}}))
""")


def rss_rows(n, d=384):
    here = os.path.dirname(os.path.abspath(__file__))
    code = RSS_SCRIPT.format(bench=here, n=n, d=d)
    env = dict(os.environ, NUMBA_NUM_THREADS=str(THREADS), OPENBLAS_NUM_THREADS=str(THREADS))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    r = json.loads(res.stdout.strip().splitlines()[-1])
    extra = (r["peak_rss"] - r["base_rss"]) / 1e6
    return [{"N": n, "d": d, "what": "peak RSS during pairwise_stats (psutil, 2 ms samples)",
             "seconds": r["seconds"], "Mpairs/s": r["pairs"] / r["seconds"] / 1e6,
             "input MB": r["input_bytes"] / 1e6, "extra MB": extra,
             "ratio": extra / 500.0, "target": "extra <= 500 MB (ratio <= 1)",
             "note": f"process peak {r['peak_rss'] / 1e6:.0f} MB (ru_maxrss "
                     f"{r['maxrss'] / 1e6:.0f} MB) incl. Python+NumPy+Numba"}]


def scale_rows(measure_n, repeat):
    """N = 10k measured; 100k and 1M extrapolated from this run's per-tile times."""
    import embalg as ea
    from embalg.pairwise import reduce_tile, unit_rows as unit

    t, _ = _schedule(10**6, D)
    x = unit_rows(2 * t, D, seed=1, cone=1.0)
    _warm()
    a, b = unit(x[:t], "x", np.float32), unit(x[t:], "x", np.float32)
    buf = np.empty((t, t), np.float32)

    def tile(diagonal):
        def run():
            np.matmul(a, a.T if diagonal else b.T, out=buf)
            reduce_tile(buf, 0, 0 if diagonal else t, diagonal=diagonal, symmetric=True,
                        bins=1000, backend="numba")
        return run
    t_off = median_time(tile(False), repeat=repeat)
    t_diag = median_time(tile(True), repeat=repeat)
    out = []
    xm = unit_rows(measure_n, D, seed=0, cone=1.0)
    t_meas = median_time(lambda: ea.pairwise_stats(xm, bins=1000, backend="numba"), repeat=1)
    for n in (measure_n, 100_000, 1_000_000):
        nb = -(-n // t)
        est = nb * (nb - 1) / 2 * t_off + nb * t_diag  # full tiles: an upper bound at the edges
        pairs = n * (n - 1) / 2
        row = {"N": n, "d": D, "what": "scale (pairwise_stats, hist+min/max+moments)",
               "tile": t, "tiles": nb * (nb + 1) // 2, "pairs": pairs,
               "extrapolated s": est, "Mpairs/s": pairs / est / 1e6}
        if n == measure_n:
            row.update(seconds=t_meas, note="measured (and its per-tile extrapolation)")
        else:
            row.update(note=f"extrapolated from measured per-tile times: off-diagonal "
                            f"{t_off:.3f} s, diagonal {t_diag:.3f} s per {t}x{t} tile")
        out.append(row)
    return out


def rows(quick: bool = True) -> list[dict]:
    with _limit_threads():
        out = gemm_bound_rows(4096 if quick else 16_384, repeat=3)
        out += sklearn_rows(2048 if quick else 16_384, repeat=1 if not quick else 3)
        out += scale_rows(4096 if quick else 10_000, repeat=1 if quick else 3)
    out += rss_rows(12_000 if quick else 60_000)
    cols = []
    for r in out:
        cols += [k for k in r if k not in cols]
    return [{k: r.get(k, "") for k in cols} for r in out]


# ------------------------------------------------------------------ pytest-benchmark

N_PYTEST = 2048


def _data():
    return unit_rows(N_PYTEST, 384, seed=0, cone=1.0)


def test_pairwise_stats_numba(benchmark):
    import embalg as ea

    x = _data()
    _warm()
    st = benchmark.pedantic(lambda: ea.pairwise_stats(x, bins=1000, backend="numba"),
                            rounds=5, warmup_rounds=1)
    assert st.n_pairs == N_PYTEST * (N_PYTEST - 1) // 2


def test_pairwise_stats_topk_numba(benchmark):
    import embalg as ea

    x = _data()
    _warm()
    st = benchmark.pedantic(lambda: ea.pairwise_stats(x, bins=1000, topk=10, backend="numba"),
                            rounds=5, warmup_rounds=1)
    assert st.topk_indices.shape == (N_PYTEST, 10)


def test_bare_gemm_tiles(benchmark):
    x = _data()
    t, schedule = _schedule(N_PYTEST, 384)
    benchmark.pedantic(bare_gemm_tiles(x, schedule, t), rounds=5, warmup_rounds=1)


def test_sklearn_chunked_histogram(benchmark):
    x = _data()
    counts = benchmark.pedantic(lambda: sklearn_histogram(x), rounds=3, warmup_rounds=0)
    assert counts.sum() == N_PYTEST * (N_PYTEST - 1) // 2


if __name__ == "__main__":
    from common import format_table

    t0 = time.perf_counter()
    print(format_table(rows(quick="--full" not in sys.argv)))
    print(f"({time.perf_counter() - t0:.0f} s)")

"""Local-model embedding throughput: ``ea.embed`` with all-MiniLM-L6-v2 on CPU.

Texts are seeded ``random_strings(kind="words")`` (3-12 words, like the cone
study). Each row is the median texts/s of ``ea.embed(..., cache=None)`` at one
batch size, next to the peer (sentence-transformers' own ``encode`` with its
default batch size 32, same texts, same process) and the issue's target of
200 texts/s. ``cpu_s`` is the process CPU time of the median run: on a shared
machine the wall time moves with the load, texts per CPU second much less.
The load rows are a fresh interpreter importing torch and sentence-transformers
and loading the model (what a CLI run pays once), and a load in this process.
Machines are shared: quote the ratios, not the raw figures.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

TARGET = 200.0  # texts/s, issue "Embedding sources"

_LOAD = ("import time; t = time.perf_counter(); "
         "from embalg.sources.local import load_model; m = load_model('all-MiniLM-L6-v2'); "
         "print(time.perf_counter() - t)")


_RATE = ("import sys, time; import embalg as ea; "
         "texts = ea.random_strings(int(sys.argv[1]), kind='words', seed=0); "
         "ea.embed(texts[:64], cache=None, progress=False); t = time.perf_counter(); "
         "ea.embed(texts, cache=None, progress=False); print(len(texts) / (time.perf_counter() - t))")


def fresh_rate(n: int, wait_policy: str) -> float:
    """texts/s of ``ea.embed`` in a fresh interpreter with ``OMP_WAIT_POLICY=wait_policy``."""
    env = {**os.environ, "OMP_WAIT_POLICY": wait_policy}
    out = subprocess.run([sys.executable, "-c", _RATE, str(n)], capture_output=True, text=True,
                         check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def load_seconds() -> float:
    """Wall time of imports + model load in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", _LOAD], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def timed(fn, *, repeat: int) -> tuple[float, float]:
    """Median ``(wall, cpu)`` seconds of ``fn()`` after one warm-up call."""
    fn()
    runs = []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.perf_counter() - w, time.process_time() - c))
    wall = statistics.median(r[0] for r in runs)
    return wall, min(runs, key=lambda r: abs(r[0] - wall))[1]


def rows(quick: bool = True) -> list[dict]:
    import embalg as ea
    from embalg.sources.local import load_model

    n = 128 if quick else 2048
    repeat = 2 if quick else 5
    texts = ea.random_strings(n, kind="words", seed=0)
    t0 = time.perf_counter()
    model = load_model("all-MiniLM-L6-v2")
    warm_load = time.perf_counter() - t0
    import torch  # after load_model, which chooses the OpenMP wait policy before torch starts

    def row(case, batch_size, wall, cpu, peer_rate=None):
        rate = n / wall
        return {"case": case, "batch_size": batch_size, "n": n, "threads": torch.get_num_threads(),
                "seconds": wall, "cpu_s": cpu, "texts_per_s": rate, "texts_per_cpu_s": n / cpu,
                "vs_peer": rate / peer_rate if peer_rate else 1.0, "vs_target": rate / TARGET,
                "load_avg": os.getloadavg()[0]}  # the machine is shared: load when the row ended

    wall, cpu = timed(lambda: model.encode(texts, show_progress_bar=False), repeat=repeat)
    peer_rate = n / wall
    blank = dict.fromkeys(row("", "", 1.0, 1.0), "")
    out = [{**blank, "case": "fresh process: import + load", "seconds": load_seconds(),
            "load_avg": os.getloadavg()[0]},
           {**blank, "case": "load in this process", "seconds": warm_load},
           row("peer: SentenceTransformer.encode", 32, wall, cpu)]
    for bs in (32, 64, 128) if quick else (8, 16, 32, 64, 128, 256):
        wall, cpu = timed(lambda: ea.embed(texts, cache=None, batch_size=bs, progress=False),
                          repeat=repeat)
        out.append(row("ea.embed local", bs, wall, cpu, peer_rate))
    if not quick:
        threads = torch.get_num_threads()
        for k in sorted({1, threads}):
            torch.set_num_threads(k)
            wall, cpu = timed(lambda: ea.embed(texts, cache=None, progress=False), repeat=repeat)
            out.append(row(f"ea.embed local, {k} torch threads", "default", wall, cpu, peer_rate))
        torch.set_num_threads(threads)
        for policy in ("ACTIVE", "PASSIVE"):  # spinning vs sleeping OpenMP threads
            rate = fresh_rate(n, policy)
            out.append({**blank, "case": f"fresh process, OMP_WAIT_POLICY={policy}", "n": n,
                        "threads": threads, "texts_per_s": rate, "vs_peer": rate / peer_rate,
                        "vs_target": rate / TARGET, "load_avg": os.getloadavg()[0]})
    return out


def test_embed_local_words(benchmark):
    import embalg as ea

    texts = ea.random_strings(128, kind="words", seed=1)
    ea.embed(texts[:8], cache=None, progress=False)  # load + warm up
    result = benchmark(lambda: ea.embed(texts, cache=None, progress=False))
    assert result.shape == (128, 384)


if __name__ == "__main__":
    from common import format_table

    print(format_table(rows(quick="--full" not in sys.argv)))

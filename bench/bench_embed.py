"""Local-model embedding throughput: ``ea.embed`` with all-MiniLM-L6-v2 on CPU.

Texts are seeded ``random_strings(kind="words")`` (3-12 words, like the cone
study). Each row is the median texts/s of ``ea.embed(..., cache=None)`` at one
batch size, next to the peer (sentence-transformers' own ``encode`` with its
default batch size 32, same texts, same process) and the issue's target of
200 texts/s. The load row is a fresh interpreter importing torch and
sentence-transformers and loading the model (what a CLI run pays once).
Machines are shared: quote the ratios, not the raw figures.
"""
from __future__ import annotations

import subprocess
import sys
import time

from common import median_time

TARGET = 200.0  # texts/s, issue "Embedding sources"

_LOAD = ("import time; t = time.perf_counter(); "
         "from embalg.sources.local import load_model; m = load_model('all-MiniLM-L6-v2'); "
         "print(time.perf_counter() - t)")


def load_seconds() -> float:
    """Wall time of imports + model load in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", _LOAD], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def rows(quick: bool = True) -> list[dict]:
    import embalg as ea
    from embalg.sources.local import load_model

    n = 128 if quick else 2048
    repeat = 2 if quick else 5
    texts = ea.random_strings(n, kind="words", seed=0)
    t0 = time.perf_counter()
    model = load_model("all-MiniLM-L6-v2")
    warm_load = time.perf_counter() - t0
    peer = median_time(lambda: model.encode(texts, show_progress_bar=False), repeat=repeat)
    peer_rate = n / peer
    out = [{"case": "fresh process: import + load", "batch_size": "", "n": "",
            "seconds": load_seconds(), "texts_per_s": "", "vs_peer": "", "vs_target": ""},
           {"case": "load in this process", "batch_size": "", "n": "", "seconds": warm_load,
            "texts_per_s": "", "vs_peer": "", "vs_target": ""},
           {"case": "peer: SentenceTransformer.encode", "batch_size": 32, "n": n, "seconds": peer,
            "texts_per_s": peer_rate, "vs_peer": 1.0, "vs_target": peer_rate / TARGET}]
    for bs in (32, 64, 128) if quick else (8, 16, 32, 64, 128, 256):
        t = median_time(lambda: ea.embed(texts, cache=None, batch_size=bs, progress=False),
                        repeat=repeat)
        rate = n / t
        out.append({"case": "ea.embed local", "batch_size": bs, "n": n, "seconds": t,
                    "texts_per_s": rate, "vs_peer": rate / peer_rate, "vs_target": rate / TARGET})
    if not quick:
        import torch

        threads = torch.get_num_threads()
        for k in sorted({1, threads}):
            torch.set_num_threads(k)
            t = median_time(lambda: ea.embed(texts, cache=None, progress=False), repeat=repeat)
            out.append({"case": f"ea.embed local, {k} torch threads", "batch_size": "default",
                        "n": n, "seconds": t, "texts_per_s": n / t, "vs_peer": n / t / peer_rate,
                        "vs_target": n / t / TARGET})
        torch.set_num_threads(threads)
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

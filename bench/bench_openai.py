"""Client-side overhead of the OpenAI path: texts/s against a loopback server that answers at once.

The server (``tests/fake_openai_server.py --precomputed``) runs in its own
process and replies with a ready-made response body, so what is timed is the
client: token counting and packing, the HTTP exchange on 127.0.0.1, JSON and
base64 decoding into float32, the response checks and renormalization, and
(the ``+ cache`` rows) one SQLite transaction per response.

Each end-to-end figure is set next to the same-run floor of the unavoidable
per-response work (``json.loads`` + :func:`decode_embeddings` of a 2048-input
response, no HTTP) and the issue's target of 20,000 texts/s.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import median_time

ROOT = Path(__file__).resolve().parent.parent
TARGET = 20_000.0
MODEL = "text-embedding-3-small"


class LoopbackServer:
    """The fake OpenAI server in a child process (so it does not share our GIL)."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai_server.py"),
                                      "--precomputed"], stdout=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}/v1"
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def make_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = ["vector", "cosine", "embedding", "algebra", "product", "norm", "space", "model", "random",
             "text", "query", "result", "token", "matrix", "angle", "cone"]
    picks = rng.integers(0, len(words), size=(n, 6))
    return [f"{i} " + " ".join(words[k] for k in row) for i, row in enumerate(picks)]


def _embedder(url: str, dims):
    from embalg.sources.openai_embedder import OpenAIEmbedder

    return OpenAIEmbedder(MODEL, dimensions=dims, api_key="sk-bench", base_url=url, max_concurrency=2)


def run_once(url: str, texts, dims, cache_dir: str | None) -> None:
    """One full embedding job (optionally storing every response into a fresh cache)."""
    emb = _embedder(url, dims)
    if cache_dir is None:
        emb.embed_texts(texts, lambda idx, vecs: None, progress=False)
        return
    from embalg.sources.cache import EmbeddingCache

    path = Path(tempfile.mkdtemp(dir=cache_dir)) / "c.sqlite"
    with EmbeddingCache(path) as cache:
        emb.embed_texts(texts, lambda idx, vecs: cache.put_many(
            emb.provider, emb.model, emb.dimensions, [texts[i] for i in idx], vecs), progress=False)


def decode_floor(dims, n: int = 2048) -> float:
    """Seconds for json.loads + decode_embeddings of one n-input base64 response (no HTTP)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_openai_server import FakeOpenAI

    from embalg.sources.openai_embedder import decode_embeddings

    _, body = FakeOpenAI(precomputed=True).embeddings_body(
        {"input": ["x"] * n, "model": MODEL, "dimensions": dims, "encoding_format": "base64"})
    d = dims or 1536
    return median_time(lambda: decode_embeddings(json.loads(body), n, d), repeat=5)


def rows(quick: bool = True) -> list[dict]:
    from embalg.sources.packing import pack_requests, validate_texts

    n = 20_480 if quick else 102_400
    repeat = 3 if quick else 5
    texts = make_texts(n)
    out = []
    t_pack = median_time(lambda: pack_requests(validate_texts(texts)), repeat=repeat)
    out.append({"case": "count tokens + pack", "dims": "-", "texts": n, "seconds": t_pack,
                "texts_per_s": n / t_pack, "vs_target": n / t_pack / TARGET, "vs_decode_floor": ""})
    with LoopbackServer() as server, tempfile.TemporaryDirectory() as tmp:
        run_once(server.url, texts[:4096], None, None)  # warm-up: imports, tokenizer, connections
        for dims in (None, 256):
            floor = n / 2048 * decode_floor(dims)
            for label, cache_dir in (("end to end", None), ("end to end + cache", tmp)):
                t = median_time(lambda: run_once(server.url, texts, dims, cache_dir), repeat=repeat)
                out.append({"case": label, "dims": dims or 1536, "texts": n, "seconds": t,
                            "texts_per_s": n / t, "vs_target": n / t / TARGET, "vs_decode_floor": floor / t})
    return out


def test_openai_client_overhead(benchmark):
    texts = make_texts(4096, seed=1)
    with LoopbackServer() as server:
        run_once(server.url, texts[:2048], 256, None)
        benchmark.pedantic(run_once, args=(server.url, texts, 256, None), rounds=3, warmup_rounds=1)


if __name__ == "__main__":  # pragma: no cover
    from common import format_table

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t0 = time.perf_counter()
    print(format_table(rows(quick="--full" not in sys.argv)))
    print(f"({time.perf_counter() - t0:.0f} s)")

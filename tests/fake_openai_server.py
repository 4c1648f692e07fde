"""A loopback OpenAI-compatible server for tests and benchmarks (no network, no key).

``FakeOpenAI`` runs an ``http.server.ThreadingHTTPServer`` on ``127.0.0.1`` at a
free port and implements what embalg uses:

- ``POST /v1/embeddings``: deterministic unit vectors from the SHA-256 of
  ``model + text`` (:func:`fake_vector`), ``encoding_format`` ``"float"`` or
  ``"base64"``, ``dimensions`` (truncate + renormalize, as OpenAI does), usage
  tokens (exact cl100k_base), and the real limits (2048 inputs, 8191 tokens per
  input, ``max_tokens_per_request`` tokens per request, no empty strings).
- ``POST /v1/files`` (multipart upload), ``GET /v1/files/{id}``,
  ``GET /v1/files/{id}/content``.
- ``POST /v1/batches`` (runs the batch at once), ``GET /v1/batches/{id}``
  (``in_progress`` on the first poll, ``completed`` after).

Fault injection: ``server.faults`` is a script consumed one entry per
embeddings request (``None`` = answer normally). Entries: ``("status", code,
headers)`` e.g. ``("status", 429, {"retry-after-ms": "5"})``; ``"500"``;
``("slow", seconds)``; ``"truncated_json"`` (a cut body with a matching
Content-Length); ``"short_body"`` (the connection closes before
Content-Length bytes); ``"wrong_dim"``; ``"nan"``; ``"shuffle"`` (items out of
index order, still valid); ``"missing"`` (last item dropped); ``"duplicate"``;
``"max_tokens"`` (400 ``max_tokens_per_request``); ``"zero"`` (a zero vector).

Counters: ``http_requests`` (every HTTP request), ``requests`` (every embeddings
request with a valid key), ``paid_inputs`` and
``paid_tokens`` (inputs/tokens in requests answered 200, whatever the body),
``inputs_seen`` (Counter of every text received in a 200-answered request).

Run standalone (used by ``bench/bench_openai.py``)::

    python tests/fake_openai_server.py --precomputed   # prints the port, serves until killed
"""
from __future__ import annotations

import base64
import collections
import email.parser
import email.policy
import functools
import hashlib
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

NATIVE_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072,
               "text-embedding-ada-002": 1536}
DEFAULT_DIM = 64  # for models the fake does not know


def fake_vector(model: str, text: str, dimensions=None) -> np.ndarray:
    """The unit float32 vector the fake server returns for ``text`` (float64 math, then float32)."""
    seed = int.from_bytes(hashlib.sha256(f"{model}\x00{text}".encode("utf-8", "surrogatepass")).digest()[:8],
                          "little")
    d = NATIVE_DIMS.get(model, DEFAULT_DIM)
    v = np.random.default_rng(seed).standard_normal(d)
    v += 0.5  # a common direction: anisotropic like real embeddings
    if dimensions:
        v = v[:dimensions]
    return (v / np.linalg.norm(v)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _encoding():
    import bpe_openai

    return bpe_openai.get_encoding("cl100k_base")


def _count_tokens(text: str) -> int:
    return len(_encoding().encode_ordinary(text))


class FakeOpenAI:
    """The server object; use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(self, *, api_key: str | None = None, max_tokens_per_request: int = 300_000,
                 ratelimit_headers: dict | None = None, precomputed: bool = False):
        self.api_key = api_key
        self.max_tokens_per_request = max_tokens_per_request
        self.ratelimit_headers = dict(ratelimit_headers or {})
        self.precomputed = precomputed
        self.faults: list = []
        self.lock = threading.Lock()
        self.requests = 0
        self.http_requests = 0  # every HTTP request, including ones refused for a bad key
        self.paid_inputs = 0
        self.paid_tokens = 0
        self.inputs_seen: collections.Counter = collections.Counter()
        self.request_sizes: list[int] = []
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.batch_failures: set = set()  # custom_ids whose batch line is an error
        self._precomputed: dict = {}
        self._httpd = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self):
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True,
                         name="fake-openai").start()
        return self

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def next_fault(self):
        with self.lock:
            self.requests += 1
            return self.faults.pop(0) if self.faults else None

    # -- embeddings ----------------------------------------------------------------------
    def embeddings_body(self, req: dict, fault=None) -> tuple[int, dict | bytes]:
        """(status, JSON body) for an embeddings request body (ready bytes when precomputed)."""
        inputs = req.get("input")
        model = req.get("model", "")
        dims = req.get("dimensions")
        fmt = req.get("encoding_format", "float")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            return 400, _error("'input' must be a non-empty string or array", "invalid_request_error")
        if len(inputs) > 2048:
            return 400, _error(f"'input' has {len(inputs)} items; at most 2048", "invalid_request_error")
        if dims is not None and model == "text-embedding-ada-002":
            return 400, _error("This model does not support specifying dimensions.", "invalid_request_error")
        if self.precomputed:  # a ready answer per request shape: the server costs ~nothing
            key = (len(inputs), model, dims, fmt)
            if key not in self._precomputed:
                body = self._answer(["x"] * len(inputs), [1] * len(inputs), model, dims, fmt)
                self._precomputed[key] = json.dumps(body).encode()
            with self.lock:
                self.paid_inputs += len(inputs)
            return 200, self._precomputed[key]
        tokens = []
        for i, t in enumerate(inputs):
            if not isinstance(t, str) or not t:
                return 400, _error(f"'input[{i}]' must be a non-empty string", "invalid_request_error")
            tokens.append(_count_tokens(t))
            if tokens[-1] > 8191:
                return 400, _error(f"input[{i}] has {tokens[-1]} tokens; maximum context length is 8192",
                                   "invalid_request_error")
        if fault == "max_tokens" or sum(tokens) > self.max_tokens_per_request:
            return 400, _error(f"Requested {sum(tokens)} tokens, max {self.max_tokens_per_request} "
                               "tokens per request", "max_tokens_per_request")
        with self.lock:
            self.paid_inputs += len(inputs)
            self.paid_tokens += sum(tokens)
            self.inputs_seen.update(inputs)
            self.request_sizes.append(len(inputs))
        return 200, self._answer(inputs, tokens, model, dims, fmt, fault)

    def _answer(self, inputs, tokens, model, dims, fmt, fault=None) -> dict:
        vecs = [fake_vector(model, t, dims) for t in inputs]
        if fault == "wrong_dim":
            vecs[0] = vecs[0][:-1]
        elif fault == "nan":
            vecs[-1] = vecs[-1].copy()
            vecs[-1][3] = np.nan
        elif fault == "zero":
            vecs[0] = np.zeros_like(vecs[0])
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
                 if fmt == "base64" else [float(x) for x in v]} for i, v in enumerate(vecs)]
        if fault == "shuffle":
            data = data[::-1]
        elif fault == "missing":
            data = data[:-1]
        elif fault == "duplicate" and len(data) > 1:
            data[-1] = dict(data[-1], index=0)
        return {"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": sum(tokens), "total_tokens": sum(tokens)}}

    # -- files and batches -----------------------------------------------------------------
    def add_file(self, content: bytes, filename: str, purpose: str) -> dict:
        with self.lock:
            fid = f"file-{len(self.files) + 1}"
            obj = {"id": fid, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                   "filename": filename, "purpose": purpose, "status": "processed"}
            self.files[fid] = {"meta": obj, "content": content}
        return obj

    def create_batch(self, req: dict) -> dict:
        src = self.files[req["input_file_id"]]["content"]
        out_lines, err_lines = [], []
        for k, line in enumerate(src.decode("utf-8").splitlines()):
            if not line.strip():
                continue
            item = json.loads(line)
            cid = item["custom_id"]
            if cid in self.batch_failures:
                err_lines.append({"id": f"batch_req_{k}", "custom_id": cid, "response": None,
                                  "error": {"code": "server_error", "message": "injected failure"}})
                continue
            status, body = self.embeddings_body(item["body"])
            out_lines.append({"id": f"batch_req_{k}", "custom_id": cid,
                              "response": {"status_code": status, "request_id": f"req_{k}", "body": body},
                              "error": None})
        out_lines.reverse()  # output order is not guaranteed: make sure nobody relies on it
        enc = lambda rows: "".join(json.dumps(r) + "\n" for r in rows).encode()  # noqa: E731
        out = self.add_file(enc(out_lines), "batch_output.jsonl", "batch_output")
        err = self.add_file(enc(err_lines), "batch_errors.jsonl", "batch_output") if err_lines else None
        with self.lock:
            bid = f"batch_{len(self.batches) + 1}"
            self.batches[bid] = {
                "id": bid, "object": "batch", "endpoint": req.get("endpoint"),
                "input_file_id": req["input_file_id"], "completion_window": req.get("completion_window"),
                "status": "validating", "created_at": int(time.time()),
                "output_file_id": out["id"], "error_file_id": err["id"] if err else None,
                "request_counts": {"total": len(out_lines) + len(err_lines),
                                   "completed": len(out_lines), "failed": len(err_lines)},
                "_polls": 0,
            }
            return self._batch_view(bid, advance=False)

    def retrieve_batch(self, bid: str) -> dict:
        with self.lock:
            return self._batch_view(bid, advance=True)

    def _batch_view(self, bid, advance) -> dict:
        b = self.batches[bid]
        if advance:
            b["_polls"] += 1
            b["status"] = "in_progress" if b["_polls"] == 1 else "completed"
        view = {k: v for k, v in b.items() if not k.startswith("_")}
        if view["status"] != "completed":
            view["output_file_id"] = view["error_file_id"] = None
        return view


def _error(message: str, code: str) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status: int, body, headers=None, *, raw: bytes | None = None, length=None):
        if isinstance(body, bytes):
            raw = body
        data = raw if raw is not None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data) if length is None else length))
        for k, v in {**self.fake.ratelimit_headers, **(headers or {})}.items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _authorized(self) -> bool:
        key = self.fake.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        given = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        # echo the wrong key like some servers do: the client must redact it
        self._send(401, _error(f"Incorrect API key provided: {given}.", "invalid_api_key"))
        return False

    def _body(self) -> bytes:
        with self.fake.lock:
            self.fake.http_requests += 1
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_POST(self):  # noqa: N802
        body = self._body()
        if not self._authorized():
            return
        path = self.path.split("?")[0]
        if path == "/v1/embeddings":
            return self._embeddings(json.loads(body))
        if path == "/v1/files":
            return self._send(200, self._upload(body))
        if path == "/v1/batches":
            return self._send(200, self.fake.create_batch(json.loads(body)))
        self._send(404, _error(f"no route {path}", "not_found"))

    def do_GET(self):  # noqa: N802
        self._body()
        if not self._authorized():
            return
        path = self.path.split("?")[0]
        m = re.fullmatch(r"/v1/files/([^/]+)(/content)?", path)
        if m and m.group(1) in self.fake.files:
            f = self.fake.files[m.group(1)]
            if m.group(2):
                return self._send(200, None, raw=f["content"])
            return self._send(200, f["meta"])
        m = re.fullmatch(r"/v1/batches/([^/]+)", path)
        if m and m.group(1) in self.fake.batches:
            return self._send(200, self.fake.retrieve_batch(m.group(1)))
        self._send(404, _error(f"no route {path}", "not_found"))

    def _upload(self, body: bytes) -> dict:
        head = f"Content-Type: {self.headers.get('Content-Type')}\r\n\r\n".encode()
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        fields, content, filename = {}, b"", "upload.jsonl"
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if part.get_filename():
                filename = part.get_filename()
                content = part.get_payload(decode=True)
            else:
                fields[name] = part.get_payload(decode=True).decode()
        return self.fake.add_file(content, filename, fields.get("purpose", "batch"))

    def _embeddings(self, req: dict):
        fault = self.fake.next_fault()
        kind = fault[0] if isinstance(fault, tuple) else fault
        if kind == "status":
            _, code, headers = fault
            return self._send(code, _error(f"injected HTTP {code}", "injected"), headers)
        if kind == "500":
            return self._send(500, _error("The server had an error", "server_error"))
        if kind == "slow":
            time.sleep(fault[1])
        status, body = self.fake.embeddings_body(req, kind)
        if kind == "truncated_json" and status == 200:
            data = json.dumps(body).encode()
            return self._send(200, None, raw=data[: len(data) // 2])
        if kind == "short_body" and status == 200:
            data = json.dumps(body).encode()
            self._send(200, None, raw=data[: len(data) // 2], length=len(data))
            self.close_connection = True
            return None
        self._send(status, body)


def kill_when_paid(server: FakeOpenAI, script: str, paid_inputs: int, *, env=None,
                   timeout: float = 120.0) -> None:
    """Run ``python -c script``; SIGKILL it once ``server`` was paid for ``paid_inputs`` inputs.

    Raises AssertionError when the process ends (or the timeout passes) first. Afterwards
    waits briefly so that requests in flight at the kill reach the server's counters.
    """
    import os
    import signal
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while server.paid_inputs < paid_inputs and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"the job ended before it could be killed: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.3)


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="serve the fake OpenAI API on 127.0.0.1 until killed")
    p.add_argument("--precomputed", action="store_true", help="answer with a precomputed response")
    args = p.parse_args(argv)
    server = FakeOpenAI(precomputed=args.precomputed).start()
    print(server.port, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

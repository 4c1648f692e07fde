"""The OpenAI Batch API for embeddings: half price, results within 24 h.

A job is a working directory:

- ``requests-0000.jsonl``, ... : the request files (each at most 50,000 inputs
  and 50,000 requests, under 200 MB). Every line is ``{"custom_id", "method":
  "POST", "url": "/v1/embeddings", "body": {...}}``; requests are packed like the
  online path (at most 2048 inputs and 300k tokens each) from consecutive texts.
- ``texts.jsonl``: the texts (one JSON string per line), for resuming and ingesting.
- ``batch_state.json``: which file became which uploaded file and batch, and
  what has been ingested, so a killed ``run_batch_job`` resumes polling instead
  of paying again.
- ``output-0000.jsonl`` (and ``errors-0000.jsonl``): downloaded results.

``custom_id`` is ``"embalg-{start}-{stop}-{digest}"``: the request embeds
``texts[start:stop]`` and ``digest`` is the first 12 hex digits of a SHA-256 over
those texts' SHA-256s, so an output file can only be ingested against the very
texts it was written for (output order is not guaranteed; lines are matched by
custom_id). Results go into the :class:`~embalg.sources.cache.EmbeddingCache`
under provider ``"openai"``, exactly as the online path stores them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from pathlib import Path

from ..atomic import atomic_path, write_json
from .cache import text_sha256
from .openai_embedder import (MODELS, OpenAIRequestError, _strip_provider,
                              check_model_dimensions, decode_embeddings, make_client, redact,
                              resolve_api_key)
from .packing import (MAX_INPUTS_PER_REQUEST, MAX_TOKENS_PER_REQUEST, pack_requests, plan_inputs,
                      validate_texts)

log = logging.getLogger(__name__)

MAX_INPUTS_PER_FILE = 50_000
MAX_REQUESTS_PER_FILE = 50_000
MAX_FILE_BYTES = 190_000_000  # the API's limit is 200 MB; keep a margin
TEXTS_FILE = "texts.jsonl"
FINAL_STATES = {"completed", "failed", "expired", "cancelled"}
_CUSTOM_ID = re.compile(r"embalg-(\d+)-(\d+)-([0-9a-f]{12})")


def span_digest(texts, start: int, stop: int) -> str:
    """12 hex digits identifying ``texts[start:stop]`` (SHA-256 over the texts' SHA-256s)."""
    h = hashlib.sha256()
    for t in texts[start:stop]:
        h.update(text_sha256(t))
    return h.hexdigest()[:12]


def texts_digest(texts) -> str:
    """Identifies a whole list of texts (used to refuse resuming a job for other texts)."""
    return span_digest(texts, 0, len(texts))


def write_batch_requests(texts, model: str, dimensions=None, workdir=".", *, truncate=None,
                         batch_size: int = MAX_INPUTS_PER_REQUEST,
                         max_tokens_per_request: int = MAX_TOKENS_PER_REQUEST,
                         max_inputs_per_file: int = MAX_INPUTS_PER_FILE) -> list[Path]:
    """Write the JSONL request files for ``texts``; return their paths.

    Parameters
    ----------
    texts : list of str
        Checked like the online path (empty strings, non-strings, over-long inputs).
    model : str
        An OpenAI embedding model (``"openai:"`` prefix allowed).
    dimensions : int, optional
        text-embedding-3 only.
    workdir : path
        Created if missing; files are written atomically.
    truncate : {None, "truncate"}
        ``"chunk_average"`` is not offered through the Batch API.

    Examples
    --------
    >>> import tempfile, json
    >>> d = tempfile.mkdtemp()
    >>> paths = write_batch_requests(["a cat", "a dog", "a cow"], "text-embedding-3-small", 256, d,
    ...                              batch_size=2)
    >>> [json.loads(line)["custom_id"] for line in open(paths[0])]
    ['embalg-0-2-d9bee90b170e', 'embalg-2-3-e059e1890f49']
    >>> json.loads(open(paths[0]).readline())["body"]
    {'model': 'text-embedding-3-small', 'encoding_format': 'base64', 'dimensions': 256, 'input': ['a cat', 'a dog']}
    """
    model = _strip_provider(model)
    dimensions = check_model_dimensions(model, dimensions)
    if truncate not in (None, "truncate"):
        raise ValueError(f"truncate={truncate!r} is not available with the Batch API; use None or 'truncate'")
    if not 1 <= max_inputs_per_file <= MAX_INPUTS_PER_FILE:
        raise ValueError(f"max_inputs_per_file must be in 1..{MAX_INPUTS_PER_FILE}, got {max_inputs_per_file}")
    counts = validate_texts(texts, truncate=truncate)
    plan = plan_inputs(texts, counts, truncate)
    spans = pack_requests(plan.tokens, max_inputs=min(batch_size, max_inputs_per_file),
                          max_tokens=max_tokens_per_request)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    base = {"model": model, "encoding_format": "base64"}
    if dimensions is not None:
        base["dimensions"] = dimensions
    files: list[list[bytes]] = [[]]
    sizes = [0, 0]  # inputs, bytes in the current file
    for start, stop in spans:
        line = json.dumps({"custom_id": f"embalg-{start}-{stop}-{span_digest(texts, start, stop)}",
                           "method": "POST", "url": "/v1/embeddings",
                           "body": {**base, "input": plan.inputs[start:stop]}},
                          ensure_ascii=False).encode("utf-8") + b"\n"
        if files[-1] and (sizes[0] + stop - start > max_inputs_per_file or len(files[-1]) >= MAX_REQUESTS_PER_FILE
                          or sizes[1] + len(line) > MAX_FILE_BYTES):
            files.append([])
            sizes = [0, 0]
        files[-1].append(line)
        sizes[0] += stop - start
        sizes[1] += len(line)
    with atomic_path(workdir / TEXTS_FILE) as tmp:  # the texts themselves (inputs may be truncated)
        tmp.write_bytes(b"".join(json.dumps(t, ensure_ascii=False).encode("utf-8") + b"\n"
                                 for t in texts))
    paths = []
    for k, lines in enumerate(f for f in files if f):
        path = workdir / f"requests-{k:04d}.jsonl"
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"".join(lines))
        paths.append(path)
    log.info("wrote %d request files for %d texts in %s", len(paths), len(texts), workdir)
    return paths


def read_batch_texts(request_files) -> list[str]:
    """The texts a set of request files was written for, in order.

    Read from the job's ``texts.jsonl`` (beside the request files) when present,
    otherwise from the request inputs themselves (equal to the texts unless
    ``truncate="truncate"`` shortened some).
    """
    files = sorted(Path(p) for p in request_files)
    if files and (files[0].parent / TEXTS_FILE).exists():
        with open(files[0].parent / TEXTS_FILE, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    texts: list[str] = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    texts.extend(json.loads(line)["body"]["input"])
    return texts


def ingest_batch_output(path, texts, model: str, dimensions, cache) -> dict:
    """Put the vectors of a downloaded batch output file into ``cache``.

    Parameters
    ----------
    path : path
        A batch output JSONL (or error JSONL) file, in any line order.
    texts : list of str
        The texts the request files were written for (same list, same order).
    model, dimensions :
        As given to :func:`write_batch_requests`.
    cache : EmbeddingCache

    Returns
    -------
    dict
        ``{"lines": int, "ingested": int (texts stored), "ok": [custom_id, ...],
        "failed": [custom_id, ...]}``; failed lines (an error, or a non-200 status)
        are skipped and listed.

    Raises
    ------
    ValueError
        A line is not JSON or has a foreign ``custom_id``, or a ``custom_id`` does
        not match ``texts`` (not the texts the batch was written for).
        Lines before it are already stored.
    EmbeddingResponseError
        A response body fails the checks of the online path.
    """
    model = _strip_provider(model)
    dimensions = check_model_dimensions(model, dimensions)
    expected_dim = dimensions or MODELS.get(model, (None,))[0]
    summary = {"lines": 0, "ingested": 0, "failed": [], "ok": []}
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
            except ValueError:
                raise ValueError(f"{path}:{lineno} is not JSON (a truncated download?)") from None
            summary["lines"] += 1
            cid = item.get("custom_id") if isinstance(item, dict) else None
            m = _CUSTOM_ID.fullmatch(cid or "")
            if m is None:
                raise ValueError(f"{path}:{lineno}: custom_id {cid!r} was not written by embalg")
            start, stop, digest = int(m[1]), int(m[2]), m[3]
            if stop > len(texts) or start >= stop or span_digest(texts, start, stop) != digest:
                raise ValueError(f"{path}:{lineno}: custom_id {cid} does not match the texts given "
                                 f"({len(texts)} texts); pass the texts the batch was written for")
            response = item.get("response") or {}
            if item.get("error") or response.get("status_code") != 200:
                err = item.get("error") or (response.get("body") or {}).get("error")
                log.warning("batch request %s failed: %s", cid, redact(json.dumps(err))[:300])
                summary["failed"].append(cid)
                continue
            vecs = decode_embeddings(response.get("body"), stop - start, expected_dim,
                                     where=f"{path}:{lineno} ({cid})")
            if expected_dim is None:
                expected_dim = vecs.shape[1]
            cache.put_many("openai", model, dimensions, texts[start:stop], vecs)
            summary["ingested"] += stop - start
            summary["ok"].append(cid)
    return summary


def run_batch_job(texts, model: str, dimensions, cache, workdir, *, poll_interval: float = 60.0,
                  progress=None, truncate=None, api_key=None, base_url=None,
                  max_wait: float | None = None, batch_size: int = MAX_INPUTS_PER_REQUEST,
                  max_inputs_per_file: int = MAX_INPUTS_PER_FILE, client=None) -> dict:
    """Embed ``texts`` through the Batch API into ``cache``: write, submit, poll, download, ingest.

    Re-running with the same ``workdir`` and ``texts`` resumes: submitted batches
    are polled, not paid for again, and ingested outputs are not read again.

    Parameters
    ----------
    texts : list of str
        De-duplicated texts not yet in the cache.
    model, dimensions :
        The OpenAI model and optional text-embedding-3 output size.
    cache : EmbeddingCache
    workdir : path
        Holds request, state and output files.
    poll_interval : float
        Seconds between status checks.
    progress : None, bool or object with ``update(n)``
        Texts ingested so far (``None``/bool: a tqdm bar, auto/on/off).
    truncate : {None, "truncate"}
    api_key, base_url : str, optional
        Default to ``$OPENAI_API_KEY`` / ``$OPENAI_BASE_URL``.
    max_wait : float, optional
        Give up polling after this many seconds (the batches keep running; re-run to resume).
    batch_size, max_inputs_per_file : int
        Inputs per request (<= 2048) and per request file (<= 50,000).
    client : openai.OpenAI, optional
        A ready client (otherwise one is made from ``api_key`` / ``base_url``).

    Returns
    -------
    dict
        ``{"texts", "ingested", "failed": [custom_id, ...], "batches": {file: state}}``.
        Texts of failed requests are not in the cache: embed them online.

    Raises
    ------
    ValueError
        ``workdir`` holds a job for other texts, model or dimensions; bad inputs;
        missing API key (names ``OPENAI_API_KEY``).
    TimeoutError
        ``max_wait`` passed before every batch finished.
    """
    from ..progress import progress_bar

    model = _strip_provider(model)
    dimensions = check_model_dimensions(model, dimensions)
    workdir = Path(workdir)
    state_path = workdir / "batch_state.json"
    key = {"texts_digest": texts_digest(texts), "n_texts": len(texts), "model": model,
           "dimensions": dimensions, "truncate": truncate}
    if state_path.exists():
        state = json.loads(state_path.read_text())
        if {k: state.get(k) for k in key} != key:
            raise ValueError(f"{workdir} holds a batch job for other texts or settings "
                             f"({state.get('n_texts')} texts, model {state.get('model')}); use a new workdir")
        log.info("resuming the batch job in %s", workdir)
    else:
        paths = write_batch_requests(texts, model, dimensions, workdir, truncate=truncate,
                                     batch_size=batch_size, max_inputs_per_file=max_inputs_per_file)
        state = {**key, "batches": {p.name: {} for p in paths}}
        write_json(state_path, state)
    if client is None:
        client = make_client(resolve_api_key(api_key), base_url, 600.0, max_retries=5)
    own = progress is None or isinstance(progress, bool)
    bar = progress_bar(len(texts), desc="batch", unit="text", progress=progress) if own else progress
    began = time.monotonic()
    try:
        for name, b in state["batches"].items():
            if not b.get("batch_id"):
                b.update(_submit(client, workdir / name))
                write_json(state_path, state)
        while True:
            running = 0
            for name, b in state["batches"].items():
                if b.get("ingested"):
                    continue
                batch = _call(client.batches.retrieve, b["batch_id"])
                b["status"] = batch.status
                if batch.status not in FINAL_STATES:
                    running += 1
                    continue
                done = _collect(client, batch, workdir, name, texts, model, dimensions, cache)
                b.update(ingested=True, ingested_texts=done["ingested"],
                         failed=sorted(_custom_ids(workdir / name) - set(done["ok"])))
                write_json(state_path, state)
                bar.update(done["ingested"])
            if not running:
                break
            if max_wait is not None and time.monotonic() - began > max_wait:
                raise TimeoutError(f"{running} batches still running after {max_wait:.0f} s; "
                                   f"run again with the same workdir ({workdir}) to resume")
            time.sleep(poll_interval)
    finally:
        if own:
            bar.close()
    batches = state["batches"]
    failed = [cid for b in batches.values() for cid in b["failed"]]
    if failed:
        log.warning("%d batch requests failed; their texts are not cached", len(failed))
    return {"texts": len(texts), "ingested": sum(b["ingested_texts"] for b in batches.values()),
            "failed": failed, "batches": batches}


def _custom_ids(request_file: Path) -> set:
    with open(request_file, encoding="utf-8") as f:
        return {json.loads(line)["custom_id"] for line in f if line.strip()}


def _call(fn, *args, **kwargs):
    """Run a client call; turn API errors into OpenAIRequestError with the key redacted."""
    import openai

    try:
        return fn(*args, **kwargs)
    except openai.APIStatusError as exc:
        raise OpenAIRequestError(redact(f"Batch API call failed with HTTP {exc.status_code}: "
                                        f"{exc.message}")) from None
    except openai.APIConnectionError as exc:
        raise OpenAIRequestError(f"Batch API call failed: {type(exc).__name__}") from None


def _submit(client, path: Path) -> dict:
    with open(path, "rb") as f:
        uploaded = _call(client.files.create, file=(path.name, f), purpose="batch")
    batch = _call(client.batches.create, input_file_id=uploaded.id, endpoint="/v1/embeddings",
                  completion_window="24h", metadata={"source": "embalg", "file": path.name})
    log.info("submitted %s as %s (batch %s)", path.name, uploaded.id, batch.id)
    return {"file_id": uploaded.id, "batch_id": batch.id, "status": batch.status}


def _collect(client, batch, workdir: Path, name: str, texts, model, dimensions, cache) -> dict:
    """Download a finished batch's output and error files and ingest them."""
    result = {"ingested": 0, "ok": []}
    suffix = name[len("requests-"):] if name.startswith("requests-") else name
    for kind, file_id in (("output", batch.output_file_id), ("errors", batch.error_file_id)):
        if not file_id:
            continue
        target = workdir / f"{kind}-{suffix}"
        with atomic_path(target) as tmp:
            data = _call(client.files.content, file_id)
            tmp.write_bytes(data.content)
        part = ingest_batch_output(target, texts, model, dimensions, cache)
        result["ingested"] += part["ingested"]
        result["ok"] += part["ok"]
    if batch.status != "completed":
        log.warning("batch %s ended as %s", batch.id, batch.status)
    return result

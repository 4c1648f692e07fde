"""Backend registry: which kernel implementation runs a call.

A *backend* is a name (``"numpy"``, ``"numba"``, ``"cuda"``); a *kernel family*
is a group of kernels with one job (``"elementwise"``, ``"pairwise"``, ...).
The module ``embalg.kernels.<family>_<backend>`` implements a family for a
backend, and every backend module of a family exposes the same function names.
Modules are imported on first use and cached, so importing :mod:`embalg`
never imports Numba, Numba CUDA or CuPy.

``backend="auto"`` picks, for the input's array type, the fastest backend that
is available: CuPy arrays -> ``"cuda"``; NumPy arrays -> ``"numba"`` when Numba
imports and the input holds at least :data:`AUTO_NUMBA_MIN_ELEMENTS` values
(below that the NumPy reference is as fast and needs no JIT), else ``"numpy"``.
"""
from __future__ import annotations

import functools
import importlib
import os
import sys

import numpy as np

BACKENDS = ("numpy", "numba", "cuda")

#: below this many input elements "auto" uses the NumPy reference on the CPU
AUTO_NUMBA_MIN_ELEMENTS = 1 << 15


def is_cupy_array(x) -> bool:
    """True when ``x`` is a CuPy ndarray (checked without importing CuPy)."""
    cp = sys.modules.get("cupy")
    return cp is not None and isinstance(x, cp.ndarray)


@functools.lru_cache(maxsize=None)
def _probe(name: str) -> tuple[bool, str]:
    """(available, reason) for one backend; the import happens here, once."""
    if name == "numpy":
        return True, f"numpy {np.__version__}"
    if name == "numba":
        try:
            import numba
        except Exception as exc:  # pragma: no cover - numba is a dependency
            return False, f"numba does not import: {exc}"
        return True, f"numba {numba.__version__}, {numba.config.NUMBA_NUM_THREADS} threads"
    if name == "cuda":
        try:
            from numba import cuda
        except Exception as exc:
            return False, f"numba-cuda does not import ({exc}); pip install 'embalg[gpu]'"
        if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
            return True, "Numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1): correct but slow"
        try:
            if not cuda.is_available():
                return False, "no GPU driver or no CUDA device"
            dev = cuda.get_current_device()
            return True, f"{dev.name.decode() if isinstance(dev.name, bytes) else dev.name}, cc {dev.compute_capability}"
        except Exception as exc:
            return False, f"no GPU driver ({type(exc).__name__}: {exc})"
    raise ValueError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")


def available_backends() -> dict[str, tuple[bool, str]]:
    """Map each backend name to ``(available, reason)``.

    Examples
    --------
    >>> import embalg as ea
    >>> ea.available_backends()["numpy"][0]
    True
    """
    return {name: _probe(name) for name in BACKENDS}


def resolve_backend(backend: str, x, n_elements: int | None = None) -> str:
    """Turn ``backend`` (a name or ``"auto"``) into a concrete, available name.

    Raises ``ValueError`` for an unknown name and for a known one that is not
    available here (with the reason), and ``TypeError`` when a CPU backend is
    asked for with a GPU array.
    """
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a string, got {type(backend).__name__}")
    on_gpu = is_cupy_array(x)
    if backend == "auto":
        if on_gpu:
            return "cuda"
        size = int(np.size(x)) if n_elements is None else n_elements
        if size >= AUTO_NUMBA_MIN_ELEMENTS and _probe("numba")[0]:
            return "numba"
        return "numpy"
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known backends: {', '.join(BACKENDS)} or 'auto'")
    ok, why = _probe(backend)
    if not ok:
        raise ValueError(f"backend {backend!r} is not available: {why}")
    if on_gpu and backend != "cuda":
        raise TypeError(f"backend {backend!r} runs on the CPU but the input is a CuPy array; "
                        "use backend='cuda' or 'auto', or move the data with cupy.asnumpy")
    return backend


@functools.lru_cache(maxsize=None)
def kernels(family: str, backend: str):
    """The module implementing kernel ``family`` for ``backend`` (imported once)."""
    try:
        return importlib.import_module(f"embalg.kernels.{family}_{backend}")
    except ModuleNotFoundError as exc:
        if exc.name == f"embalg.kernels.{family}_{backend}":
            raise ValueError(f"backend {backend!r} has no {family!r} kernels") from None
        raise

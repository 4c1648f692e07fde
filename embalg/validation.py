"""Input validation: one gate per kind of input, called first by public functions.

Policies (documented in the README, tested in ``tests/test_validation.py``):

* dtypes: float16, bfloat16 (``ml_dtypes``), float32, float64 are accepted.
  float32 and float64 are computed and returned as they are; float16 and
  bfloat16 are computed with float32 accumulation and returned as float32.
  Mixed float32/float64 inputs promote to float64. Integer, bool, complex and
  object arrays raise ``TypeError``: embeddings are real floating-point data.
* shapes: a vector is ``(d,)``, a batch ``(n, d)``; other ndim raise
  ``ValueError``. Dimensions must match exactly; row counts broadcast when
  equal or 1.
* NaN and inf raise ``ValueError`` naming the argument and the first bad row.
* ``out=`` must have exactly the result's shape and dtype; it is never cast
  or resized.
* empty ``(0, d)`` batches are valid and give empty results.
"""
from __future__ import annotations

import numbers
import sys

import numpy as np

from .backends import is_cupy_array

#: how a zero-norm row is treated where a direction is needed
ON_ZERO = ("raise", "nan", "zero")


def array_namespace(*arrays):
    """``cupy`` if any argument is a CuPy array, else ``numpy``."""
    for a in arrays:
        if is_cupy_array(a):
            return sys.modules["cupy"]
    return np


def _is_bfloat16(dtype) -> bool:
    return getattr(dtype, "name", "") == "bfloat16"


def as_vectors(x, name: str, *, allow_1d: bool = True):
    """Check one vector or batch of vectors; return ``(x2d, was_1d)``.

    Parameters
    ----------
    x : array_like, shape (d,) or (n, d)
        Floating-point data (NumPy or CuPy arrays, or nested sequences).
    name : str
        Argument name used in error messages.

    Returns
    -------
    x2d : ndarray, shape (n, d)
        A view of ``x`` (no copy unless ``x`` was not an array).
    was_1d : bool
        Whether ``x`` was a single vector.
    """
    if x is None:
        raise TypeError(f"{name} must be an array of vectors, got None")
    if not (isinstance(x, np.ndarray) or is_cupy_array(x)):
        if isinstance(x, (str, bytes)):
            raise TypeError(f"{name} must be an array of vectors, got {type(x).__name__}")
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{name} could not be read as an array: {exc}") from None
    dt = x.dtype
    if not (np.issubdtype(dt, np.floating) or _is_bfloat16(dt)):
        kind = {"i": "integer", "u": "unsigned integer", "b": "bool", "c": "complex",
                "O": "object", "U": "string", "S": "bytes"}.get(dt.kind, dt.kind)
        raise TypeError(f"{name} must hold real floating-point values (float16/32/64), "
                        f"got dtype {dt} ({kind}); convert with {name}.astype(np.float32)")
    if x.ndim == 1:
        if not allow_1d:
            raise ValueError(f"{name} must be a 2-D array of shape (n, d), got shape {x.shape}; "
                             f"reshape a single vector with {name}[None, :]")
        return x[None, :], True
    if x.ndim != 2:
        raise ValueError(f"{name} must be a vector (d,) or a batch (n, d), got {x.ndim}-D "
                         f"array of shape {x.shape}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has dimension d = 0; embeddings need d >= 1")
    return x, False


def compute_dtype(*arrays) -> np.dtype:
    """float32 or float64: the dtype kernels compute and return in."""
    dts = [np.float32 if (_is_bfloat16(a.dtype) or a.dtype == np.float16) else a.dtype
           for a in arrays]
    return np.dtype(np.result_type(*dts))


def check_same_dim(arrays, names) -> int:
    """The common dimension ``d``; ``ValueError`` naming the first mismatch."""
    d0 = arrays[0].shape[-1]
    for a, nm in zip(arrays[1:], names[1:]):
        if a.shape[-1] != d0:
            raise ValueError(f"dimension mismatch: {names[0]} has d = {d0} while {nm} has "
                             f"d = {a.shape[-1]}; all inputs must come from the same model")
    return d0


def broadcast_rows(arrays, names) -> int:
    """The broadcast row count: each input has ``n`` rows or 1."""
    counts = {a.shape[0] for a in arrays if a.shape[0] != 1}
    if len(counts) > 1:
        desc = ", ".join(f"{nm}: {a.shape[0]}" for a, nm in zip(arrays, names))
        raise ValueError(f"row counts do not broadcast ({desc}); each input needs the same "
                         "number of rows or a single row")
    return counts.pop() if counts else 1


def first_nonfinite_row(x) -> int:
    """Index of the first row of 2-D ``x`` holding NaN or inf, or -1."""
    xp = array_namespace(x)
    bad = ~xp.isfinite(x).all(axis=1)
    if not bool(bad.any()):
        return -1
    return int(xp.argmax(bad))


def check_finite(x, name: str) -> None:
    """``ValueError`` naming ``name`` and the first row with NaN or inf."""
    row = first_nonfinite_row(x if x.ndim == 2 else x[None, :])
    if row >= 0:
        raise ValueError(f"{name} contains NaN or inf (first at row {row}); "
                         "embeddings must be finite")


def check_on_zero(on_zero: str) -> str:
    if on_zero not in ON_ZERO:
        raise ValueError(f"on_zero must be one of {ON_ZERO}, got {on_zero!r}")
    return on_zero


def check_out(out, shape, dtype, xp, name: str = "out"):
    """Check a caller-provided output array; it is written in place, never cast."""
    if out is None:
        return None
    if xp is np and not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray for NumPy inputs, got {type(out).__name__}")
    if xp is not np and not is_cupy_array(out):
        raise TypeError(f"{name} must be a cupy.ndarray for CuPy inputs, got {type(out).__name__}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(out.shape)}, the result needs {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"{name} has dtype {out.dtype}, the result needs {np.dtype(dtype)}; "
                        f"{name} is never cast")
    if not getattr(out.flags, "writeable", True):
        raise ValueError(f"{name} is read-only")
    return out


def check_positive_float(value, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value!r}")
    return v


def check_positive_int(value, name: str, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    v = int(value)
    if v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v

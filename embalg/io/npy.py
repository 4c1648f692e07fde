"""``.npy`` vector files: checked opening (memory-mapped) and atomic saving.

A file is checked before any data is read: the magic string and header must
parse, the dtype must be a real float, the shape must be ``(n, d)`` (or
``(d,)``), and the file size must equal header + ``n * d * itemsize`` exactly,
so a truncated file or one whose header lies raises ``ValueError`` instead of
yielding garbage or a late ``mmap`` error.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.lib import format as npformat

from ..atomic import atomic_path


def read_npy_header(path) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """``(shape, dtype, fortran_order, data_offset)`` of a ``.npy`` file, checked."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such vector file: {path}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        try:
            version = npformat.read_magic(f)
        except ValueError as exc:
            raise ValueError(f"{path} is not a .npy file ({exc})") from None
        try:
            if version == (1, 0):
                shape, fortran, dtype = npformat.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = npformat.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"{path} has a corrupt .npy header ({exc})") from None
        offset = f.tell()
    if dtype.hasobject:
        raise ValueError(f"{path} holds Python objects; vector files must hold floats")
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size != expected:
        what = "truncated" if size < expected else "longer than its header says"
        raise ValueError(f"{path} is {what}: the header promises shape {shape} {dtype} "
                         f"({expected} bytes with the header), the file has {size} bytes")
    return tuple(shape), dtype, fortran, offset


def open_npy(path, *, mmap: bool = True) -> np.ndarray:
    """Open a ``.npy`` of vectors, shape ``(n, d)``, checked, memory-mapped read-only by default.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a .npy file, corrupt or lying header, truncated, not 1-D/2-D.
    TypeError
        Not a floating-point dtype.
    """
    shape, dtype, fortran, offset = read_npy_header(path)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"{path} holds dtype {dtype}; vector files must hold float16/32/64")
    if len(shape) not in (1, 2):
        raise ValueError(f"{path} holds an array of shape {shape}; vectors need (n, d)")
    if mmap and int(np.prod(shape)) > 0:
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                         order="F" if fortran else "C")
    return np.load(path, allow_pickle=False)


def save_npy(path, array) -> None:
    """Write ``array`` to ``path`` atomically (temporary file + rename)."""
    with atomic_path(path, suffix=".npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(array), allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())

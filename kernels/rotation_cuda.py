"""Plane rotations, Numba CUDA kernels (backend ``"cuda"``).

Same functions and contract as :mod:`.rotation_numpy`. ``apply_plane`` runs on
the GPU: one thread block per row (a grid-stride loop over rows beyond
:data:`MAX_BLOCKS`); the block's threads stride over the ``d`` columns,
accumulate ``u . x`` and ``w . x`` in float64, reduce them in shared memory,
and each thread then writes its own columns of the rotated row. One read and
one write of each row (the row is read again from cache for the write); the
rotation's ``u``, ``w`` are read per row (cached when one rotation serves all
rows). The finiteness check rides on the dot products, as on the CPU.
``plane_from_pairs`` builds the planes on the host (the NumPy reference): it
is O(n d) once per rotation, and the planes are kept in float64 on the host.

Arrays may be NumPy (copied in, computed, copied back) or device arrays
(CuPy or ``__cuda_array_interface__``: computed in place). ``PTX_SIGNATURES``
lists every (kernel, signature) launched, compiled for ``sm_90`` by the tests
(see :mod:`.elementwise_cuda` for the convention).
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, types

from .elementwise_cuda import MAX_BLOCKS, _device_out, _grid, _stream, _to_device
from .rotation_numpy import plane_from_pairs  # noqa: F401  (host-side: see module docstring)

#: threads per block (a power of two: the tree reduction halves it)
BLOCK_THREADS = 128

_DTYPES = (np.float32, np.float64)

__all__ = ["apply_plane", "plane_from_pairs", "PTX_SIGNATURES", "BLOCK_THREADS", "MAX_BLOCKS"]


def _apply_source(block):
    """The apply kernel (plain Python) for ``block`` threads per block."""

    def apply_plane_kernel(x, u, w, cm1, s, out, bad):
        buf = cuda.shared.array((2, block), np.float64)
        n, d = out.shape
        t = cuda.threadIdx.x
        for i in range(cuda.blockIdx.x, n, cuda.gridDim.x):
            ix = i if x.shape[0] > 1 else 0
            ir = i if u.shape[0] > 1 else 0
            alpha = 0.0
            beta = 0.0
            for j in range(t, d, block):
                xj = float(x[ix, j])
                alpha += float(u[ir, j]) * xj
                beta += float(w[ir, j]) * xj
            buf[0, t] = alpha
            buf[1, t] = beta
            # tree reduction in shared memory (inline: the CUDA simulator swaps `cuda`
            # only in this module's globals, so a helper from another module cannot sync)
            cuda.syncthreads()
            half = block // 2
            while half > 0:
                if t < half:
                    buf[0, t] += buf[0, t + half]
                    buf[1, t] += buf[1, t + half]
                cuda.syncthreads()
                half >>= 1
            alpha = buf[0, 0]
            beta = buf[1, 0]
            cuda.syncthreads()
            if t == 0:
                bad[i] = 0 if math.isfinite(alpha + beta) else 1
            ku = cm1[ir] * alpha - s[ir] * beta
            kw = cm1[ir] * beta + s[ir] * alpha
            for j in range(t, d, block):
                out[i, j] = float(x[ix, j]) + ku * float(u[ir, j]) + kw * float(w[ir, j])

    return apply_plane_kernel


def _signature(dtype):
    scalar = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    arr2 = types.Array(scalar, 2, "A")
    vec = types.Array(types.float64, 1, "A")
    return types.void(arr2, arr2, arr2, vec, vec, arr2, types.Array(types.uint8, 1, "C"))


_KERNELS: dict = {}
_SOURCES: dict = {}


def _kernel(dtype, block):
    key = (np.dtype(dtype).name, block)
    if key not in _KERNELS:
        if block not in _SOURCES:
            _SOURCES[block] = _apply_source(block)
        _KERNELS[key] = cuda.jit(_signature(dtype), cache=True)(_SOURCES[block])
    return _KERNELS[key]


#: (kernel Python function, signature) pairs for the sm_90 PTX compile test
PTX_SIGNATURES = [(_apply_source(BLOCK_THREADS), _signature(dt)) for dt in _DTYPES]


def apply_plane(x, u, w, cm1, s, out, *, block=BLOCK_THREADS, max_blocks=MAX_BLOCKS):
    """See :func:`embalg.kernels.rotation_numpy.apply_plane` (same contract), on the GPU.

    ``x``, ``u``, ``w``, ``out`` share one dtype (float32 or float64);
    ``cm1``, ``s`` are float64. ``block`` / ``max_blocks`` set the launch shape
    (tests use small ones to exercise the strided loops).
    """
    dtype = np.dtype(out.dtype)
    for a in (x, u, w):
        if np.dtype(a.dtype) != dtype:
            raise TypeError(f"cuda kernels need one dtype; got {a.dtype} next to {dtype}")
    n = out.shape[0]
    if n == 0:
        return -1
    stream = _stream()
    d_x, d_u, d_w = (_to_device(a, stream) for a in (x, u, w))
    d_cm1, d_s = (_to_device(np.ascontiguousarray(a, np.float64), stream) for a in (cm1, s))
    d_out, copy_back = _device_out(out, stream)
    d_bad = cuda.device_array(n, np.uint8, stream=stream)
    _kernel(dtype, block)[min(_grid(n), max_blocks), block, stream](d_x, d_u, d_w, d_cm1, d_s,
                                                                    d_out, d_bad)
    copy_back()
    bad = d_bad.copy_to_host(stream=stream)
    stream.synchronize()
    return int(np.argmax(bad)) if bad.any() else -1

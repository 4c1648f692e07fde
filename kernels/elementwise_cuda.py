"""Numba CUDA kernels for the element-wise operators (backend ``"cuda"``).

Same functions and contract as :mod:`.elementwise_numba`: :func:`rowwise` and
:func:`cosine` take checked inputs (one dtype, float32 or float64; rows ``n``
or 1, a single row broadcasts) and return the row norms as float64 NumPy arrays
on the host. Arrays may live on the host (NumPy: copied to the device,
computed, the result copied back into ``out``) or on the device (CuPy arrays or
any object with ``__cuda_array_interface__``: computed in place, no host copy
of the data; only the ``n`` norms come back to the host).

Kernel design
-------------
One thread block per row (a grid-stride loop over rows when ``n`` exceeds
:data:`MAX_BLOCKS`); the :data:`BLOCK_THREADS` threads of the block stride over
the ``d`` columns. Each thread folds the inputs at its columns with the
per-operator fold of :mod:`.elementwise_ops` (the same ``init``/``step``/
``finish`` the CPU kernels compile; the op code is a constant of the kernel's
closure, so each operator gets its own machine code), writes ``z`` and keeps
float64 partial sums of ``z * z`` and of ``v * 0.0`` (NaN iff some input value
is NaN or inf). A shared-memory tree reduction gives the row's norm to every
thread, which then rescales its own columns (just written, so read back from
cache). Inputs are one tuple argument, so the arity ``K`` is part of the
kernel signature (``UniTuple(array, K)``): one driver source for every
operator and arity. Arrays are typed with any layout (``'A'``), so strided
device views (F order, slices) run without copies. No fast-math flags are
used, so the non-finite checks are honest.

Compiled kernels are cached per (op code, arity, dtype, block size), compiled
on first use (``cache=True`` keeps them on disk).

PTX registry convention (every ``kernels/*_cuda.py`` module follows it)
-----------------------------------------------------------------------
A ``*_cuda`` module exposes ``PTX_SIGNATURES``: a list of ``(pyfunc,
signature)`` pairs, one per (kernel, argument types) the module launches,
where ``pyfunc`` is the plain Python kernel function (before ``cuda.jit``)
and ``signature`` a Numba signature (``types.void(...)``). It must cover
float32 and float64 data for every kernel. ``tests/test_ptx.py`` discovers
every ``kernels/*_cuda.py``, and compiles each entry with
``numba.cuda.compile_ptx(pyfunc, signature, cc=(9, 0))`` (no GPU needed), so
a kernel that does not compile for ``sm_90`` fails CI.
"""
from __future__ import annotations

import math
import sys
import types as pytypes

import numpy as np
from numba import cuda, types
from numba.cuda.extending import register_jitable

from . import elementwise_ops as ops

#: threads per block (a power of two: the tree reduction halves it)
BLOCK_THREADS = 128

#: at most this many blocks per launch; a grid-stride loop covers further rows
MAX_BLOCKS = 65535

#: arities listed in :data:`PTX_SIGNATURES` per op code (others compile on demand)
_PTX_ARITIES = {ops.IDENTITY: (1,), ops.DIV: (2,), ops.PRODUCT: (2, 3), ops.SUM: (2, 3),
                ops.GEOMEAN_SIGNED: (2, 3), ops.GEOMEAN_AGREE: (2, 3)}

_DTYPES = (np.float32, np.float64)



def _cuda_fold():
    """``(init, step, finish)`` of :mod:`.elementwise_ops`, registered for the CUDA target.

    :mod:`.elementwise_ops` registers its fold with ``numba.extending.register_jitable
    (inline="always")``, which numba-cuda (0.30) cannot compile into a kernel: core-Numba
    IR gets inlined into the CUDA pipeline and typing fails. The kernels therefore call
    twins: new function objects over the very same code objects (no second source),
    registered with ``numba.cuda.extending.register_jitable``, whose globals point at
    each other's twins.
    """
    namespace = dict(vars(ops))
    for name in ("clamp_away_from_zero", "kth_root", "init", "step", "finish"):
        fn = getattr(ops, name)
        twin = pytypes.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__,
                                    fn.__closure__)
        twin.__qualname__ = f"{__name__}.{fn.__qualname__}"
        namespace[name] = register_jitable(twin)
    return namespace["init"], namespace["step"], namespace["finish"]


_init, _step, _finish = _cuda_fold()


@register_jitable
def _block_reduce(buf, t, block):
    """Sum ``buf[m, :block]`` into ``buf[m, 0]`` for every row ``m`` (all threads call it).

    Callers store their partial sums in ``buf[:, t]`` first, read ``buf[:, 0]``
    afterwards and ``syncthreads()`` before storing again.
    """
    cuda.syncthreads()
    half = block // 2
    while half > 0:
        if t < half:
            for m in range(buf.shape[0]):
                buf[m, t] += buf[m, t + half]
        cuda.syncthreads()
        half //= 2


def _rowwise_source(op, block):
    """The rowwise kernel (plain Python) for op code ``op`` and ``block`` threads per block."""

    def rowwise_kernel(xs, out, weights, eps, normalize, norms):
        buf = cuda.shared.array((2, block), np.float64)
        n, d = out.shape
        K = len(xs)
        t = cuda.threadIdx.x
        for i in range(cuda.blockIdx.x, n, cuda.gridDim.x):
            s = 0.0
            chk = 0.0
            for j in range(t, d, block):
                acc = _init(op)
                for k in range(K):
                    a = xs[k]
                    r = i if a.shape[0] > 1 else 0
                    v = float(a[r, j])
                    chk += v * 0.0
                    acc = _step(op, acc, v, k, weights, eps)
                z = _finish(op, acc, K)
                out[i, j] = z
                s += z * z
            buf[0, t] = s
            buf[1, t] = chk
            _block_reduce(buf, t, block)
            nrm = math.sqrt(buf[0, 0])
            if buf[1, 0] != 0.0 or not math.isfinite(nrm):
                nrm = math.nan
            cuda.syncthreads()
            if t == 0:
                norms[i] = nrm
            if normalize and nrm > 0.0:
                inv = 1.0 / nrm
                for j in range(t, d, block):
                    out[i, j] = float(out[i, j]) * inv

    return rowwise_kernel


def _cosine_source(block):
    """The row-wise cosine kernel (plain Python) for ``block`` threads per block."""

    def cosine_kernel(x, y, out, x_norms, y_norms):
        buf = cuda.shared.array((3, block), np.float64)
        n = out.shape[0]
        d = x.shape[1]
        t = cuda.threadIdx.x
        for i in range(cuda.blockIdx.x, n, cuda.gridDim.x):
            rx = i if x.shape[0] > 1 else 0
            ry = i if y.shape[0] > 1 else 0
            xy = 0.0
            xx = 0.0
            yy = 0.0
            for j in range(t, d, block):
                a = float(x[rx, j])
                b = float(y[ry, j])
                xy += a * b
                xx += a * a
                yy += b * b
            buf[0, t] = xy
            buf[1, t] = xx
            buf[2, t] = yy
            _block_reduce(buf, t, block)
            xy = buf[0, 0]
            nx = math.sqrt(buf[1, 0])
            ny = math.sqrt(buf[2, 0])
            cuda.syncthreads()
            if t == 0:
                if math.isfinite(xy) and math.isfinite(nx) and math.isfinite(ny):
                    x_norms[i] = nx
                    y_norms[i] = ny
                    out[i] = xy / (nx * ny) if nx > 0.0 and ny > 0.0 else 0.0
                else:
                    x_norms[i] = math.nan
                    y_norms[i] = math.nan
                    out[i] = math.nan

    return cosine_kernel


def _array(dtype, ndim):
    scalar = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    return types.Array(scalar, ndim, "A")


def _rowwise_signature(K, dtype):
    return types.void(types.UniTuple(_array(dtype, 2), K), _array(dtype, 2),
                      types.UniTuple(types.float64, K), types.float64, types.boolean,
                      types.Array(types.float64, 1, "C"))


def _cosine_signature(dtype):
    return types.void(_array(dtype, 2), _array(dtype, 2), _array(dtype, 1),
                      types.Array(types.float64, 1, "C"), types.Array(types.float64, 1, "C"))


_SOURCES: dict = {}
_KERNELS: dict = {}


def _source(key, make):
    if key not in _SOURCES:
        _SOURCES[key] = make()
    return _SOURCES[key]


def _rowwise_kernel(op, K, dtype):
    key = ("rowwise", op, K, np.dtype(dtype).name, BLOCK_THREADS)
    if key not in _KERNELS:
        src = _source(("rowwise", op, BLOCK_THREADS), lambda: _rowwise_source(op, BLOCK_THREADS))
        _KERNELS[key] = cuda.jit(_rowwise_signature(K, dtype), cache=True)(src)
    return _KERNELS[key]


def _cosine_kernel(dtype):
    key = ("cosine", np.dtype(dtype).name, BLOCK_THREADS)
    if key not in _KERNELS:
        src = _source(("cosine", BLOCK_THREADS), lambda: _cosine_source(BLOCK_THREADS))
        _KERNELS[key] = cuda.jit(_cosine_signature(dtype), cache=True)(src)
    return _KERNELS[key]


#: (kernel Python function, signature) pairs for tests/test_ptx.py (see the module docstring)
PTX_SIGNATURES = [
    (_rowwise_source(op, BLOCK_THREADS), _rowwise_signature(K, dt))
    for op, arities in _PTX_ARITIES.items() for K in arities for dt in _DTYPES
] + [(_cosine_source(BLOCK_THREADS), _cosine_signature(dt)) for dt in _DTYPES]


# ---------------------------------------------------------------- host side

def _stream():
    """CuPy's current stream when CuPy is in use (keeps order with CuPy work), else the default."""
    cp = sys.modules.get("cupy")
    if cp is not None and not cuda.config.ENABLE_CUDASIM:
        ptr = cp.cuda.get_current_stream().ptr
        if ptr:
            return cuda.external_stream(ptr)
    return cuda.default_stream()


def _to_device(a, stream):
    """A device view of ``a``: zero-copy for device arrays, a host-to-device copy for NumPy."""
    if isinstance(a, np.ndarray):
        return cuda.to_device(np.ascontiguousarray(a), stream=stream)
    if getattr(a, "__cuda_ndarray__", False):  # a Numba device array already
        return a
    return cuda.as_cuda_array(a)


def _device_out(out, stream):
    """``(device array to write, function that moves it into out)``."""
    if not isinstance(out, np.ndarray):
        return _to_device(out, stream), lambda: None
    d_out = cuda.device_array(out.shape, out.dtype, stream=stream)

    def copy_back():
        if out.flags.c_contiguous:
            d_out.copy_to_host(out, stream=stream)
        else:
            out[...] = d_out.copy_to_host(stream=stream)

    return d_out, copy_back


def _check_dtypes(arrays, dtype):
    # The kernels are compiled for one signature and would misread other dtypes.
    for a in arrays:
        if np.dtype(a.dtype) != dtype:
            raise TypeError(f"cuda kernels need one dtype; got {a.dtype} next to {dtype}")


def _grid(n):
    return min(n, MAX_BLOCKS)


def rowwise(op, xs, out, *, weights, eps, normalize):
    """Apply operator ``op`` (a name in :data:`.elementwise_ops.OP_CODES`) row by row on the GPU.

    Parameters
    ----------
    xs : tuple of arrays, each shape (n, d) or (1, d), one dtype (float32 or float64)
        Checked inputs; a single row broadcasts. NumPy arrays or device arrays
        (CuPy, ``__cuda_array_interface__``), any strides.
    out : array, shape (n, d), the inputs' dtype
        Written in place (any strides); on the device when it is a device array.
    weights : array_like, float64, shape (len(xs),)
    eps : float
    normalize : bool

    Returns
    -------
    norms : ndarray (NumPy, host), float64, shape (n,)
        Norm of each raw row ``z``; NaN where an input of that row is not finite.
    """
    dtype = np.dtype(out.dtype)
    _check_dtypes(xs, dtype)
    n = out.shape[0]
    norms = np.empty(n, np.float64)
    if n == 0:
        return norms
    stream = _stream()
    d_xs = tuple(_to_device(a, stream) for a in xs)
    d_out, copy_back = _device_out(out, stream)
    d_norms = cuda.device_array(n, np.float64, stream=stream)
    kernel = _rowwise_kernel(ops.OP_CODES[op], len(xs), dtype)
    kernel[_grid(n), BLOCK_THREADS, stream](d_xs, d_out, tuple(float(w) for w in weights),
                                            float(eps), bool(normalize), d_norms)
    copy_back()
    d_norms.copy_to_host(norms, stream=stream)
    stream.synchronize()
    return norms


def cosine(x, y, out):
    """Row-wise cosine of checked ``x``, ``y`` ((n|1, d), one dtype) into ``out`` (n,), on the GPU.

    Host or device arrays as in :func:`rowwise`. Returns ``(x_norms, y_norms)``,
    float64 NumPy arrays (n,), NaN where a row is not finite.
    """
    dtype = np.dtype(out.dtype)
    _check_dtypes((x, y), dtype)
    n = out.shape[0]
    x_norms = np.empty(n, np.float64)
    y_norms = np.empty(n, np.float64)
    if n == 0:
        return x_norms, y_norms
    stream = _stream()
    d_x = _to_device(x, stream)
    d_y = _to_device(y, stream)
    d_out, copy_back = _device_out(out, stream)
    d_nx = cuda.device_array(n, np.float64, stream=stream)
    d_ny = cuda.device_array(n, np.float64, stream=stream)
    _cosine_kernel(dtype)[_grid(n), BLOCK_THREADS, stream](d_x, d_y, d_out, d_nx, d_ny)
    copy_back()
    d_nx.copy_to_host(x_norms, stream=stream)
    d_ny.copy_to_host(y_norms, stream=stream)
    stream.synchronize()
    return x_norms, y_norms

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
the ``d`` columns, ``unroll`` columns per thread per pass (:func:`unroll_for`).
Each thread folds the inputs at its columns with the per-operator fold of
:mod:`.elementwise_ops` (the same ``init``/``step``/``finish`` code the CPU
kernels compile; the op code is a constant of the kernel's closure, so each
operator gets its own machine code) and keeps float64 partial sums of ``z * z``
and of ``v * 0.0`` (NaN iff some input value is NaN or inf). A shared-memory
tree reduction gives the row's norm to every thread, which then writes its
columns scaled. When ``d <= BLOCK_THREADS * MAX_UNROLL`` (every embedding size
up to 3072) the row's ``z`` stays in registers between the two steps, so the
inputs are read once and ``out`` written once, like ``cp.add``; longer rows
store ``z`` and rescale it in a second pass. The loads of a thread's columns
are issued before its stores (which may alias the inputs), so they overlap.
Inputs are one tuple argument, so the arity ``K`` is part of the kernel
signature (``UniTuple(array, K)``): one driver source for every operator and
arity. Arrays are typed with any layout (``'A'``), so strided device views (F
order, slices) run without copies. No fast-math flags are used, so the
non-finite checks are honest.

Compiled kernels are cached per (op code, arity, dtype, block size, unroll),
compiled on first use (``cache=True`` keeps them on disk; a hash of
``elementwise_ops.py`` is part of the key, so editing the fold recompiles).

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

import hashlib
import math
import sys
import types as pytypes
from pathlib import Path

import numpy as np
from numba import cuda, types

try:  # numba-cuda's own registry: core Numba's cannot inline into CUDA kernels (see _cuda_fold)
    from numba.cuda.extending import register_jitable
except ImportError:  # pragma: no cover - older numba-cuda shares core Numba's pipeline
    from numba.extending import register_jitable

from . import elementwise_ops as ops

#: threads per block (a power of two: the tree reduction halves it)
BLOCK_THREADS = 128

#: at most this many columns per thread per pass (rows up to BLOCK_THREADS * MAX_UNROLL
#: columns stay in registers; longer ones take a second pass over out)
MAX_UNROLL = 24

#: at most this many blocks per launch; a grid-stride loop covers further rows
MAX_BLOCKS = 65535

#: row-batch memory budget for :func:`embalg.operators._apply`: these kernels make no
#: temporaries, and each launch costs ~0.1 ms, so one batch should cover all rows
BATCH_BYTES = 1 << 62

#: arities listed in :data:`PTX_SIGNATURES` per op code (others compile on demand)
_PTX_ARITIES = {ops.IDENTITY: (1,), ops.DIV: (2,), ops.PRODUCT: (2, 3), ops.SUM: (2, 3),
                ops.GEOMEAN_SIGNED: (2, 3), ops.GEOMEAN_AGREE: (2, 3)}

_DTYPES = (np.float32, np.float64)


def _cuda_fold():
    """``(init, step, finish)`` of :mod:`.elementwise_ops`, registered for the CUDA target.

    :mod:`.elementwise_ops` registers its fold with ``numba.extending.register_jitable
    (inline="always")``, which numba-cuda (0.30) cannot compile into a kernel: core-Numba
    IR gets inlined into the CUDA pipeline and typing fails. The kernels therefore call
    twins: new function objects over the very same code objects (no second source) of
    every function the module defines, registered with
    ``numba.cuda.extending.register_jitable``, whose globals point at each other's twins.
    """
    namespace = dict(vars(ops))
    functions = {name: fn for name, fn in vars(ops).items()
                 if isinstance(fn, pytypes.FunctionType) and fn.__module__ == ops.__name__}
    for name, fn in functions.items():
        twin = pytypes.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__,
                                    fn.__closure__)
        twin.__qualname__ = f"{__name__}.{fn.__qualname__}"
        namespace[name] = register_jitable(twin)
    return namespace["init"], namespace["step"], namespace["finish"], namespace["cosine_finish"]


_init, _step, _finish, _cosine_finish = _cuda_fold()

#: changes whenever elementwise_ops.py changes. Numba's on-disk cache checks only the
#: kernel's own file, so each kernel closes over this number, which enters its cache key.
_FOLD_VERSION = int(hashlib.sha256(Path(ops.__file__).read_bytes()).hexdigest()[:12], 16)


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
        half >>= 1


def _rowwise_source(op, block, unroll):
    """The rowwise kernel (plain Python): op code ``op``, ``block`` threads, ``unroll`` columns.

    A thread handles columns ``j = j0 + u * block`` (``u < unroll``) per pass. When
    ``d <= block * unroll`` the whole row stays in registers (``zs``) until its
    norm is known and is written once, scaled; longer rows store ``z`` and
    rescale it in a second pass. In both, the loads of a group of ``unroll``
    columns come before its stores (which may alias the inputs), so they overlap.
    """
    fold_version = _FOLD_VERSION
    span = block * unroll

    def rowwise_kernel(xs, out, weights, eps, normalize, norms):
        if fold_version < 0:  # never true: keeps the fold's version in the cache key
            return
        buf = cuda.shared.array((2, block), np.float64)
        zs = cuda.local.array(unroll, np.float64)
        n, d = out.shape
        K = len(xs)
        t = cuda.threadIdx.x
        in_registers = d <= span
        for i in range(cuda.blockIdx.x, n, cuda.gridDim.x):
            s = 0.0
            chk = 0.0
            for j0 in range(t, d, span):
                for u in range(unroll):
                    j = j0 + u * block
                    z = 0.0
                    if j < d:
                        acc = _init(op)
                        for k in range(K):
                            a = xs[k]
                            v = float(a[i if a.shape[0] > 1 else 0, j])
                            chk += v * 0.0
                            acc = _step(op, acc, v, k, weights, eps)
                        z = _finish(op, acc, K)
                    zs[u] = z
                    s += z * z
                if not in_registers:
                    for u in range(unroll):
                        j = j0 + u * block
                        if j < d:
                            out[i, j] = zs[u]
            buf[0, t] = s
            buf[1, t] = chk
            _block_reduce(buf, t, block)
            nrm = math.sqrt(buf[0, 0])
            if buf[1, 0] != 0.0 or not math.isfinite(nrm):
                nrm = math.nan
            cuda.syncthreads()
            if t == 0:
                norms[i] = nrm
            scale = 1.0 / nrm if normalize and nrm > 0.0 else 1.0
            if in_registers:
                for u in range(unroll):
                    j = t + u * block
                    if j < d:
                        out[i, j] = zs[u] * scale
            elif scale != 1.0:
                for j0 in range(t, d, span):
                    for u in range(unroll):
                        j = j0 + u * block
                        if j < d:
                            zs[u] = float(out[i, j])
                    for u in range(unroll):
                        j = j0 + u * block
                        if j < d:
                            out[i, j] = zs[u] * scale

    return rowwise_kernel


def _cosine_source(block, unroll):
    """The row-wise cosine kernel (plain Python): ``block`` threads, ``unroll`` columns per pass."""
    span = block * unroll

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
            for j0 in range(t, d, span):
                for u in range(unroll):
                    j = j0 + u * block
                    if j < d:
                        a = float(x[rx, j])
                        b = float(y[ry, j])
                        xy += a * b
                        xx += a * a
                        yy += b * b
            buf[0, t] = xy
            buf[1, t] = xx
            buf[2, t] = yy
            _block_reduce(buf, t, block)
            c, nx, ny = _cosine_finish(buf[0, 0], buf[1, 0], buf[2, 0])
            cuda.syncthreads()
            if t == 0:
                out[i] = c
                x_norms[i] = nx
                y_norms[i] = ny

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


def unroll_for(d):
    """Columns per thread per pass for rows of length ``d``: the whole row when it fits."""
    return max(1, min(MAX_UNROLL, -(-d // BLOCK_THREADS)))


_KERNELS: dict = {}


def _rowwise_kernel(op, K, dtype, unroll):
    key = ("rowwise", op, K, np.dtype(dtype).name, BLOCK_THREADS, unroll)
    if key not in _KERNELS:
        src = _rowwise_source(op, BLOCK_THREADS, unroll)
        _KERNELS[key] = cuda.jit(_rowwise_signature(K, dtype), cache=True)(src)
    return _KERNELS[key]


def _cosine_kernel(dtype, unroll):
    key = ("cosine", np.dtype(dtype).name, BLOCK_THREADS, unroll)
    if key not in _KERNELS:
        src = _cosine_source(BLOCK_THREADS, unroll)
        _KERNELS[key] = cuda.jit(_cosine_signature(dtype), cache=True)(src)
    return _KERNELS[key]


#: (kernel Python function, signature) pairs for tests/test_ptx.py (see the module docstring):
#: every operator and arity at the unroll of d = 1536 (the whole row in registers), and the
#: other code paths (one column per pass; rows longer than block * MAX_UNROLL) for one operator
PTX_SIGNATURES = [
    (_rowwise_source(op, BLOCK_THREADS, unroll_for(1536)), _rowwise_signature(K, dt))
    for op, arities in _PTX_ARITIES.items() for K in arities for dt in _DTYPES
] + [
    (_rowwise_source(ops.PRODUCT, BLOCK_THREADS, u), _rowwise_signature(2, dt))
    for u in (1, MAX_UNROLL) for dt in _DTYPES
] + [(_cosine_source(BLOCK_THREADS, u), _cosine_signature(dt)) for u in (1, unroll_for(1536))
     for dt in _DTYPES]


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
    kernel = _rowwise_kernel(ops.OP_CODES[op], len(xs), dtype, unroll_for(out.shape[1]))
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
    kernel = _cosine_kernel(dtype, unroll_for(x.shape[1]))
    kernel[_grid(n), BLOCK_THREADS, stream](d_x, d_y, d_out, d_nx, d_ny)
    copy_back()
    d_nx.copy_to_host(x_norms, stream=stream)
    d_ny.copy_to_host(y_norms, stream=stream)
    stream.synchronize()
    return x_norms, y_norms

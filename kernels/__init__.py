"""embalg.kernels: the performance core.

One module per (kernel family, backend): ``<family>_<backend>.py``, e.g.
``elementwise_numpy`` (the reference, written for clarity), ``elementwise_numba``
(fused CPU kernels), ``elementwise_cuda`` (Numba CUDA kernels). Every backend
module of a family exposes the same function names; :mod:`embalg.backends`
imports them lazily. Kernels never validate: callers pass checked inputs.

Numba's OpenMP worker threads spin after each parallel region by default and
steal the cores from the BLAS call that follows (measured: a 2048^2 tile
reduction 4-5x slower, the next GEMM ~30% slower), so ``OMP_WAIT_POLICY``
defaults to ``PASSIVE`` here, before any kernel module imports Numba. A value
the user set is kept.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

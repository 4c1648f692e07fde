"""embalg.kernels: the performance core.

One module per (kernel family, backend): ``<family>_<backend>.py``, e.g.
``elementwise_numpy`` (the reference, written for clarity), ``elementwise_numba``
(fused CPU kernels), ``elementwise_cuda`` (Numba CUDA kernels). Every backend
module of a family exposes the same function names; :mod:`embalg.backends`
imports them lazily. Kernels never validate: callers pass checked inputs.
"""

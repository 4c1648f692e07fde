"""The CUDA rotation kernel against the float64 NumPy reference.

* Simulator (runs everywhere): ``NUMBA_ENABLE_CUDASIM=1`` must be set before
  ``numba.cuda`` is first imported, so one subprocess runs :data:`_SIM_SCRIPT`:
  the kernel on host (NumPy) arrays and on simulated device arrays, with a small
  block and grid (strided column loop, tree reduction, grid-stride row loop),
  float32 and float64, single/batched/broadcast rotations, in place, NaN rows,
  and the public ``Rotation.apply(backend="cuda")`` including a composition.
  It prints the max errors as JSON; the tests assert on them.
* The sm_90 PTX compile of ``PTX_SIGNATURES`` is covered by tests/test_ptx.py.
* ``@pytest.mark.gpu``: the same comparison on a real GPU (NumPy and CuPy
  arrays); skipped with a reason when no CUDA GPU is present.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

_SIM_SCRIPT = r"""
import json, sys
sys.setswitchinterval(1e-4)
import numpy as np
from numba import cuda
import embalg as ea
from embalg.kernels import rotation_cuda as kc, rotation_numpy as ref

res = {}
rng = np.random.default_rng(0)
for dt in (np.float32, np.float64):
    for (n, m, d) in ((9, 9, 33), (9, 1, 33), (1, 7, 20), (5, 5, 3)):
        v0 = rng.standard_normal((m, d)); v1 = rng.standard_normal((m, d))
        u, w, cm1, s = ref.plane_from_pairs(v0, v1)
        x = rng.standard_normal((n, d)).astype(dt)
        rows = max(n, m)
        want = np.empty((rows, d)); ref.apply_plane(x.astype(np.float64), u, w, cm1, s, want)
        got = np.empty((rows, d), dt)
        bad = kc.apply_plane(x, u.astype(dt), w.astype(dt), cm1, s, got, block=16, max_blocks=3)
        key = f"host {np.dtype(dt).name} n{n} m{m} d{d}"
        res[key] = [float(np.abs(got - want).max()), bad]
        # device arrays, computed in place on the device
        d_x = cuda.to_device(np.ascontiguousarray(np.broadcast_to(x, (rows, d))))
        bad = kc.apply_plane(d_x, cuda.to_device(u.astype(dt)), cuda.to_device(w.astype(dt)),
                             cm1, s, d_x, block=16, max_blocks=3)
        res["device in place " + key] = [float(np.abs(d_x.copy_to_host() - want).max()), bad]
# NaN / inf rows are reported, first bad row
u, w, cm1, s = ref.plane_from_pairs(rng.standard_normal((1, 12)), rng.standard_normal((1, 12)))
x = rng.standard_normal((6, 12)); x[3, 5] = np.nan; x[4, 0] = np.inf
res["nan row"] = kc.apply_plane(x, u, w, cm1, s, np.empty_like(x), block=16, max_blocks=2)
# public API on the cuda backend, against the numpy backend
v0, v1, x = rng.standard_normal((3, 8, 40))
r = ea.rotation(v0, v1, backend="cuda")
r2 = ea.rotation(v1[0], v0[3]) * r
res["api batch"] = float(np.abs(r.apply(x) - r.apply(x, backend="numpy")).max())
res["api composite"] = float(np.abs(r2.apply(x, backend="cuda") - r2.apply(x, backend="numpy")).max())
res["api f32 dtype"] = str(r.apply(x.astype(np.float32)).dtype)
a = rng.standard_normal(40)
res["api antipodal"] = float(np.abs(ea.rotation(a, -a, backend="cuda").apply(a) + a).max())
try:
    xn = x.copy(); xn[3, 7] = np.nan
    r.apply(xn, backend="cuda")
    res["api nan"] = "no error"
except ValueError as exc:
    res["api nan"] = str(exc)
print(json.dumps(res))
"""


@pytest.fixture(scope="module")
def sim():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-c", _SIM_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_simulator_kernel_matches_reference(sim):
    keys = [k for k in sim if k.startswith(("host", "device"))]
    assert len(keys) == 16
    for k in keys:
        err, bad = sim[k]
        tol = 2e-6 if "float32" in k else 1e-12
        assert err < tol * 10, (k, err)
        assert bad == -1, k


def test_simulator_reports_first_nonfinite_row(sim):
    assert sim["nan row"] == 3


def test_simulator_public_api(sim):
    assert sim["api batch"] < 1e-12
    assert sim["api composite"] < 1e-12
    assert sim["api f32 dtype"] == "float32"
    assert sim["api antipodal"] < 1e-12
    assert "x contains NaN or inf (first at row 3)" in sim["api nan"]


def _gpu_available():
    try:
        from numba import cuda

        return not cuda.config.ENABLE_CUDASIM and cuda.is_available()
    except Exception:
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_available(), reason="no CUDA GPU")
def test_gpu_matches_reference():
    import embalg as ea

    rng = np.random.default_rng(1)
    v0, v1 = rng.standard_normal((2, 1000, 1536))
    x = rng.standard_normal((1000, 1536)).astype(np.float32)
    r = ea.rotation(v0, v1)
    want = r.apply(x.astype(np.float64), backend="numpy")
    np.testing.assert_allclose(r.apply(x, backend="cuda"), want, atol=2e-5)
    try:
        import cupy as cp
    except ImportError:
        return
    got = r.apply(cp.asarray(x))
    assert isinstance(got, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(got), want, atol=2e-5)

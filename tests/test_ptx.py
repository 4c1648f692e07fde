"""Every Numba CUDA kernel in ``kernels/*_cuda.py`` compiles to PTX for ``sm_90`` (no GPU needed).

Convention (see :mod:`embalg.kernels.elementwise_cuda`): each ``*_cuda`` module
exposes ``PTX_SIGNATURES``, a list of ``(kernel Python function, Numba
signature)`` covering float32 and float64 for every kernel it launches. Each
module is compiled in a fresh subprocess with ``NUMBA_ENABLE_CUDASIM=0``, so the
check works whether or not this pytest process runs the CUDA simulator.

numba-cuda (0.30) asks the driver for the current device's compute capability
whenever a kernel calls a device function (``register_jitable`` included),
even inside ``compile_ptx``; on a machine without a GPU that raises
``CudaSupportError``. The subprocess therefore answers that one question with
``(9, 0)``, the capability the PTX is compiled for, which is what an H200
would answer. Nothing else is stubbed: typing, lowering and NVVM run for real.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CUDA_MODULES = sorted(p.stem for p in (ROOT / "kernels").glob("*_cuda.py"))

#: the target: compute capability 9.0 (H100/H200)
CC = (9, 0)

_COMPILE_SCRIPT = r"""
import importlib, json, sys, types as pytypes
from unittest import mock
from numba import cuda
import numba.cuda.dispatcher as dispatcher

cc = tuple(json.loads(sys.argv[2]))
# what fastmath=True emits; libdevice's precise pow seeds with rcp.approx.ftz.f64, which is fine
FASTMATH_MARKS = ("div.approx", "div.full", "sqrt.approx", ".ftz.f32")
module = importlib.import_module("embalg.kernels." + sys.argv[1])
entries = getattr(module, "PTX_SIGNATURES", None)
results = []
device = lambda: pytypes.SimpleNamespace(compute_capability=cc)


def first_array(args):
    # the data dtype: the dtype of the first array argument (looking into tuples)
    for a in args:
        if hasattr(a, "dtype") and hasattr(a, "ndim"):
            return str(a.dtype)
        found = first_array(getattr(a, "types", ()) or ())
        if found:
            return found
    return None


with mock.patch.object(dispatcher, "get_current_device", device):
    for pyfunc, sig in entries or []:
        data = first_array(sig.args)
        rec = {"kernel": pyfunc.__qualname__, "signature": str(sig), "data": data}
        try:
            ptx, _ = cuda.compile_ptx(pyfunc, sig, cc=cc)
            rec["target"] = [l.strip() for l in ptx.splitlines() if l.startswith(".target")]
            rec["entries"] = ptx.count(".entry ")
            rec["fastmath"] = sum(ptx.count(s) for s in FASTMATH_MARKS)
        except Exception as exc:
            rec["error"] = f"{type(exc).__name__}: {str(exc)[:2000]}"
        results.append(rec)
print(json.dumps({"has_registry": entries is not None, "results": results}))
"""


def _compile_module(name):
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    proc = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT, name, json.dumps(CC)],
                          env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, f"compiling {name} failed:\n{proc.stderr[-5000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_cuda_modules_are_discovered():
    assert "elementwise_cuda" in CUDA_MODULES


@pytest.mark.parametrize("name", CUDA_MODULES)
def test_every_kernel_compiles_to_sm90_ptx(name):
    report = _compile_module(name)
    assert report["has_registry"], f"kernels/{name}.py has no PTX_SIGNATURES list"
    results = report["results"]
    assert results, f"kernels/{name}.py: PTX_SIGNATURES is empty"
    failed = [f"{r['kernel']} {r['signature']}: {r['error']}" for r in results if "error" in r]
    assert not failed, "\n".join(failed)
    for r in results:
        assert r["target"] == [f".target sm_{CC[0]}{CC[1]}"], (r["kernel"], r["target"])
        assert r["entries"] == 1, (r["kernel"], r["entries"])
        # no fast-math: no approximate division or sqrt, no float32 flush-to-zero
        assert r["fastmath"] == 0, (r["kernel"], r["signature"])
    # every kernel is registered for float32 and float64 data (its first array argument)
    by_kernel = {}
    for r in results:
        by_kernel.setdefault(r["kernel"], set()).add(r["data"])
    missing = {k: sorted({"float32", "float64"} - v) for k, v in by_kernel.items()
               if not {"float32", "float64"} <= v}
    assert not missing, f"kernels without a float32 or float64 signature: {missing}"

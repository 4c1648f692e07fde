#!/usr/bin/env bash
# One prepared check of the "cuda" element-wise backend on a real GPU (under 5 minutes on an H200).
#
#   bash bench/gpu_check.sh            # from anywhere; OUT=/some/dir keeps logs and results
#
# Pip-free: runs from the source tree (PYTHONPATH=<repo root>; embalg maps kernels/ to
# embalg.kernels itself) with the machine's own python3, numba-cuda and CuPy. Steps:
#   1. nvidia-smi, and what embalg.available_backends() says about "cuda";
#   2. the CUDA tests on the real GPU (CuPy in/out and NumPy in/out, plus the simulator
#      run); EMBALG_REQUIRE_GPU=1 makes a missing GPU or CuPy fail instead of skip;
#   3. the GPU benchmark table (bench/bench_cuda.py), as JSON in $OUT/cuda_bench.json.
# Writes $OUT/gpu_check.log, $OUT/cuda_tests.xml and $OUT/cuda_bench.json when OUT is set.
# Exit status: 0 when every step passed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export NUMBA_ENABLE_CUDASIM=0
export EMBALG_REQUIRE_GPU=1
OUTDIR=${OUT:-}
if [ -n "$OUTDIR" ]; then
    mkdir -p "$OUTDIR"
    exec > >(tee "$OUTDIR/gpu_check.log") 2>&1
fi
status=0
step() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }

step "nvidia-smi"
nvidia-smi || { echo "nvidia-smi failed: no usable GPU here"; exit 1; }
"$PY" -c "import embalg; print('cuda backend:', embalg.available_backends()['cuda'])" || status=1

step "tests/test_cuda_elementwise.py on the GPU"
timeout 210 "$PY" -m pytest tests/test_cuda_elementwise.py -x -q -rs -p no:cacheprovider \
    ${OUTDIR:+--junitxml "$OUTDIR/cuda_tests.xml"} || status=1

step "bench/run.py --only cuda"
timeout 150 "$PY" bench/run.py --only cuda ${OUTDIR:+--json "$OUTDIR/cuda_bench.json"} || status=1

step "done: status $status"
exit $status

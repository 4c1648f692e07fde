"""embalg: algebra on text-embedding vectors.

Importing :mod:`embalg` is light: NumPy only. Numba, CUDA libraries, torch and
the OpenAI client are imported the first time a function that needs them runs.
Public names are resolved lazily through :data:`_LAZY` (PEP 562).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

__version__ = "0.1.0"


def _map_source_kernels() -> None:
    """Make ``embalg.kernels`` importable from a source checkout.

    Installed (wheel or editable), setuptools' ``package-dir`` maps the top-level
    ``kernels/`` folder to ``embalg.kernels``. When the checkout itself is on
    ``sys.path`` (``python -c`` in the repository root) this package is found
    first and has no ``kernels`` folder inside; map it here the same way, so no
    module named ``kernels`` is ever importable at top level.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    if "embalg.kernels" in sys.modules or os.path.isdir(os.path.join(here, "kernels")):
        return
    src = os.path.join(os.path.dirname(here), "kernels")
    init = os.path.join(src, "__init__.py")
    if os.path.isfile(init):
        spec = importlib.util.spec_from_file_location("embalg.kernels", init,
                                                      submodule_search_locations=[src])
        module = importlib.util.module_from_spec(spec)
        sys.modules["embalg.kernels"] = module
        spec.loader.exec_module(module)


_map_source_kernels()

#: public name -> module that defines it (imported on first attribute access)
_LAZY = {
    # operator core
    "normalize": "embalg.operators",
    "hadamard": "embalg.operators",
    "hadamard_div": "embalg.operators",
    "geomean": "embalg.operators",
    "nsum": "embalg.operators",
    "cosine": "embalg.operators",
    "combine": "embalg.operators",
    "OPERATORS": "embalg.operators",
    "properties": "embalg.measure_properties",
    "PropertyReport": "embalg.measure_properties",
    "available_backends": "embalg.backends",
    # all-pairs cosine
    "cosine_matrix": "embalg.pairwise",
    "pairwise_stats": "embalg.pairwise",
    "PairwiseStats": "embalg.pairwise",
    # embedding sources and vector files
    "embed": "embalg.sources",
    "random_strings": "embalg.sources.random_strings",
    "load_vectors": "embalg.io",
    "save_vectors": "embalg.io",
    # rotations and alignment
    "rotation": "embalg.plane_rotation",
    "Rotation": "embalg.plane_rotation",
    "procrustes": "embalg.alignment",
    "linear_map": "embalg.alignment",
    "AlignmentMap": "embalg.alignment",
    "RankWarning": "embalg.alignment",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'embalg' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__

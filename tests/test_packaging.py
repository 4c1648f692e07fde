"""Packaging: kernels/ installs as embalg.kernels (wheel and editable), import stays light."""
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_py(code, cwd, env=None):
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


#: (modules imported, heavy modules that must not be loaded by that import)
LIGHT_IMPORTS = {
    "package": ("embalg; embalg.__version__",
                ("numba", "cupy", "torch", "openai", "sentence_transformers", "pyarrow",
                 "matplotlib", "scipy", "numba.cuda")),
    "sources": ("embalg, embalg.sources, embalg.io, embalg.sources.texts, "
                "embalg.sources.random_strings, embalg.commands.embed",
                ("torch", "sentence_transformers", "pyarrow", "openai")),
    "studies and CLI": ("embalg.studies.cone, embalg.studies.compose, embalg.studies.props, "
                        "embalg.studies.isotropy, embalg.studies.inputs, embalg.cli; "
                        "embalg.cli.build_parser()",
                        ("torch", "sentence_transformers", "pyarrow", "openai", "matplotlib",
                         "numba")),
}


@pytest.mark.parametrize("case", list(LIGHT_IMPORTS))
def test_import_is_light(case, tmp_path):
    """Heavy libraries load on first use, never on import (checked in a fresh process)."""
    imports, heavy = LIGHT_IMPORTS[case]
    code = (f"import sys, json, {imports}; "
            f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))")
    assert json.loads(run_py(code, tmp_path)) == []


def test_installed_package_maps_kernels(tmp_path):
    """Whatever install is active (editable on CI), embalg.kernels comes from the kernels/ folder."""
    code = ("import importlib.util, embalg.kernels, embalg.kernels.elementwise_ops as k; "
            "s = importlib.util.find_spec('kernels'); "
            "print(k.__file__); print(s.origin if s else None)")
    out = run_py(code, tmp_path).split("\n")
    assert Path(out[0]).parent.name == "kernels"
    # embalg installs no top-level module named kernels (another project's package may own that name)
    assert not out[1].startswith(str(ROOT / "kernels"))


@pytest.mark.slow
def test_wheel_contains_embalg_kernels_and_no_top_level_kernels(tmp_path):
    wheel_dir = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheel_dir), str(ROOT)], check=True, timeout=600, capture_output=True)
    (wheel,) = wheel_dir.glob("embalg-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "embalg/kernels/elementwise_numba.py" in names
    assert "embalg/kernels/__init__.py" in names
    assert not any(n.startswith("kernels/") for n in names)
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = "import embalg, embalg.kernels.elementwise_ops as k; print(embalg.__file__); print(k.__file__)"
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    out = run_py(code, tmp_path, env=env).split("\n")
    assert out[0].startswith(str(target)) and out[1].startswith(str(target / "embalg" / "kernels"))

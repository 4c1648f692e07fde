"""Every docstring example in embalg runs (an example whose output was never run is worse than none)."""
import doctest
import importlib
import pkgutil

import pytest

import embalg

MODULES = sorted({m.name for m in pkgutil.walk_packages(embalg.__path__, "embalg.") if not m.name.endswith("__main__")} |
                 {f"embalg.kernels.{m.name}" for m in pkgutil.iter_modules(importlib.import_module("embalg.kernels").__path__)})
# kernel modules that need a GPU toolchain to import are still imported (numba-cuda is installed for tests)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    for test in finder.find(module, name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_there_are_examples():
    finder = doctest.DocTestFinder(exclude_empty=True)
    n = sum(len(t.examples) for t in finder.find(importlib.import_module("embalg.operators")))
    assert n >= 8

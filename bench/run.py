"""Benchmark runner: ``python bench/run.py [--quick] [--only NAME ...]``.

Runs every ``bench/bench_*.py`` module's ``rows(quick)`` function and prints
one Markdown table per module (ratios against the naive NumPy way, the peer
library and the same-run hardware ceiling). ``--json PATH`` also writes the
rows. The pytest-benchmark suite is ``pytest bench/``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import format_table  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    p.add_argument("--only", nargs="*", default=None, help="module names, e.g. elementwise pairwise")
    p.add_argument("--json", default=None, help="also write all rows to this JSON file")
    args = p.parse_args(argv)
    import numpy as np

    print(f"# embalg benchmarks ({platform.machine()}, python {platform.python_version()}, "
          f"numpy {np.__version__}, quick={args.quick})\n")
    results = {}
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem[len("bench_"):]
        if args.only and name not in args.only:
            continue
        spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not hasattr(module, "rows"):
            continue
        rows = module.rows(quick=args.quick)
        results[name] = rows
        print(f"## {name}\n")
        print(format_table(rows))
        print(flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``embalg info``: version, backends (and why one is missing), threads, BLAS."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("info", help="version, available backends and why not, threads, BLAS")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of text")


def collect() -> dict:
    import os
    import platform

    import numpy as np

    from .. import __version__
    from ..backends import available_backends

    info = {
        "embalg": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "backends": {k: {"available": ok, "detail": why} for k, (ok, why) in available_backends().items()},
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [{k: d.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
                        for d in threadpool_info() if d.get("user_api") == "blas"]
    except ImportError:
        cfg = np.show_config(mode="dicts")
        info["blas"] = [cfg.get("Build Dependencies", {}).get("blas", {})]
    try:
        import cupy  # noqa: F401

        info["cupy"] = cupy.__version__
    except Exception as exc:
        info["cupy"] = f"not available ({type(exc).__name__})"
    return info


def run(args) -> int:
    import json

    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"embalg {info['embalg']} on Python {info['python']} ({info['platform']})")
    print(f"numpy {info['numpy']}, {info['cpu_count']} CPUs, cupy: {info['cupy']}")
    print("backends:")
    for name, b in info["backends"].items():
        print(f"  {name:6s} {'yes' if b['available'] else 'no ':3s}  {b['detail']}")
    for b in info["blas"]:
        print("BLAS: " + ", ".join(f"{k}={v}" for k, v in b.items()))
    return 0

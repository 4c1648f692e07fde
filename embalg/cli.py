"""The ``embalg`` command line.

Each subcommand lives in its own module ``embalg.commands.<name>`` exposing
``register(subparsers)`` (adds its parser, with ``help=``) and ``run(args) -> int``.
Subcommands are discovered, so adding a module adds a command; a command's
heavy imports happen inside its ``run``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from . import __version__, commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embalg",
        description="Algebra on text-embedding vectors: operators, all-pairs cosine "
                    "statistics, rotations and the studies of the embedding-operators thread.")
    parser.add_argument("--version", action="version", version=f"embalg {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (-v info, -vv debug); API keys are never logged")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"embalg.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(f"embalg.commands.{args.command.replace('-', '_')}")
    try:
        return int(module.run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, PermissionError) as exc:
        print(f"embalg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"embalg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

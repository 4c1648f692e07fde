"""CLI subcommands, one module each: ``register(subparsers)`` and ``run(args)``."""

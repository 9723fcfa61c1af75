"""The ``instantrestore`` command line: one sub-command module per concern.

Each module in ``COMMAND_MODULES`` exposes ``register(subparsers)``, which adds its
sub-commands and sets ``func`` (called with the parsed args, returning an exit code).
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES: tuple[str, ...] = (
    "instantrestore.cli.restore",
    "instantrestore.cli.official",
    "instantrestore.cli.data",
    "instantrestore.cli.faces",
    "instantrestore.cli.evaluate",
    "instantrestore.cli.idnet",
    "instantrestore.cli.train",
    "instantrestore.cli.bench",
    "instantrestore.cli.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="instantrestore",
        description="Reference-based face restoration in one forward pass (InstantRestore).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"instantrestore {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

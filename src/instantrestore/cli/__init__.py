"""The ``instantrestore`` command line: one sub-command module per concern.

Each module in ``COMMAND_MODULES`` exposes ``register(subparsers)``, which adds its
sub-commands and sets ``func`` (called with the parsed args, returning an exit code).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
import warnings

COMMAND_MODULES: tuple[str, ...] = (
    "instantrestore.cli.restore",
    "instantrestore.cli.official",
    "instantrestore.cli.data",
    "instantrestore.cli.prepare",
    "instantrestore.cli.faces",
    "instantrestore.cli.evaluate",
    "instantrestore.cli.idnet",
    "instantrestore.cli.train",
    "instantrestore.cli.bench",
    "instantrestore.cli.demo",
    "instantrestore.cli.attention",
    "instantrestore.cli.ui",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="instantrestore",
        description="Reference-based face restoration in one forward pass (InstantRestore).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"instantrestore {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command. Errors become one line on stderr, never a traceback (set
    INSTANTRESTORE_DEBUG=1 to see it): exit 2 for bad input, 1 for an unexpected failure, 130
    for Ctrl-C (also while starting: outputs already written are complete; re-running resumes).
    Python warnings print as one ``warning: ...`` line, without source lines."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _run(argv)
    except KeyboardInterrupt:  # while the commands are imported, before any output
        print("\ninstantrestore: interrupted while starting; nothing was written", file=sys.stderr)
        return 130


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of the CLI: the message alone (the debug switch adds where it came from)."""
    where = f" ({category.__name__} at {filename}:{lineno})" if os.environ.get("INSTANTRESTORE_DEBUG") else ""
    text = str(message).strip()
    print(f"warning: {text[len('warning: '):] if text.startswith('warning: ') else text}{where}",
          file=file or sys.stderr)


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    name = f"instantrestore {args.command}"
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted; every output already written is complete, run the same command "
              "again to resume", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
        _debug_traceback()
        print(f"{name}: error: {_first_lines(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # permissions, a full disk, the network for a hub id
        _debug_traceback()
        print(f"{name}: error: {_first_lines(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the last line of defence against a traceback
        _debug_traceback()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"{name}: unexpected error: {type(exc).__name__}: {first} "
              "(set INSTANTRESTORE_DEBUG=1 to see the traceback, and please report it)", file=sys.stderr)
        return 1


def _first_lines(exc: BaseException) -> str:
    """The message of an error as one line (a library's multi-line text joined with '; ')."""
    return "; ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())


def _debug_traceback() -> None:
    if os.environ.get("INSTANTRESTORE_DEBUG"):
        traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main())

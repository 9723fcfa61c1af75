"""argparse ``type=`` checks shared by the sub-commands: a bad number is an argparse error (exit 2,
the flag and the allowed range named) before anything is loaded or written."""
from __future__ import annotations

import argparse
from typing import Callable

MAX_PORT = 65535


def at_least(minimum: int, meaning: str = "") -> Callable[[str], int]:
    """An int ``type=`` refusing values under ``minimum`` (``meaning``: what the lowest value does)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            note = f" ({minimum}: {meaning})" if meaning else ""
            raise argparse.ArgumentTypeError(f"must be at least {minimum}{note}, got {value}")
        return value
    parse.__name__ = "count"  # argparse names the type in its 'invalid count value' line
    return parse


def port(text: str) -> int:
    """A TCP port ``type=``: 1-65535 (0 would mean any free port, which a user cannot then find)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 1-{MAX_PORT}, got {text!r}") from None
    if not 1 <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"a port is a number 1-{MAX_PORT}, got {value}")
    return value

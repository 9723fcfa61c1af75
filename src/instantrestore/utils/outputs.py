"""Files a command writes one at a time (``--out FILE``, ``--save-cache``, the files of a report
folder): each may replace a file the same command wrote before (a re-run), never a file of the
user's without ``--overwrite``, and never an input, even with it.

    claim_outputs([out], owned=recorded_by("attention"), command="attention", overwrite=args.overwrite,
                  inputs=[face, *references])

How a command recognises its own files (``Owned``): images record a provenance with its name
(``recorded_by``; ``save_image``'s text chunk or comment), JSON reports hold the keys it writes
(``json_with``), anything else as the command says (a reference cache: its format in the metadata).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

from .images import PROVENANCE_KEY, read_recorded_settings

Owned = Callable[[Path], bool]  # does this existing file look like one the command wrote?


def claim_outputs(paths: Sequence[Path], owned: Owned | Sequence[Owned], command: str, overwrite: bool = False,
                  inputs: Sequence[Path] = ()) -> None:
    """Check, before anything is written, that every output of ``paths`` may be written: ValueError
    for an output that is an input (whatever ``overwrite`` says), IsADirectoryError for one that is
    a folder, FileExistsError naming the existing files that ``owned`` (one check for all, or one
    per path) does not recognise as ``command``'s, unless ``overwrite``."""
    checks = list(owned) if isinstance(owned, (list, tuple)) else [owned] * len(paths)
    given = {Path(p).resolve() for p in inputs}
    for path in paths:
        if Path(path).resolve() in given:
            raise ValueError(f"{path} is also an input of {command}; refusing to overwrite it (choose another output)")
        if Path(path).is_dir():
            raise IsADirectoryError(f"{path} is a folder; {command} writes a file there: choose a file name")
    foreign = [str(p) for p, check in zip(paths, checks, strict=True)
               if Path(p).is_file() and not overwrite and not check(Path(p))]
    if foreign:
        raise FileExistsError(f"{', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}: already there and not "
                              f"written by {command}; nothing was written. Pass --overwrite to replace "
                              f"{'it' if len(foreign) == 1 else 'them'}, or choose another output")


def recorded_by(command: str) -> Owned:
    """An image whose recorded provenance (``save_image``) names ``command``."""
    def owned(path: Path) -> bool:
        recorded = read_recorded_settings(path)
        return recorded is not None and recorded.get("command") == command
    return owned


def json_with(*keys: str) -> Owned:
    """A JSON object that holds every one of ``keys`` (the report a command writes)."""
    def owned(path: Path) -> bool:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and all(key in data for key in keys)
    return owned


def starts_with(prefix: str) -> Owned:
    """A text file that begins with ``prefix`` (a table or CSV header the command writes)."""
    def owned(path: Path) -> bool:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read(len(prefix)) == prefix
        except (OSError, ValueError):
            return False
    return owned


def png_with_provenance(data: bytes, provenance: str) -> bytes:
    """PNG file bytes with ``provenance`` (ASCII text) added as the text chunk ``save_image`` writes,
    right after the header: the pixels' encoding is left as it is."""
    import zlib

    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not PNG data")
    body = PROVENANCE_KEY.encode("latin-1") + b"\0" + provenance.encode("ascii")
    chunk = len(body).to_bytes(4, "big") + b"tEXt" + body + zlib.crc32(b"tEXt" + body).to_bytes(4, "big")
    end = 8 + 8 + int.from_bytes(data[8:12], "big") + 4  # signature, IHDR's length + type, data, crc
    return data[:end] + chunk + data[end:]

"""Files a command writes one at a time (``--out FILE``, ``--save-cache``, the files of a report
folder): each may replace a file the same command wrote before (a re-run), never a file of the
user's without ``--overwrite``, and never an input, even with it.

    claim_outputs([out], owned=recorded_by("attention"), command="attention", overwrite=args.overwrite,
                  inputs=[face, *references])

How a command recognises its own files (``Owned``): images record a provenance with its name
(``recorded_by``; ``save_image``'s text chunk or comment), JSON reports hold the keys it writes
(``json_with``), anything else as the command says (a reference cache: its format in the metadata).

Also here, below the layers that write (``data/`` uses them too): the resume verdict of one output
(``classify``: TODO, DONE, OTHER, FOREIGN; ``pipeline.folder_jobs`` builds its jobs on it) and
``FolderRecord``, the record of a folder whose files must stay byte for byte as they were always
written (no provenance in them: ``synth``, ``make-testset``).
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Callable, Mapping, Sequence

from PIL import Image

from .files import atomic_write_bytes, atomic_write_text
from .images import PROVENANCE_KEY, read_recorded_settings

TODO, DONE, OTHER, FOREIGN = "todo", "done", "other", "foreign"

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


def as_recorded(made: dict) -> dict:
    """``made`` as it reads back from an output (through JSON: tuples become lists)."""
    return json.loads(json.dumps(made))


def classify(path: Path, made: dict, overwrite: bool = False, complete: bool = True,
             read: Callable[[Path], dict | None] = read_recorded_settings) -> str:
    """What a job does with the output ``path`` of an input it would make with ``made``: ``TODO``
    (absent, ``overwrite``, or made alike but ``complete`` is False: the job's other files for it
    are missing), ``DONE``, ``OTHER`` (records another provenance) or ``FOREIGN`` (records none).
    ``read``: how the recorded provenance is read (default: from the image, ``save_image``'s)."""
    if overwrite or not path.exists():
        return TODO
    recorded = read(path)
    if recorded is None:
        return FOREIGN
    if recorded != as_recorded(made):
        return OTHER
    return DONE if complete else TODO


Reader = Callable[[Path], "dict | None"]  # an output file -> the provenance it records (None: none)


def classify_files(files: Sequence[tuple[Path, Reader]], made: dict, overwrite: bool = False
                   ) -> tuple[str, list[str]]:
    """The status of an item whose job writes every one of ``files`` (path, how its provenance is
    read), and the names of the files that decide it: ``FOREIGN`` when any file there records no
    provenance (the user's: nothing of the item is written), else ``OTHER`` when any records
    another, else ``DONE`` when all are there made alike, else ``TODO`` (some are missing)."""
    if overwrite:
        return TODO, []
    status = {path: classify(path, made, read=read) for path, read in files}
    for verdict in (FOREIGN, OTHER):
        names = [path.name for path, found in status.items() if found == verdict]
        if names:
            return verdict, names
    return (DONE if all(found == DONE for found in status.values()) else TODO), []


RECORD_NAME = ".instantrestore.json"  # a FolderRecord's file, hidden: image listings skip it


def png_bytes(image: Image.Image | object) -> bytes:
    """The bytes ``save_image`` writes for ``image`` (a PIL image or a uint8 array) at a ``.png``
    path with no provenance."""
    if not isinstance(image, Image.Image):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class FolderRecord:
    """What ``command`` wrote in ``folder``, kept beside the files in ``folder/.instantrestore.json``:
    each file's sha256 and the provenance (a JSON dict) that made it. The files themselves stay as
    they always were; a file counts as the command's only while its bytes are those recorded.

    A record is written before the files it names (``write``), so a run killed in between leaves a
    file missing (made again) or one the record does not match (kept as the user's), never a file
    of the user's taken for the command's. A ``RECORD_NAME`` file that is not the command's record
    (``foreign``) keeps every file of the folder unless ``overwrite``.
    """

    def __init__(self, folder: str | Path, command: str):
        self.folder, self.command = Path(folder), command
        self.path = self.folder / RECORD_NAME
        self.files: dict[str, dict] = {}
        self.foreign = False
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = None
            if isinstance(data, dict) and data.get("command") == command and isinstance(data.get("files"), dict):
                self.files = data["files"]
            else:
                self.foreign = True

    def read(self, path: Path) -> dict | None:
        """A ``Reader``: the provenance recorded for ``path`` (in ``folder``) while its bytes are
        the ones recorded, else None."""
        entry = self.files.get(Path(path).relative_to(self.folder).as_posix())
        if not isinstance(entry, dict) or not Path(path).is_file():
            return None
        return entry.get("made") if hashlib.sha256(Path(path).read_bytes()).hexdigest() == entry.get("sha256") else None

    def status(self, names: Sequence[str], made: dict, overwrite: bool = False) -> tuple[str, list[str]]:
        """``classify_files`` of the files ``names`` (relative to ``folder``) that one item writes;
        a foreign record file decides it (``FOREIGN``, naming it)."""
        if self.foreign and not overwrite:
            return FOREIGN, [RECORD_NAME]
        verdict, found = classify_files([(self.folder / name, self.read) for name in names], made, overwrite)
        return verdict, [next(name for name in names if Path(name).name == base) for base in found]

    def write(self, files: Mapping[str, bytes | str], made: dict) -> None:
        """Record then write ``files`` ({name relative to ``folder``: bytes or text}), in order."""
        data = {name: content.encode("utf-8") if isinstance(content, str) else content
                for name, content in files.items()}
        for name, content in data.items():
            self.files[name] = {"sha256": hashlib.sha256(content).hexdigest(), "made": as_recorded(made)}
        atomic_write_text(self.path, json.dumps({"command": self.command, "files": self.files}, sort_keys=True))
        self.foreign = False
        for name, content in data.items():
            atomic_write_bytes(self.folder / name, content)

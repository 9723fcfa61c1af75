"""The people and files of an album folder (``album/<person>/*.jpg``), listed and hashed once.

A whole-photo job asks, for every face, who the persons are and whether each one's reference
files changed; listing the folders and checking the files each time would cost one walk of the
album per person per face. An :class:`AlbumFolder` lists and hashes once and answers from memory
until :meth:`AlbumFolder.refresh` (a long-lived front-end calls it when the album may have changed).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..generator.fingerprints import file_digest
from ..utils.files import list_images

KEY_CHARS = 16


def short_digest(text: str) -> str:
    """The 16-hex-digit sha256 of ``text``: the keys album cache files are named by."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_CHARS]


class AlbumFolder:
    """The persons of ``root`` (one sub-folder each) and their reference files, with content keys.

    key_settings: what, besides the files, a person's prepared references depend on (crop size,
    embedder, detector settings); it goes into every :meth:`faces_key`. The listing, the files and
    the keys are computed on first use and kept until :meth:`refresh`.
    """

    def __init__(self, root: str | os.PathLike, key_settings: list[Any]):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: album folder not found (expected album/<person>/*.jpg)")
        self._key_settings = list(key_settings)
        self._digests: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256, kept across refreshes
        self.refresh()

    def refresh(self) -> None:
        """Forget the listing and the keys: the next question lists the folders again and checks
        every file (a file of unchanged size and modification time is not read again)."""
        self._persons: list[str] | None = None
        self._files: dict[str, list[Path]] = {}
        self._faces_keys: dict[str, str] = {}

    @property
    def persons(self) -> list[str]:
        """Sub-folders that hold at least one image, by name (hidden folders, e.g. the cache, excluded)."""
        if self._persons is None:
            self._persons = sorted(p.name for p in self.root.iterdir()
                                   if p.is_dir() and not p.name.startswith(".") and list_images(p))
        return list(self._persons)

    def files(self, person: str) -> list[Path]:
        """The person's reference photos, sorted by name. Raises ValueError naming the persons when
        ``person`` is none of them."""
        if person not in self._files:
            folder = self.root / person
            files = list_images(folder) if not person.startswith(".") and folder.is_dir() else []
            if not files:
                raise ValueError(f"{person!r} is not a person of the album {self.root} "
                                 f"(persons: {', '.join(self.persons)})")
            self._files[person] = files
        return list(self._files[person])

    def _file_digest(self, path: Path) -> str:
        stat = path.stat()
        memo = (str(path), stat.st_size, stat.st_mtime_ns)  # contents are hashed again only when the file changed
        if memo not in self._digests:
            self._digests[memo] = file_digest(path)
        return self._digests[memo]

    def faces_key(self, person: str) -> str:
        """Hash of what the person's aligned references depend on: the files' names and contents and the settings."""
        if person not in self._faces_keys:
            files = [(p.name, self._file_digest(p)) for p in self.files(person)]
            self._faces_keys[person] = short_digest(json.dumps([*self._key_settings, files]))
        return self._faces_keys[person]

    def same_photos(self) -> list[list[str]]:
        """Groups of ``person/file`` names with identical contents under different persons (the same
        photo filed as two people: a face that looks like it cannot tell them apart)."""
        owners: dict[str, list[str]] = {}
        for person in self.persons:
            for path in self.files(person):
                owners.setdefault(self._file_digest(path), []).append(f"{person}/{path.name}")
        return [names for names in owners.values() if len({name.split("/", 1)[0] for name in names}) > 1]

    def shared_photo_lines(self, person: str | None = None) -> list[str]:
        """One line per photo filed under several persons (only those involving ``person``, if given)."""
        groups = [g for g in self.same_photos() if person is None or any(n.split("/", 1)[0] == person for n in g)]
        return [f"{' and '.join(group)} are the same photo under different persons: a face like it may be "
                "matched to either; remove it from the wrong person's folder" for group in groups]

    def key(self) -> str:
        """Hash of the whole album as matching and restoring see it: every person's ``faces_key``.
        Outputs made with an album record it; it changes when any person's files or settings change."""
        return short_digest(json.dumps([(person, self.faces_key(person)) for person in self.persons]))

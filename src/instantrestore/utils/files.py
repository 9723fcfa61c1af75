"""File-system helpers shared by every command: atomic writes and image discovery.

Outputs are written to a temporary file in the destination folder and renamed into
place, so a killed job never leaves a half-written file and never touches an input. The
temporary's name carries the writer's process id (``.NAME.irtmp-PID-XXXX.SUFFIX``), so a job
that starts removes the ones a killed job left (``clean_stale_temporaries``) and never a live one.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

TMP_MARK = "irtmp"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jfif", ".webp", ".bmp", ".tif", ".tiff")


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; rename it onto ``dest`` only if the block succeeds.

    A failure to write (permissions, a full disk) is an OSError naming ``dest``, never the temporary."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.{TMP_MARK}-{os.getpid()}-", suffix=dest.suffix,
                                   dir=dest.parent)
    except OSError as exc:
        raise _write_error(dest, exc) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        try:
            yield tmp_path
            # mkstemp creates 0600, and writers such as safetensors' save_file recreate the file; give
            # the result the mode a plain open() would (0666 minus the umask) just before the rename.
            os.chmod(tmp_path, 0o666 & ~umask)
            os.replace(tmp_path, dest)
        except OSError as exc:
            raise _write_error(dest, exc) from exc
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _write_error(dest: Path, exc: OSError) -> OSError:
    """``exc`` as an OSError of the same kind that names ``dest`` (not a temporary) and says what to do."""
    message = (f"cannot write {dest}: {exc.strerror or exc} (check that the folder exists, is writable and has "
               "free space)")
    try:
        made = type(exc)(message)
    except Exception:  # noqa: BLE001 - an OSError subclass with another constructor
        made = OSError(message)
    made.errno = exc.errno
    return made


def atomic_write_bytes(dest: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(dest: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``dest`` atomically."""
    atomic_write_bytes(dest, text.encode("utf-8"))


# formats a user may keep among photos that are not read here: said, never skipped silently
UNREAD_SUFFIXES = (".gif", ".heic", ".heif", ".avif", ".jxl", ".dng", ".cr2", ".nef", ".arw", ".raw", ".psd")


_TOLD: set[tuple[str, ...]] = set()


class SkippedFilesWarning(UserWarning):
    """Image-like files of a folder that are not read (a format outside ``IMAGE_SUFFIXES``)."""


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (by suffix), sorted by name; hidden files are skipped. Files of a
    photo format that is not read (GIF, HEIC, ...: ``UNREAD_SUFFIXES``) are left out with a
    ``SkippedFilesWarning`` naming them."""
    folder = Path(folder)
    pattern = "**/*" if recursive else "*"
    files = [p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith(".")]
    unread = sorted(str(p.relative_to(folder)) for p in files if p.suffix.lower() in UNREAD_SUFFIXES)
    if unread and (str(folder.resolve()), *unread) not in _TOLD:  # once per folder and files, per process
        _TOLD.add((str(folder.resolve()), *unread))
        kinds = ", ".join(sorted({Path(name).suffix.lower().lstrip(".").upper() for name in unread}))
        warnings.warn(f"{folder}: skipped {len(unread)} file(s) in a format that is not read ({kinds}): "
                      f"{', '.join(unread[:5])}{' ...' if len(unread) > 5 else ''}; convert them to PNG or JPEG "
                      "to include them", SkippedFilesWarning, stacklevel=2)
    return sorted(p for p in files if p.suffix.lower() in IMAGE_SUFFIXES)


def ensure_not_input(out: str | os.PathLike, inputs: list[str | os.PathLike]) -> None:
    """Refuse an output path that would overwrite one of the inputs."""
    out_resolved = Path(out).resolve()
    for item in inputs:
        if Path(item).resolve() == out_resolved:
            raise ValueError(f"output {out} is also an input; refusing to overwrite it (choose another --out)")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_stale_temporaries(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Remove the temporaries ``atomic_path`` left in ``folder`` when its process was killed
    (its process id is no longer running); returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.glob(("**/" if recursive else "") + f".*.{TMP_MARK}-*"):
        pid = path.name.split(f".{TMP_MARK}-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def ensure_outside_inputs(out: str | os.PathLike, inputs: list[str | os.PathLike]) -> None:
    """Refuse an output folder that is, contains, or lies inside an input folder (for a file
    input: the folder holding it is allowed, the file itself is not)."""
    out_resolved = Path(out).resolve()
    for item in inputs:
        item = Path(item).resolve()
        if item.is_dir() and (out_resolved == item or item in out_resolved.parents or out_resolved in item.parents):
            raise ValueError(f"output folder {out} is, contains or lies inside the input folder {item}; "
                             "choose an --out outside it")
        if item == out_resolved:
            raise ValueError(f"output {out} is also an input; refusing to overwrite it (choose another --out)")


def refuse_foreign(paths: list[Path], what: str) -> None:
    """Raise FileExistsError for existing files this command did not write (no --overwrite given)."""
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise FileExistsError(f"{len(existing)} file(s) already exist that {what} did not write: "
                              f"{', '.join(existing[:3])}{' ...' if len(existing) > 3 else ''}; "
                              "pass --overwrite to replace them or choose another output folder")


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

"""What the web UI's buttons do, as plain functions (no gradio here, so they are tested without a browser).

``restore_photo`` is one click of "Restore": a whole photo through :class:`FaceRestorer` with the
album person picked, or with reference photos dropped for this photo, at the chosen strength.
``attention_at`` is one click on the restored photo: the attention map of the face under the
point. ``weights_notice`` is the line the page opens with: which weights are loaded, and whether
they can restore real faces.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from PIL import Image

from ..pipeline.album import Album
from ..pipeline.face_restorer import FaceRestorer, PhotoReport
from ..pipeline.strength import parse_strength
from ..faces.align import apply_affine
from ..utils.images import load_image, to_rgb8

AUTO_MATCH = "(match every face to the album)"
DROPPED = "dropped references"  # the person (album folder) dropped reference photos make
TABLE_COLUMNS = ["face", "person", "similarity", "references", "restored", "strength", "note"]
PUBLISHED_WEIGHTS = ("the authors' published checkpoint (`instantrestore convert-official "
                     "hf://hwdz15508/InstantRestore/final_model_ckpt.pt --out models/instantrestore`, then "
                     "`instantrestore ui --checkpoint models/instantrestore`; README, 'Use the published weights')")


def weights_notice(model, source: str, random_weights: bool = False) -> str:
    """Markdown for the top of the page: which weights ``model`` holds (``source`` says where they
    came from) and, plainly, whether its output on a real photo is a restoration."""
    cfg = model.config
    head = f"**Weights loaded:** {source} — backbone `{cfg.backbone}`, profile `{cfg.profile}`, " \
           f"{cfg.image_size} px faces, weights `{model.weights_fingerprint()[:12]}`."
    if random_weights:
        why = ("**These are RANDOM weights (a smoke test): the output is not a restoration of anything.** "
               f"Real faces need real weights: {PUBLISHED_WEIGHTS}.")
    elif cfg.backbone == "tiny":
        why = ("**This tiny model was trained only on synthetic faces: on real photos its output is NOT a "
               f"restoration** (the page works, the faces do not get better). Real faces need real weights: "
               f"{PUBLISHED_WEIGHTS}.")
    elif cfg.profile == "official":
        why = "These are weights in the authors' layout (official profile), trained on real faces."
    else:
        why = ("SD-Turbo weights from a checkpoint: real faces are restored as well as this checkpoint was "
               f"trained to; the paper's results need {PUBLISHED_WEIGHTS}.")
    return head + "\n\n" + why


class _PersonAlbum(Album):
    """An album seen as one of its persons: faces are matched against that person only, so picking
    a person never pastes their references onto someone else (a face that is not them falls back)."""

    def __init__(self, album: Album, person: str):
        album.files(person)  # raises, naming the persons, when there is no such person
        super().__init__(album.root, album.embedder, album.crop_size, album.cache_dir or False,
                         album.max_side, album.fallback, album.keep_in_memory)
        self.only = person

    @property
    def persons(self) -> list[str]:
        return [self.only]


@dataclass
class UiContext:
    """What every click shares: the model, the album (or None), the restorer's settings, and the
    one-person views of the album made so far (kept, so their references stay encoded)."""

    model: object
    album: Album | None = None
    k: int = 4
    unknown: str = "blind"
    views: dict[str, Album] = field(default_factory=dict)

    def persons(self) -> list[str]:
        """The choices of the person picker: automatic matching first, then the album's persons."""
        return [AUTO_MATCH] + (self.album.persons if self.album is not None else [])

    def album_for(self, person: str | None) -> Album | None:
        """The album to restore with (one person's view when one is picked), looked at afresh:
        the page lives long and photos may be added to the folder meanwhile (unchanged files are
        not hashed again)."""
        for album in (self.album, *self.views.values()):
            if album is not None:
                album.refresh()
        if self.album is None or not person or person == AUTO_MATCH:
            return self.album
        if person not in self.views:
            self.views[person] = _PersonAlbum(self.album, person)
        return self.views[person]


@dataclass
class RestoreResult:
    """One "Restore" click: the photo before and after, the per-face table rows, a status line, and
    ``faces`` (per face: box, matrix, crop_size, person, the reference crops used) for ``attention_at``."""

    before: np.ndarray
    after: np.ndarray
    rows: list[list]
    status: str
    faces: list[dict]


def restore_photo(ctx: UiContext, photo: np.ndarray | Image.Image | str | None, person: str | None = None,
                  reference_files: Sequence[str] | None = None, strength: float | str = 1.0,
                  auto_strength: bool = False, seed: int = 0) -> RestoreResult:
    """Restore every face of ``photo`` (uint8 RGB (H, W, 3), PIL image or path).

    reference_files: photos of the person to restore (whole photos or aligned crops); when given
    they are used for this photo instead of the album, as a one-person album: a face they do not
    match is restored blind, and the table says so. person: an album person to match faces against
    (``AUTO_MATCH`` or None: every person). strength: the reference strength in [0, 1] (1: follow the
    references fully, 0: blind) or 'auto'; auto_strength: choose it per face instead (``'auto'``).
    Raises ValueError with no photo, an unknown person or a strength ``parse_strength`` refuses.
    """
    if photo is None:
        raise ValueError("drop a photo first")
    setting = parse_strength("auto" if auto_strength else strength)  # refused before any work
    before = _rgb_array(photo)
    refs = [Path(p) for p in (reference_files or []) if p]
    notes = []
    with tempfile.TemporaryDirectory(prefix="instantrestore-ui-") as tmp:
        if refs:
            album = _dropped_album(refs, Path(tmp), ctx)
            notes.append(f"{len(refs)} dropped reference photo(s) used instead of the album")
        else:
            album = ctx.album_for(person)
        restorer = FaceRestorer(ctx.model, album=album, k=ctx.k, unknown=ctx.unknown)
        after, report = restorer.enhance(before, seed=seed, strength=setting)
        faces = [_face_state(entry, album) for entry in report.faces]  # reference crops read before tmp goes
    status = _status(report, notes)
    return RestoreResult(before=before, after=np.asarray(after), rows=face_rows(report), status=status, faces=faces)


def _rgb_array(photo) -> np.ndarray:
    """uint8 RGB (H, W, 3) from what gradio hands over (array, PIL image or file path)."""
    if isinstance(photo, (str, Path)):
        return np.asarray(load_image(photo))
    if isinstance(photo, Image.Image):
        return np.asarray(to_rgb8(photo))
    image = np.asarray(photo)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"photo: expected a uint8 image, got {image.dtype} {image.shape}")
    if image.ndim == 2:  # grey
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])  # gradio hands RGB already (image_mode='RGB'); drop any alpha


def _dropped_album(files: list[Path], root: Path, ctx: UiContext) -> Album:
    """A one-person album in ``root`` made of copies of the dropped files (their names kept where unique)."""
    folder = root / DROPPED
    folder.mkdir()
    for i, path in enumerate(files):
        target = folder / path.name
        shutil.copyfile(path, target if not target.exists() else folder / f"{i:02d}_{path.name}")
    crop_size = ctx.album.crop_size if ctx.album is not None else 512
    embedder = ctx.album.embedder if ctx.album is not None else None
    return Album(root, embedder=embedder, crop_size=crop_size, cache_dir=False)


def _face_state(entry: dict, album: Album | None) -> dict:
    """What ``attention_at`` needs of one face, kept in the page's state between clicks."""
    crops: list[np.ndarray] = []
    names: list[str] = list(entry.get("references") or [])
    if album is not None and entry.get("person") and names:
        refs = album.references(entry["person"])
        crops = [refs.crops[refs.names.index(name)] for name in names]
    return {"index": entry["index"], "box": entry["box"], "matrix": entry["matrix"], "crop_size": entry["crop_size"],
            "person": entry.get("person"), "restored": entry.get("restored"), "references": crops, "names": names}


def face_rows(report: PhotoReport) -> list[list]:
    """The per-face table (``TABLE_COLUMNS``): one row per detected face, largest first."""
    rows = []
    for face in report.faces:
        sim = face.get("similarity")
        person = face.get("person") or (f"no one (closest {face['closest']})" if face.get("closest") else "no one")
        fallback = [face["fallback"]["reason"]] if face.get("fallback") else []
        note = "; ".join(fallback + list(face.get("warnings", [])))
        strength = face.get("strength")
        rows.append([face["index"], person, "" if sim is None else f"{sim:.3f}", ", ".join(face.get("references", [])),
                     face.get("restored") or "kept", "" if strength is None else _fmt_strength(strength), note])
    return rows


def _fmt_strength(value) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else str(value)


def _status(report: PhotoReport, notes: list[str]) -> str:
    lines = [f"{len(report)} face(s) found, {report.restored} restored."] + report.problems + notes
    return " ".join(lines)


# ------------------------------------------------------------------ attention maps
def face_at(faces: list[dict], point: tuple[float, float]) -> tuple[dict, tuple[float, float]] | None:
    """The face whose aligned crop holds the photo pixel ``point`` (x, y), and the point in that crop's
    pixels; the smallest crop wins where faces overlap. None when the point is on no face."""
    hits = []
    for face in faces:
        u, v = apply_affine(np.asarray(face["matrix"], np.float64), np.asarray([point], np.float64))[0]
        size = face["crop_size"]
        if 0 <= u < size and 0 <= v < size:
            scale = np.linalg.norm(np.asarray(face["matrix"])[:, 0])  # crop px per photo px: bigger = smaller face
            hits.append((-scale, face["index"], face, (float(u), float(v))))
    if not hits:
        return None
    _, _, face, uv = min(hits, key=lambda h: (h[0], h[1]))
    return face, uv


def face_crop(photo: np.ndarray, face: dict) -> np.ndarray:
    """The aligned crop of ``face`` cut from ``photo`` (uint8 RGB) through its matrix: the degraded face
    the model saw, up to the shrink step of ``align_face`` (a display, not a re-run)."""
    size = face["crop_size"]
    return cv2.warpAffine(photo, np.asarray(face["matrix"], np.float64), (size, size),
                          flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT_101)


def attention_at(ctx: UiContext, result: RestoreResult | None, point: tuple[float, float]
                 ) -> tuple[Image.Image | None, str]:
    """The attention map of the face under ``point`` (restored-photo pixels): where that spot of the
    degraded face looks in its references. Returns (the rendered map or None, a line saying what it shows)."""
    if result is None:
        return None, "restore a photo first, then click a point on a face"
    hit = face_at(result.faces, point)
    if hit is None:
        return None, f"no face at ({point[0]:.0f}, {point[1]:.0f}): click inside a face"
    face, (u, v) = hit
    if not face["references"]:
        return None, f"face {face['index']} was restored {face['restored'] or 'not at all'}: no references to attend to"
    try:
        from ..generator.attention_map import attention_map, render_attention_map
    except ImportError:
        return None, "attention maps need instantrestore.generator.attention_map, which this installation lacks"
    crop = face_crop(result.before, face)
    refs = [Image.fromarray(c) for c in face["references"]]
    try:
        amap = attention_map(ctx.model, Image.fromarray(crop), refs, point=(u, v))
    except ValueError as exc:  # e.g. a point on the crop's padding edge
        return None, f"face {face['index']}: {exc}"
    image = render_attention_map(amap, refs, face=Image.fromarray(crop))
    masses = ", ".join(f"{name} {m:.0%}" for name, m in zip(face["names"], amap.mass))
    return image, (f"face {face['index']} ({face['person']}), point ({u:.0f}, {v:.0f}) of its {face['crop_size']} px "
                   f"crop: where it attends in its {len(refs)} reference(s); attention mass: {masses}")

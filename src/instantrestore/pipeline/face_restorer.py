"""FaceRestorer: a whole photo in, every face restored with its own person's references, one call.

    album = Album("album/")                     # album/<person>/*.jpg
    restorer = FaceRestorer(model, album=album, k=4)
    restored, report = restorer.enhance("photo.jpg")

Each face goes through named steps (GFPGAN's ``enhance`` shape over ``faces/``):
detect -> align -> screen (duplicates and detections that are no face are dropped,
``faces.verify.screen_detections``) -> embed -> match a person of the album (``album_match``: an
open-set rule whose threshold and margin over the second-best person rise with the face's estimated
degradation) -> verify that person's references (outliers warn, or refuse the face with ``strict``)
-> select their best k for this face (``faces/select.py``) -> restore with those references' cached
keys/values (at reduced strength when the match leads the runner-up by little) -> paste back into the
photo enlarged ``upscale`` times, through a feathered face-shaped mask (``face_paste.PhotoPaste``).

A face that fails a step keeps its original pixels and its report says which step and why; a face
that matches no one, or no one safely, is restored blind (``unknown='blind'``) or kept (``'keep'``).
Pixels outside the pasted faces' outlines are the background upsampler's output (upscale 1: the input,
byte-identical). ``strength``
(a setting of ``strength.parse_strength``: a number in [0, 1] or 'auto', resolved per face by
``strength.face_strength``) is how much the references are followed; each face's report records
the value used (None for a face restored blind).
"""
from __future__ import annotations

import functools
import os
import warnings
from dataclasses import replace
from typing import Callable

import numpy as np
from PIL import Image

from .album import Album, require_person
from ..faces.align import AlignedFace, align_photo
from ..faces.identity import FaceEmbedder
from ..faces.select import SelectionWeights
from ..faces.verify import ReferenceMismatchError, ReferenceWarning, screen_detections
from ..utils.images import load_image, to_rgb8, uint8_to_tensor
from .album_match import Match
from .face_paste import FaceTooSmall, PhotoPaste, check_upscale
from .person_crop import choose_indices
from .photo_report import PhotoReport, timed  # PhotoReport: API (FaceRestorer's report)
from .strength import estimate_degradation, face_strength, parse_strength

UNKNOWN = ("blind", "keep")


class FaceRestorer:
    """Restore every face of whole photos with ``model``, using the album person each face matches.

    album: an :class:`Album` (None: no identities; every face follows ``unknown``). embedder: the
    identity model; default the album's (they must agree, the album's embeddings come from it).
    k: references per face, chosen per face by ``select_references``. unknown: 'blind' restores
    a face that matches no one without references, 'keep' leaves it as it is. strict: refuse (keep)
    a face whose person's references disagree with each other, instead of warning.
    crop_size: side faces are aligned to (default the album's, else 512); the model restores at its
    own size and the result is pasted through the rescaled transform. max_side / fallback: face
    detection (``detect_faces``). strength: reference strength, a number in [0, 1] (1: the references
    fully, 0: blind) or 'auto' in any case (chosen per face from how degraded it is), as
    ``strength.parse_strength`` reads it (ValueError otherwise); ``enhance`` can override it.
    only_person: match faces against this album person alone (the rule's threshold still applies;
    there is no runner-up to lead), e.g. for a photo known to show them. largest_face: restore only
    the largest face (face 0); the others are kept as they are, their reports saying why. paste: how
    restored faces go back (``PhotoPaste``: upscale, background upsampler, colour fix, mask); ``enhance``
    can override the upscale.
    """

    def __init__(self, model, album: Album | None = None, embedder: FaceEmbedder | None = None, k: int = 4,
                 unknown: str = "blind", strict: bool = False, crop_size: int | None = None,
                 max_side: int = 800, fallback: str = "cnn",
                 selection_weights: SelectionWeights = SelectionWeights(), strength: float | str = 1.0,
                 only_person: str | None = None, largest_face: bool = False, paste: PhotoPaste | None = None):
        if unknown not in UNKNOWN:
            raise ValueError(f"unknown must be one of {UNKNOWN}, not {unknown!r}")
        self.strength = parse_strength(strength)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if album is not None and embedder is not None and embedder.name != album.embedder.name:
            raise ValueError(f"embedder {embedder.name} differs from the album's {album.embedder.name}: "
                             "faces and references must be embedded by the same model")
        self.model, self.album, self.k, self.unknown, self.strict = model, album, k, unknown, strict
        self.embedder = embedder or (album.embedder if album is not None else None)
        self.crop_size = crop_size or (album.crop_size if album is not None else 512)
        if album is not None and self.crop_size != album.crop_size:
            raise ValueError(f"crop_size {self.crop_size} differs from the album's {album.crop_size}")
        self.max_side, self.fallback, self.selection_weights = max_side, fallback, selection_weights
        if only_person is not None:
            require_person(album, only_person, "only_person")
        self.only_person, self.largest_face, self.paste = only_person, largest_face, paste or PhotoPaste()

    # ------------------------------------------------------------------ the recipe
    def enhance(self, photo: np.ndarray | Image.Image | str | os.PathLike, seed: int = 0,
                strength: float | str | None = None, upscale: float | None = None
                ) -> tuple[np.ndarray | Image.Image, PhotoReport]:
        """Restore every face of ``photo`` (uint8 RGB (H, W, 3) array, PIL image or image path).

        Returns (the photo ``upscale`` times larger with its faces pasted back, the report): a PIL image
        for a PIL input, else a uint8 RGB array. ``seed``: random draws of a sampling profile (official).
        ``strength`` / ``upscale``: this call's (None: the restorer's, ``self.paste.upscale``).
        """
        strength = self.strength if strength is None else parse_strength(strength)
        upscale = self.paste.upscale if upscale is None else check_upscale(upscale)
        image, as_pil = _as_photo(photo)
        report = PhotoReport(photo_size=(image.shape[1], image.shape[0]))
        clock = functools.partial(timed, report.seconds)
        try:
            with clock("detect_align"):
                aligned = align_photo(image, self.crop_size, self.max_side, self.fallback)
                dropped = screen_detections([a.face for a in aligned], [a.crop for a in aligned])
        except (ValueError, RuntimeError) as exc:
            report.problems.append(f"face detection failed: {_reason(exc)}")
            aligned = []
        if not aligned and not report.problems:
            report.problems.append("no face found")
        with clock("background"):
            out = self.paste.background(image, upscale)  # a new array, never the caller's
        report.output_size = (out.shape[1], out.shape[0])
        for index, face in enumerate(aligned):
            entry = _face_entry(index, face)
            report.faces.append(entry)
            report.crops.append([face.crop, None])
            if dropped[index]:
                entry["fallback"] = {"step": "detect", "reason": f"{dropped[index]}; kept as it is"}
                continue
            if self.largest_face and any(not why for why in dropped[:index]):  # faces come largest first
                entry["fallback"] = {"step": "largest-face", "reason": "not the largest face; kept as it is"}
                continue
            restored = self._restore_face(face, entry, seed, strength, clock)
            if restored is None:
                continue
            try:
                with clock("paste"):
                    out = self.paste.paste(out, face, restored, entry, upscale)
            except Exception as exc:  # noqa: BLE001 - e.g. cv2.error on a degenerate transform
                reason = str(exc) if isinstance(exc, FaceTooSmall) else f"{_reason(exc)}; kept as it is"
                entry.update(restored=None, strength=None, fallback={"step": "paste", "reason": reason})
                continue
            entry["restored_size"] = int(restored.shape[0])
            report.crops[-1][1] = restored
        return (Image.fromarray(out) if as_pil else out), report

    def _restore_face(self, face: AlignedFace, entry: dict, seed: int, strength: float | str,
                      clock: Callable) -> np.ndarray | None:
        """One face's steps after alignment; fills ``entry`` and returns the restored crop, or None to keep it."""
        step = "match"
        try:
            match = None
            if self.album is None:
                person, why = None, "no album given"
            else:
                with clock("embed_match"):
                    step = "embed"
                    embedding = self.embedder.embed(uint8_to_tensor(face.crop))[0]
                    step = "match"
                    match = self._match(embedding, estimate_degradation(face.crop), entry)
                    person, why = match.person, match.reason
            if person is None:
                if self.unknown == "keep":
                    entry["fallback"] = {"step": "match", "reason": f"{why}; kept as it is"}
                    return None
                entry["fallback"] = {"step": "match", "reason": f"{why}; restored blind"}
                step = "restore"
                with clock("restore"):
                    restored = self._run_model(face.crop, None, seed, strength, entry)
                entry["restored"] = "blind"
                return restored
            step = "verify"
            refs = self.album.references(person)
            if refs.verification.outliers and self.strict:
                raise ReferenceMismatchError("references refused (strict): " + "; ".join(refs.problems()))
            for line in refs.problems() + self.album.shared_photo_lines(person):
                entry["warnings"].append(line)
                warnings.warn(line, ReferenceWarning, stacklevel=3)
            step = "select"
            indices = refs.usable  # a reference flagged as another person is never chosen (unless all are)
            if len(indices) < len(refs):
                entry["warnings"].append("left out as another person: " + ", ".join(
                    name for i, name in enumerate(refs.names) if i not in indices))
            if len(indices) > self.k:  # with k or fewer nothing to rank (``choose_indices``)
                with clock("select"):
                    indices = choose_indices(self, face.crop, refs, embedding)
            entry["references"] = [refs.names[i] for i in indices]
            step = "encode"
            with clock("encode"):
                cache = self.album.reference_cache(person, self.model).subset(indices)
            step = "restore"
            with clock("restore"):
                restored = self._run_model(face.crop, cache, seed, strength, entry, match)
            entry["restored"] = "references"
            return restored
        except Exception as exc:  # noqa: BLE001 - one face's failure never costs the photo's other faces
            entry.update(restored=None, references=[], strength=None,
                         fallback={"step": step, "reason": f"{_reason(exc)}; kept as it is"})
            return None

    def _run_model(self, crop: np.ndarray, cache, seed: int, strength: float | str, entry: dict,
                   match: Match | None = None) -> np.ndarray:
        """The model on one aligned crop at this face's strength (``face_strength``, lowered by a match with
        a small lead: ``Match.scaled``), recorded in ``entry``."""
        value = face_strength(strength, crop, has_references=cache is not None)
        if value is not None and match is not None:
            value, note = match.scaled(value)
            entry["warnings"] += [note] if note else []
        entry["strength"] = value
        if value is None:
            return np.asarray(self.model.restore(crop, references=None, seed=seed))
        return np.asarray(self.model.restore(crop, references=cache, seed=seed, strength=value))

    def _match(self, embedding, degradation: float, entry: dict) -> Match:
        """The album's decision for one face (``Album.identify``); records it in ``entry``."""
        match = self.album.identify(embedding, round(degradation, 4),
                                    None if self.only_person is None else [self.only_person])
        if self.only_person is not None and match.person is None:  # say whom the face was not
            match = replace(match, reason=f"not {self.only_person}, the one person matched: {match.reason}")
        entry.update(match.report())
        return match


def _face_entry(index: int, face: AlignedFace) -> dict:
    return {"index": index, "box": [round(float(v), 2) for v in face.face.box], "size": round(float(face.face.size), 2),
            "detector": face.face.detector, "person": None, "similarity": None, "closest": None, "second": None,
            "margin": None, "degradation": None, "references": [],
            "restored": None, "fallback": None, "warnings": [], "matrix": face.matrix.tolist(),  # exact: paste_region
            "crop_size": face.size, "restored_size": None, "strength": None}


def _reason(exc: BaseException) -> str:
    """An error as one line for a report: its type and its first non-empty line (dlib's C++ assertions
    span a dozen)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"


def _as_photo(photo) -> tuple[np.ndarray, bool]:
    """(uint8 RGB (H, W, 3) array, whether the input was a PIL image)."""
    if isinstance(photo, Image.Image):
        return np.asarray(to_rgb8(photo) if photo.mode != "RGB" else photo), True
    if isinstance(photo, (str, os.PathLike)):
        return np.asarray(load_image(photo)), False
    if isinstance(photo, np.ndarray):
        if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
            raise ValueError(f"photo: expected a uint8 RGB array (H, W, 3), got {photo.dtype} {photo.shape}; "
                             "convert 0..1 or 0..255 floats with np.clip(x * 255, 0, 255).astype(np.uint8) first")
        return photo, False
    raise TypeError(f"photo: expected a uint8 RGB array, a PIL image or an image path, got {type(photo).__name__}")

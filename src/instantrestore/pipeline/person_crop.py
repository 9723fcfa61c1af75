"""Restore one aligned face crop as a given album person (or blind), with no detection or matching.

``FaceRestorer.enhance`` decides who each face of a photo is; a video decides once per face *track*
(``pipeline.video_tracks``) and then restores every frame of the track as that person, with the
same references, strength and seed. These are ``FaceRestorer``'s per-face steps after the match
(select the references, read their cached keys/values, run the model at the face's strength), on
its album, model, ``k`` and selection weights, so a frame of a video and a photo get the same
treatment.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..faces.select import select_references
from .album import require_person
from .strength import face_strength, parse_strength

if TYPE_CHECKING:
    from .face_restorer import FaceRestorer


def choose_indices(restorer: "FaceRestorer", crop: np.ndarray, refs, embedding: np.ndarray | None = None) -> list[int]:
    """Indices into ``refs`` (an album person's ``PersonReferences``) of the references ``restorer`` uses for
    ``crop`` (uint8 RGB, aligned): the usable ones (outliers left out), the best ``restorer.k`` by
    ``select_references``. ``embedding``: the crop's identity embedding when already computed."""
    indices = list(refs.usable)
    if len(indices) <= restorer.k:  # with k or fewer only the order would change, and attention ignores it
        return indices
    ranking = select_references(crop, [refs.crops[i] for i in indices], restorer.k,
                                names=[refs.names[i] for i in indices], embedder=restorer.embedder,
                                weights=restorer.selection_weights, lq_embedding=embedding,
                                candidate_embeddings=refs.embeddings[indices],
                                candidate_landmarks=refs.landmarks[indices])
    return [indices[s.index] for s in ranking]


def choose_references(restorer: "FaceRestorer", crop: np.ndarray, person: str) -> list[str]:
    """The names of ``person``'s references ``restorer`` would use for ``crop`` (``choose_indices``)."""
    require_person(restorer.album, person)
    refs = restorer.album.references(person)
    return [refs.names[i] for i in choose_indices(restorer, crop, refs)]


def resolve_strength(restorer: "FaceRestorer", crop: np.ndarray, with_references: bool,
                     strength: float | str | None = None) -> float | None:
    """The strength ``restorer`` would use on ``crop`` (``strength`` or the restorer's; 'auto' decided
    from this crop's degradation): a number, or None when restored blind."""
    setting = restorer.strength if strength is None else parse_strength(strength)
    return face_strength(setting, crop, has_references=with_references)


def restore_as(restorer: "FaceRestorer", crop: np.ndarray, person: str | None, references: list[str] | None = None,
               seed: int = 0, strength: float | str | None = None) -> tuple[np.ndarray, dict]:
    """Restore ``crop`` (uint8 RGB, aligned at ``restorer.crop_size``) as album ``person`` with the named
    ``references`` (default ``choose_references``), or blind when ``person`` is None.

    Returns (the restored crop, uint8 RGB at the model's size; {'references': names used, 'strength':
    the value used, None when blind}). ``seed``: the model's random draws (fixed per track for video)."""
    if person is None:
        return np.asarray(restorer.model.restore(crop, references=None, seed=seed)), {"references": [],
                                                                                      "strength": None}
    names = choose_references(restorer, crop, person) if references is None else list(references)
    refs = restorer.album.references(person)
    missing = [n for n in names if n not in refs.names]
    if missing or not names:
        raise ValueError(f"not references of {person}: {', '.join(missing) or 'none given'}")
    value = resolve_strength(restorer, crop, True, strength)
    cache = restorer.album.reference_cache(person, restorer.model).subset([refs.names.index(n) for n in names])
    restored = np.asarray(restorer.model.restore(crop, references=cache, seed=seed, strength=value))
    return restored, {"references": names, "strength": value}

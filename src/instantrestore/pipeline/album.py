"""Album: the people of a photo collection, ``album/<person>/*.jpg``, and their encoded references.

Each sub-folder is one person and its images are that person's reference photos: whole photos
(the largest face is detected and aligned) or FFHQ-aligned crops (used as they are). Two caches
are kept on disk beside the album (:mod:`.album_caches`), so that a thousand photos of the same
five people prepare and encode each person's references once: the aligned crops, embeddings and
landmarks under a key of the files' names and contents and the settings (:mod:`.album_people`),
and a reference cache per model under the model's reference key.

The folder is listed and its files hashed once per Album; :meth:`Album.refresh` looks again.
``prepared`` and ``encodes`` count, per person, how often references were aligned and embedded,
and how often the reference branch ran.
"""
from __future__ import annotations

import os
from collections import Counter, OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..faces.detect import aligned_landmarks
from ..faces.identity import DlibEmbedder, FaceEmbedder
from ..faces.verify import LQ_MARGIN
from ..generator.fingerprints import reference_key
from ..generator.reference_cache import ReferenceCache
from ..utils.images import ImageError, load_image, uint8_to_tensor
from .album_caches import (CACHE_DIR, FACES_FORMAT, read_faces, read_reference_cache, remove_stale, write_faces,
                           write_reference_cache)
from .album_match import Match, MatchRule, match_face, rule_for
from .album_people import AlbumFolder
from .album_references import PersonReferences, align_reference, person_references

if TYPE_CHECKING:
    from ..generator.one_step import OneStepGenerator

__all__ = ["CACHE_DIR", "Album", "Match", "MatchRule", "PersonReferences", "align_reference", "open_album",
           "require_person"]


class Album(AlbumFolder):
    """The people of ``root`` (one sub-folder each) with cached aligned references and reference caches.

    embedder: identity model for matching faces to people (default dlib). crop_size: side of the
    aligned reference crops (use the restorer's). cache_dir: default ``root/.instantrestore-cache``;
    False keeps everything in memory only. max_side / fallback: face detection in reference photos
    (see ``detect_faces``). keep_in_memory: how many persons' reference caches stay loaded (one
    SD-Turbo reference at 512 px is ~55 MB of keys/values). rule: how faces are matched to people
    (:class:`MatchRule`; default ``rule_for`` the embedder).
    """

    def __init__(self, root: str | os.PathLike, embedder: FaceEmbedder | None = None, crop_size: int = 512,
                 cache_dir: str | os.PathLike | bool | None = None, max_side: int = 800, fallback: str = "cnn",
                 keep_in_memory: int = 4, rule: MatchRule | None = None):
        self.embedder = embedder or DlibEmbedder()
        self.rule = rule or rule_for(self.embedder.name, self.embedder.threshold - LQ_MARGIN)
        self.crop_size, self.max_side, self.fallback = crop_size, max_side, fallback
        super().__init__(root, [FACES_FORMAT, crop_size, self.embedder.name, max_side, fallback])
        self.cache_dir = None if cache_dir is False else Path(cache_dir) if cache_dir not in (None, True) \
            else self.root / CACHE_DIR
        self.keep_in_memory = max(1, keep_in_memory)
        self.prepared: Counter[str] = Counter()  # person -> times references were aligned and embedded
        self.encodes: Counter[str] = Counter()   # person -> times the reference branch ran
        self._references: dict[str, PersonReferences] = {}
        self._caches: OrderedDict[tuple[str, str, str], ReferenceCache] = OrderedDict()

    def _path(self, person: str, suffix: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / f"{person}-{suffix}.safetensors"

    # ------------------------------------------------------------------ aligned references
    def references(self, person: str) -> PersonReferences:
        """The person's aligned, embedded references: from memory, the disk cache, or prepared now."""
        key = self.faces_key(person)
        held = self._references.get(person)
        if held is not None and held.key == key:
            return held
        path = self._path(person, f"{key}.faces")
        stored = None if path is None else read_faces(path, key)
        refs = self._prepare(person, key) if stored is None else \
            person_references(self.embedder, person, key, **stored)
        self._references[person] = refs
        return refs

    def _prepare(self, person: str, key: str) -> PersonReferences:
        crops, names, skipped, notes = [], [], {}, {}
        for path in self.files(person):
            try:
                crop, notes[path.name] = align_reference(np.asarray(load_image(path)), self.crop_size,
                                                         self.max_side, self.fallback)
            except (ImageError, ValueError, RuntimeError) as exc:
                skipped[path.name] = str(exc)
                continue
            crops.append(crop)
            names.append(path.name)
        stack = np.stack(crops) if crops else np.zeros((0, self.crop_size, self.crop_size, 3), np.uint8)
        embeddings = self.embedder.embed(uint8_to_tensor(stack)).float().cpu() if crops else torch.zeros(0, 1)
        landmarks = np.stack([aligned_landmarks(c) for c in crops]) if crops else np.zeros((0, 68, 2))
        self.prepared[person] += 1
        refs = person_references(self.embedder, person, key, names, stack, embeddings, landmarks, skipped, notes)
        path = self._path(person, f"{key}.faces")
        if path is not None and write_faces(path, refs, self.embedder.name):
            remove_stale(self.cache_dir, person, key)
        return refs

    # ------------------------------------------------------------------ reference caches
    def reference_cache(self, person: str, model: OneStepGenerator) -> ReferenceCache:
        """Keys/values of all the person's references for ``model`` (rows in ``references(person).names``
        order): from memory, from disk, or encoded now (counted in ``encodes``) and saved. Files are
        named by the model's reference key, so another model or setting never reads them."""
        refs = self.references(person)
        if not len(refs):
            raise ValueError(f"{person}: no usable reference photo: " + "; ".join(refs.problems()))
        mkey = reference_key(model)
        slot = (person, refs.key, mkey)
        if slot in self._caches:
            self._caches.move_to_end(slot)
            return self._caches[slot]
        path = self._path(person, f"{refs.key}-{mkey}")
        cache = None if path is None else read_reference_cache(path, model.device, len(refs), mkey)
        if cache is None:
            cache = model.encode_references(list(refs.crops))
            self.encodes[person] += 1
            if path is not None:
                write_reference_cache(cache, path)
        self._caches[slot] = cache
        while len(self._caches) > self.keep_in_memory:
            self._caches.popitem(last=False)
        return cache

    # ------------------------------------------------------------------ identity
    @property
    def threshold(self) -> float:
        """The score a sharp face needs to be matched to a person (``rule.threshold``; degraded faces need more)."""
        return self.rule.threshold

    def identify(self, embedding: torch.Tensor, degradation: float | None = None,
                 persons: list[str] | None = None) -> Match:
        """Match one face embedding [D] (or [1, D]) of estimated ``degradation`` (None: judged as the most
        degraded) to the album: ``album_match.match_face`` over each person's references (outliers left out).
        persons: only these are candidates (default all; a name not in the album is a ValueError)."""
        unknown = sorted(set(persons or []) - set(self.persons))
        if unknown:
            raise ValueError(f"not a person of the album {self.root}: {', '.join(unknown)}")
        references = {}
        for person in (self.persons if persons is None else persons):
            refs = self.references(person)
            if len(refs):
                references[person] = refs.embeddings[refs.usable]
        return match_face(embedding, references, self.rule, degradation)

    def problems(self) -> list[str]:
        """Every person's unusable files and disagreeing references (prepares them if needed), and
        photos filed under several persons."""
        return [line for person in self.persons for line in self.references(person).problems()] + \
            self.shared_photo_lines()


def require_person(album: Album | None, person: str, what: str = "person") -> None:
    """Refuse ``person`` (given as ``what``: a flag or an argument) unless ``album`` has a folder of
    them; the message names the album's persons."""
    if album is None:
        raise ValueError(f"{what} {person!r} needs an album (--album) with a folder of {person}'s photos")
    if person not in album.persons:
        raise ValueError(f"{what} {person!r} is not a person of the album {album.root}; its persons: "
                         f"{', '.join(album.persons) or 'none (no sub-folder with images)'}")


def open_album(root: str | os.PathLike | None, embedder: str = "dlib",
               cache_dir: str | os.PathLike | bool | None = None) -> Album | None:
    """The album a command names (None without one), its embedder built from its CLI spec
    (``faces.identity.load_embedder``). A missing optional extra (an embedder's package) is a
    ValueError saying which, as every command reports a bad setting."""
    if not root:
        return None
    from ..faces.identity import load_embedder

    try:
        return Album(root, embedder=load_embedder(embedder), cache_dir=cache_dir)
    except ImportError as exc:
        raise ValueError(str(exc)) from exc

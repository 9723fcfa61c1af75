"""Album: the people of a photo collection, ``album/<person>/*.jpg``, and their encoded references.

Each sub-folder is one person and its images are that person's reference photos: whole photos
(the largest face is detected and aligned) or FFHQ-aligned crops (used as they are). Two caches
are kept on disk beside the album, in ``album/.instantrestore-cache/``, so that a thousand photos
of the same five people prepare and encode each person's references once:

- ``<person>-<faces key>.faces.safetensors``: the aligned reference crops [N, S, S, 3] uint8 RGB,
  their identity embeddings [N, D] and 68 landmarks [N, 68, 2]. The key hashes the files' names
  and contents, the crop size, the embedder and the detector settings.
- ``<person>-<faces key>-<model key>.safetensors``: a :class:`ReferenceCache` of all N references
  (rows in file-name order). The model key hashes the reference branch's weight fingerprint and
  the settings that change its keys/values (backbone, profile, timestep, image size, ...).

A file whose key no longer matches is never read; when a person's files change, that person's
files with the old faces key are removed. ``prepared`` and ``encodes`` count, per person, how
often references were aligned and embedded, and how often the reference branch ran.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import warnings
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..utils.files import atomic_path, list_images
from ..faces.align import align_face, is_aligned_crop
from ..faces.detect import aligned_landmarks, detect_faces
from ..faces.identity import DlibEmbedder, FaceEmbedder
from ..faces.verify import LQ_MARGIN, VerificationReport, verify_embeddings
from ..utils.images import ImageError, load_image, uint8_to_tensor
from ..generator.fingerprints import file_digest
from ..generator.reference_cache import ReferenceCache

CACHE_DIR = ".instantrestore-cache"
FACES_FORMAT = "instantrestore.album_faces/1"
_KEY_CHARS = 16
_CACHE_NAME = re.compile(r"^(?P<key>[0-9a-f]{16})(\.faces|-[0-9a-f]{16})\.safetensors$")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_KEY_CHARS]


def model_key(model) -> str:
    """What a reference cache depends on: the reference branch's weights and the settings that
    change its keys/values. Two models with equal keys produce the same cache."""
    cfg = model.config
    parts = {"fingerprint": model.weights_fingerprint(), "backbone": cfg.backbone, "profile": cfg.profile,
             "timestep": cfg.branch_timestep, "image_size": cfg.image_size, "latent_sampling": cfg.latent_sampling,
             "reference_noise": cfg.reference_noise, "freeu": cfg.freeu,
             "scaling_factor": cfg.vae.get("scaling_factor"), "dtype": str(model.dtype)}
    return _digest(json.dumps(parts, sort_keys=True, default=str))


def align_reference(image: np.ndarray, size: int = 512, max_side: int = 800, fallback: str = "cnn"
                    ) -> tuple[np.ndarray, str]:
    """A reference photo (uint8 RGB (H, W, 3)) -> (its aligned ``size`` crop, how it was made).

    An image that already is an FFHQ-aligned crop (aligning it is nearly a plain resize) is used as
    it is, resized to ``size``; from a whole photo the largest face is aligned. Raises ValueError
    when no face is found.
    """
    faces = detect_faces(image, max_side=max_side, fallback=fallback)
    if not faces:
        raise ValueError("no face found")
    aligned = align_face(image, faces[0], size)
    h, w = image.shape[:2]
    if h == w and is_aligned_crop(aligned.matrix, w, size):
        crop = image if w == size else np.asarray(Image.fromarray(image).resize((size, size), Image.LANCZOS))
        return crop, "aligned crop, used as it is"
    many = f", {len(faces)} faces: the largest used" if len(faces) > 1 else ""
    return aligned.crop, f"aligned from a {w}x{h} photo{many}"


@dataclass(frozen=True, eq=False)  # array fields
class PersonReferences:
    """One person's usable reference photos, aligned and embedded.

    names: the files used, sorted; row i of ``crops`` [N, S, S, 3] uint8 RGB, ``embeddings`` [N, D]
    (L2-normalised), ``landmarks`` [N, 68, 2] (``aligned_landmarks``, crop pixels) and of the person's
    reference cache belongs to ``names[i]``. ``skipped``: file ->
    why it was not used; ``notes``: file -> how its crop was made. ``verification`` compares the
    references with each other (outliers look like another person).
    """

    person: str
    key: str
    names: list[str]
    crops: np.ndarray = field(repr=False)
    embeddings: torch.Tensor = field(repr=False)
    landmarks: np.ndarray = field(repr=False)
    skipped: dict[str, str]
    notes: dict[str, str]
    verification: VerificationReport

    def __len__(self) -> int:
        return len(self.names)

    @property
    def centre(self) -> torch.Tensor:
        """The person's identity [D]: normalised mean embedding of the references that are not outliers."""
        outliers = {c.name for c in self.verification.outliers}
        keep = [i for i, name in enumerate(self.names) if name not in outliers] or list(range(len(self.names)))
        return F.normalize(self.embeddings[keep].mean(0), dim=0)

    def problems(self) -> list[str]:
        lines = [f"{self.person}/{name}: not used ({why})" for name, why in self.skipped.items()]
        return lines + [f"{self.person}: {line}" for line in self.verification.problems()]


@dataclass(frozen=True)
class Match:
    """Who a face is: ``person`` (None when no one reaches ``threshold``), its cosine similarity to
    the closest person's identity, that person (``closest``) and the similarity to every person."""

    person: str | None
    similarity: float | None
    closest: str | None
    threshold: float
    similarities: dict[str, float]


class Album:
    """The people of ``root`` (one sub-folder each) with cached aligned references and reference caches.

    embedder: identity model for matching faces to people (default dlib). crop_size: side of the
    aligned reference crops (use the restorer's). cache_dir: default ``root/.instantrestore-cache``;
    False keeps everything in memory only. max_side / fallback: face detection in reference photos
    (see ``detect_faces``). keep_in_memory: how many persons' reference caches stay loaded (one
    SD-Turbo reference at 512 px is ~55 MB of keys/values).
    """

    def __init__(self, root: str | os.PathLike, embedder: FaceEmbedder | None = None, crop_size: int = 512,
                 cache_dir: str | os.PathLike | bool | None = None, max_side: int = 800, fallback: str = "cnn",
                 keep_in_memory: int = 4):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: album folder not found (expected album/<person>/*.jpg)")
        self.embedder = embedder or DlibEmbedder()
        self.crop_size, self.max_side, self.fallback = crop_size, max_side, fallback
        self.cache_dir = None if cache_dir is False else Path(cache_dir) if cache_dir not in (None, True) \
            else self.root / CACHE_DIR
        self.keep_in_memory = max(1, keep_in_memory)
        self.prepared: Counter[str] = Counter()  # person -> times references were aligned and embedded
        self.encodes: Counter[str] = Counter()   # person -> times the reference branch ran
        self._digests: dict[tuple[str, int, int], str] = {}
        self._references: dict[str, PersonReferences] = {}
        self._caches: OrderedDict[tuple[str, str, str], ReferenceCache] = OrderedDict()

    # ------------------------------------------------------------------ people and files
    @property
    def persons(self) -> list[str]:
        """Sub-folders that hold at least one image, by name (hidden folders, e.g. the cache, excluded)."""
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and list_images(p))

    def files(self, person: str) -> list[Path]:
        """The person's reference photos, sorted by name."""
        files = list_images(self.root / person) if not person.startswith(".") and (self.root / person).is_dir() else []
        if not files:
            raise ValueError(f"{person!r} is not a person of the album {self.root} (persons: {', '.join(self.persons)})")
        return files

    def _file_digest(self, path: Path) -> str:
        stat = path.stat()
        memo = (str(path), stat.st_size, stat.st_mtime_ns)  # contents are hashed again only when the file changed
        if memo not in self._digests:
            self._digests[memo] = file_digest(path)
        return self._digests[memo]

    def faces_key(self, person: str) -> str:
        """Hash of what the person's aligned references depend on: the files' names and contents and the settings."""
        files = [(p.name, self._file_digest(p)) for p in self.files(person)]
        return _digest(json.dumps([FACES_FORMAT, self.crop_size, self.embedder.name, self.max_side, self.fallback,
                                   files]))

    def key(self) -> str:
        """Hash of the whole album as matching and restoring see it: every person's ``faces_key``.
        Outputs made with an album record it; it changes when any person's files or settings change."""
        return _digest(json.dumps([(person, self.faces_key(person)) for person in self.persons]))

    def _path(self, person: str, suffix: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / f"{person}-{suffix}.safetensors"

    # ------------------------------------------------------------------ aligned references
    def references(self, person: str) -> PersonReferences:
        """The person's aligned, embedded references: from memory, the disk cache, or prepared now."""
        key = self.faces_key(person)
        held = self._references.get(person)
        if held is not None and held.key == key:
            return held
        refs = self._read_references(person, key)
        if refs is None:
            refs = self._prepare(person, key)
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
        refs = self._person(person, key, names, stack, embeddings, landmarks, skipped, notes)
        self._write_references(refs)
        return refs

    def _person(self, person, key, names, crops, embeddings, landmarks, skipped, notes) -> PersonReferences:
        if names:
            report = verify_embeddings(embeddings, names, None, self.embedder.threshold, LQ_MARGIN, self.embedder.name)
        else:
            report = VerificationReport(self.embedder.name, self.embedder.threshold, self.embedder.threshold - LQ_MARGIN)
        return PersonReferences(person, key, names, crops, embeddings, landmarks, skipped, notes, report)

    def _write_references(self, refs: PersonReferences) -> None:
        path = self._path(refs.person, f"{refs.key}.faces")
        if path is None:
            return
        from safetensors.torch import save_file

        meta = {"format": FACES_FORMAT, "person": refs.person, "key": refs.key, "names": json.dumps(refs.names),
                "skipped": json.dumps(refs.skipped), "notes": json.dumps(refs.notes), "embedder": self.embedder.name}
        tensors = {"crops": torch.from_numpy(np.ascontiguousarray(refs.crops)),
                   "embeddings": refs.embeddings.contiguous(),
                   "landmarks": torch.from_numpy(np.ascontiguousarray(refs.landmarks, dtype=np.float64))}
        try:
            with atomic_path(path) as tmp:
                save_file(tensors, str(tmp), metadata=meta)
        except OSError as exc:  # a read-only album still works, from memory
            warnings.warn(f"{path}: cannot write the album cache ({exc}); references are kept in memory only",
                          stacklevel=3)
            return
        self._remove_stale(refs.person, refs.key)

    def _read_references(self, person: str, key: str) -> PersonReferences | None:
        path = self._path(person, f"{key}.faces")
        if path is None or not path.is_file():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                if meta.get("format") != FACES_FORMAT or meta.get("key") != key:
                    return None
                crops, embeddings = handle.get_tensor("crops").numpy(), handle.get_tensor("embeddings").float()
                landmarks = handle.get_tensor("landmarks").numpy()
            return self._person(person, key, json.loads(meta["names"]), crops, embeddings, landmarks,
                                json.loads(meta["skipped"]), json.loads(meta["notes"]))
        except Exception:  # noqa: BLE001 - a damaged cache file is rebuilt, never trusted
            return None

    def _remove_stale(self, person: str, key: str) -> None:
        """Remove the person's cache files made from other contents of their folder."""
        for path in self.cache_dir.glob(f"{glob.escape(person)}-*.safetensors"):
            found = _CACHE_NAME.match(path.name[len(person) + 1:])
            if found and found["key"] != key:
                path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ reference caches
    def reference_cache(self, person: str, model) -> ReferenceCache:
        """Keys/values of all the person's references for ``model`` (rows in ``references(person).names``
        order): from memory, from disk, or encoded now (counted in ``encodes``) and saved."""
        refs = self.references(person)
        if not len(refs):
            raise ValueError(f"{person}: no usable reference photo: " + "; ".join(refs.problems()))
        mkey = model_key(model)
        slot = (person, refs.key, mkey)
        if slot in self._caches:
            self._caches.move_to_end(slot)
            return self._caches[slot]
        path = self._path(person, f"{refs.key}-{mkey}")
        cache = None
        if path is not None and path.is_file():
            try:
                cache = ReferenceCache.load(path, device=model.device)
            except Exception:  # noqa: BLE001 - a damaged cache file is encoded again
                cache = None
            if cache is not None and (len(cache) != len(refs) or cache.weights_fingerprint != model.weights_fingerprint()):
                cache = None
        if cache is None:
            cache = model.encode_references(list(refs.crops))
            self.encodes[person] += 1
            if path is not None:
                try:
                    cache.save(path)
                except OSError as exc:
                    warnings.warn(f"{path}: cannot write the reference cache ({exc}); kept in memory only",
                                  stacklevel=2)
        self._caches[slot] = cache
        while len(self._caches) > self.keep_in_memory:
            self._caches.popitem(last=False)
        return cache

    # ------------------------------------------------------------------ identity
    @property
    def threshold(self) -> float:
        """Same-person cosine similarity of a face to a person's identity (verify's input threshold)."""
        return self.embedder.threshold - LQ_MARGIN

    def identify(self, embedding: torch.Tensor) -> Match:
        """Match one face embedding [D] (or [1, D]) to the album: the person whose identity (mean of
        their references, outliers left out) is most similar, when it reaches ``threshold``."""
        emb = F.normalize(torch.as_tensor(embedding).float().reshape(-1), dim=0)
        sims = {}
        for person in self.persons:
            refs = self.references(person)
            if len(refs):
                sims[person] = float(refs.centre @ emb)
        if not sims:
            return Match(None, None, None, self.threshold, {})
        closest = max(sims, key=lambda p: (sims[p], p))
        person = closest if sims[closest] >= self.threshold else None
        return Match(person, sims[closest], closest, self.threshold, sims)

    def problems(self) -> list[str]:
        """Every person's unusable files and disagreeing references (prepares them if needed)."""
        return [line for person in self.persons for line in self.references(person).problems()]


"""One album person's reference photos, aligned and embedded (:class:`PersonReferences`), and how a
reference photo becomes an aligned crop (:func:`align_reference`)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..faces.align import align_face, can_hold_a_face, is_aligned_crop
from ..faces.detect import detect_faces
from ..faces.identity import FaceEmbedder
from ..faces.verify import LQ_MARGIN, VerificationReport, verify_embeddings


def align_reference(image: np.ndarray, size: int = 512, max_side: int = 800, fallback: str = "cnn"
                    ) -> tuple[np.ndarray, str]:
    """A reference photo (uint8 RGB (H, W, 3)) -> (its aligned ``size`` crop, how it was made).

    An image that already is an FFHQ-aligned crop (aligning it is nearly a plain resize) is used as
    it is, resized to ``size``; from a whole photo the largest face is aligned. Raises ValueError
    when no face is found.
    """
    if not can_hold_a_face(image.shape, max_side):
        raise ValueError(f"no face found ({image.shape[1]}x{image.shape[0]} px is too small to hold one)")
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
        return F.normalize(self.embeddings[self.usable].mean(0), dim=0)

    @property
    def usable(self) -> list[int]:
        """Rows to choose references from: all but the outliers (the ones that look like another
        person); all rows when every one is an outlier (no majority to tell who the person is)."""
        outliers = {c.name for c in self.verification.outliers}
        return [i for i, name in enumerate(self.names) if name not in outliers] or list(range(len(self.names)))

    def problems(self) -> list[str]:
        """One line per unused file and per disagreement among the references."""
        lines = [f"{self.person}/{name}: not used ({why})" for name, why in self.skipped.items()]
        return lines + [f"{self.person}: {line}" for line in self.verification.problems()]


def person_references(embedder: FaceEmbedder, person: str, key: str, names: list[str], crops: np.ndarray,
                      embeddings: torch.Tensor, landmarks: np.ndarray, skipped: dict[str, str],
                      notes: dict[str, str]) -> PersonReferences:
    """A :class:`PersonReferences` with its references verified against each other by ``embedder``'s
    threshold (an empty set gets an empty report)."""
    if names:
        report = verify_embeddings(embeddings, names, None, embedder.threshold, LQ_MARGIN, embedder.name)
    else:
        report = VerificationReport(embedder.name, embedder.threshold, embedder.threshold - LQ_MARGIN)
    return PersonReferences(person, key, names, crops, embeddings, landmarks, skipped, notes, report)

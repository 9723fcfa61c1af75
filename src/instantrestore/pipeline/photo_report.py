"""``PhotoReport``: what ``FaceRestorer.enhance`` did to one photo, face by face."""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Iterator


@dataclass
class PhotoReport:
    """What ``enhance`` did to one photo: one dict per detected face (largest first) and photo-level
    ``problems`` (no face found, detection failed). Iterates, indexes and measures like ``faces``.

    Each face dict: ``index``, ``box`` (x0, y0, x1, y1 photo pixels), ``size``, ``detector``,
    ``person`` (None: matched no one), ``similarity`` (the closest person's score: mean cosine similarity
    to their references), ``closest``, ``second`` and ``margin`` (the runner-up and the lead over them),
    ``degradation`` (the estimate the match was judged at),
    ``references`` (file names used, best first), ``restored`` ('references' | 'blind' | None = kept),
    ``fallback`` (None, or {'step', 'reason'}: why it was not restored with references), ``warnings``,
    ``matrix`` (2x3 photo -> crop), ``crop_size``, ``restored_size`` (side of the pasted crop),
    ``strength`` (the reference strength used; None when restored blind or kept); once pasted or
    refused as too small, ``face_side`` / ``enlarged`` / ``pasted_side`` / ``paste_scale`` / ``mask`` /
    ``color_fix`` (``PhotoPaste.paste``). ``output_size``: (width, height) of the returned photo.

    ``seconds``: wall time per step over the photo's faces ('detect_align', 'embed_match', 'select',
    'encode', 'restore', 'paste'); kept out of ``to_json`` so that reports of equal runs are equal.
    ``crops``: per face, (its aligned crop, its restored crop or None when kept), also not in ``to_json``.
    """

    photo_size: tuple[int, int]  # (width, height)
    output_size: tuple[int, int] | None = None
    faces: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict, repr=False)
    crops: list[list] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.faces)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.faces)

    def __getitem__(self, index: int) -> dict:
        return self.faces[index]

    @property
    def restored(self) -> int:
        """How many faces were restored and pasted (with references or blind)."""
        return sum(f["restored"] is not None for f in self.faces)

    def to_json(self) -> dict:
        return {"photo_size": list(self.photo_size), "output_size": list(self.output_size or self.photo_size),
                "faces": self.faces, "problems": self.problems}


@contextlib.contextmanager
def timed(seconds: dict[str, float], step: str) -> Iterator[None]:
    """Add the wall time of the block to ``seconds[step]`` (also when it raises): ``PhotoReport.seconds``,
    a video's time per part."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[step] = seconds.get(step, 0.0) + time.perf_counter() - start

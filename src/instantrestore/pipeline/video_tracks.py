"""Pass 1 of a video: decode, detect, embed, track, smooth and decide who each track is.

``find_tracks`` reads the frames once and keeps only what pass 2 needs, small next to the video: per
track its smoothed landmarks per frame ([T, 68, 2] float32), the person its frames voted for, the
references chosen for it once, its strength and seed. Faces are detected on every ``detect_every``-th
frame (dlib HOG, no CNN fallback: seconds per frame); the frames between are filled by interpolating
the landmarks of the detections around them (``faces.tracking.fill_landmarks``: both sides are known
in a two-pass job). Each detection is aligned and embedded; ``Album.identify`` matches it as for a
photo, and a track's person is the vote over its frames (``faces.tracking.vote``), so one badly
matched frame never swaps a person mid-shot. A track detected fewer than ``min_detections`` times
(a false detection, a face glimpsed) is reported and left as it is.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

import numpy as np

from ..faces.align import align_face
from ..faces.detect import Face, detect_faces
from ..faces.tracking import Detection, Tracker, fill_landmarks, smooth_landmarks, vote
from ..utils.images import uint8_to_tensor
from .person_crop import choose_references, resolve_strength
from .strength import estimate_degradation

if TYPE_CHECKING:
    from .face_restorer import FaceRestorer
    from .video_io import VideoFrame


@dataclass
class TrackPlan:
    """One face track and how pass 2 restores it. ``landmarks`` [T, 68, 2] smoothed, for frames
    ``first``..``first + T - 1``; ``restored``: 'references', 'blind' or None (kept as it is)."""

    id: int
    first: int
    landmarks: np.ndarray = field(repr=False)
    detected: int
    person: str | None = None
    similarity: float | None = None
    vote_share: float = 0.0
    votes: dict[str, int] = field(default_factory=dict)
    references: list[str] = field(default_factory=list)
    strength: float | None = None
    seed: int = 0
    restored: str | None = None
    fallback: dict | None = None
    box: list[float] = field(default_factory=list)

    @property
    def last(self) -> int:
        return self.first + len(self.landmarks) - 1

    def covers(self, frame: int) -> bool:
        return self.first <= frame <= self.last

    def face_at(self, frame: int) -> Face:
        """The track's face on ``frame`` (smoothed landmarks) for ``faces.align.align_face``."""
        points = self.landmarks[frame - self.first].astype(np.float64)
        lo, hi = points.min(0), points.max(0)
        return Face(box=(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])), landmarks68=points,
                    landmarks5=np.zeros((5, 2)), detector="track")

    def to_json(self) -> dict:
        return {"track": self.id, "first_frame": self.first, "last_frame": self.last, "frames": len(self.landmarks),
                "detected_frames": self.detected, "person": self.person,
                "similarity": None if self.similarity is None else round(self.similarity, 4),
                "vote_share": round(self.vote_share, 4), "votes": self.votes, "references": self.references,
                "strength": self.strength, "seed": self.seed, "restored": self.restored, "fallback": self.fallback,
                "first_box": self.box}


@dataclass
class _Seen:
    """What pass 1 keeps about one detection besides the tracker's record."""

    person: str | None
    similarities: dict[str, float]


def find_tracks(frames: Iterable["VideoFrame"], restorer: "FaceRestorer", detect_every: int = 1, seed: int = 0,
                min_detections: int = 3, max_side: int = 800, min_share: float = 0.5,
                clock: Callable | None = None) -> tuple[list[TrackPlan], list[float]]:
    """Pass 1 over ``frames`` (see the module docs) with ``restorer``'s album, embedder, crop size,
    ``unknown`` and strength. Returns (the tracks, each frame's time in seconds). ``clock(step)``: a
    context manager timing 'decode' and 'detect_track' (default: none)."""
    if detect_every < 1:
        raise ValueError(f"detect_every must be at least 1, got {detect_every}")
    clock = clock or (lambda step: contextlib.nullcontext())
    embedder = restorer.embedder
    gate = None if embedder is None else embedder.threshold - 0.1
    tracker = Tracker(min_similarity=gate, max_gap=2 * detect_every + 1)
    seen: dict[tuple[int, int], _Seen] = {}
    largest: dict[int, tuple[float, np.ndarray]] = {}  # track -> (face size, aligned crop): one crop per track
    times: list[float] = []
    iterator = iter(frames)
    while True:
        with clock("decode"):
            frame = next(iterator, None)
        if frame is None:
            break
        times.append(frame.time)
        if frame.index % detect_every:
            continue
        with clock("detect_track"):
            detections = []
            for face in detect_faces(frame.image, max_side=max_side, fallback="none"):
                aligned = align_face(frame.image, face, restorer.crop_size)
                info = _identify(restorer, aligned.crop)
                detections.append((Detection(frame.index, face.box, face.landmarks68, info[0], face.score), info))
            ids = tracker.update(frame.index, [d for d, _ in detections])
            for track_id, (det, (_, person, sims, crop)) in zip(ids, detections):
                seen[(track_id, frame.index)] = _Seen(person, sims)
                if det.size > largest.get(track_id, (-1.0, None))[0]:
                    largest[track_id] = (det.size, crop)
    with clock("detect_track"):
        plans = [_plan(track, seen, largest[track.id][1], times, restorer, seed, min_detections, min_share,
                       detect_every) for track in tracker.finish()]
    return plans, times


def _identify(restorer: "FaceRestorer", crop: np.ndarray):
    """(embedding or None, matched person, similarities per person, the crop) of one aligned detection."""
    if restorer.embedder is None:
        return None, None, {}, crop
    embedding = restorer.embedder.embed(uint8_to_tensor(crop))[0]
    if restorer.album is None:
        return embedding.numpy(), None, {}, crop
    persons = None if restorer.only_person is None else [restorer.only_person]
    match = restorer.album.identify(embedding, round(estimate_degradation(crop), 4), persons)
    return embedding.numpy(), match.person, dict(match.similarities), crop


def _plan(track, seen: dict, crop: np.ndarray, times: list[float], restorer: "FaceRestorer", seed: int,
          min_detections: int, min_share: float, detect_every: int) -> TrackPlan:
    """A finished track's plan: smoothed landmarks, the vote, references, strength (see ``find_tracks``)."""
    frames, points = fill_landmarks(track)
    smooth = smooth_landmarks(frames, points, np.asarray(times)[frames])
    if frames[-1] + detect_every > len(times) - 1:  # seen on the last detected frame: held to the video's end
        smooth = np.concatenate([smooth, np.repeat(smooth[-1:], len(times) - 1 - frames[-1], axis=0)])
    infos = [seen[(track.id, f)] for f in sorted(track.detections)]
    plan = TrackPlan(id=track.id, first=int(frames[0]), landmarks=smooth.astype(np.float32),
                     detected=len(track.detections), seed=seed + track.id,
                     box=[round(float(v), 1) for v in track.detections[track.first].box])
    if plan.detected < min_detections:
        plan.fallback = {"step": "track", "reason": f"detected on {plan.detected} frame(s), fewer than "
                                                    f"{min_detections}: taken for a false detection, kept as it is"}
        return plan
    if restorer.album is not None:
        person, share, votes = vote([i.person for i in infos], min_share)
        plan.person, plan.vote_share, plan.votes = person, share, votes
        scores = [i.similarities.get(person) for i in infos] if person else []
        closest = max(restorer.album.persons, key=lambda p: np.mean([i.similarities.get(p, -1) for i in infos]))
        scores = [s for s in scores if s is not None] or [i.similarities.get(closest, np.nan) for i in infos]
        plan.similarity = float(np.nanmean(scores)) if scores else None
        if person is None:
            why = (f"no person holds {min_share:.0%} of its frames' matches (votes {votes or 'none'}; "
                   f"closest {closest})")
    else:
        why = "no album given"
    if plan.person is None:
        if restorer.unknown == "keep":
            plan.fallback = {"step": "match", "reason": f"{why}; kept as it is"}
            return plan
        plan.fallback = {"step": "match", "reason": f"{why}; restored blind"}
        plan.restored = "blind"
        return plan
    try:
        plan.references = choose_references(restorer, crop, plan.person)
        plan.strength = resolve_strength(restorer, crop, True)
        plan.restored = "references"
    except Exception as exc:  # noqa: BLE001 - one track's failure never costs the others
        plan.fallback = {"step": "select", "reason": f"{type(exc).__name__}: {exc}; kept as it is"}
    return plan

"""Face tracks across video frames: association, gap filling, landmark smoothing and the identity vote.

Pure NumPy, no model: a caller detects faces (``faces.detect``) on some frames, embeds them, and

    tracker = Tracker(min_similarity=0.82)
    for frame, detections in detected:                 # frames in order, a list of Detection each
        tracker.update(frame, detections)
    tracks = tracker.finish()                          # every track, closed, in order of appearance
    points = smooth_landmarks(*fill_landmarks(track), times)   # one (68, 2) per frame, steady
    person, share = vote(per_frame_people)             # one decision per track

Association (``Tracker.update``): each open track is paired with at most one detection of the
frame, greedily by score = box IoU + ``embedding_weight`` x cosine similarity to the track's mean
embedding. A pair needs overlap (IoU >= ``min_iou``, or the centres closer than ``max_shift`` face
sizes) and, when both have embeddings, similarity >= ``min_similarity``: two people crossing keep
their own tracks, and a face that reappears where another was is a new track. A track unseen for
more than ``max_gap`` frames is closed; a detection paired with no track opens one.

Smoothing: a One-Euro filter (Casiez et al., CHI 2012: a low-pass whose cutoff rises with the
speed, so a still face stops jittering and a moving one does not lag) run forward and backward
over each track and averaged, which cancels most of the lag of either direction.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass(frozen=True, eq=False)
class Detection:
    """A face found on ``frame``: ``box`` (x0, y0, x1, y1) pixels, ``landmarks`` (68, 2) pixels,
    ``embedding`` unit vector [D] (None: not embedded), ``score`` the detector's."""

    frame: int
    box: tuple[float, float, float, float]
    landmarks: np.ndarray = field(repr=False)
    embedding: np.ndarray | None = field(default=None, repr=False)
    score: float = 0.0

    @property
    def size(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


@dataclass(eq=False)
class Track:
    """One face over frames: ``detections`` by frame (only the frames it was detected on)."""

    id: int
    detections: dict[int, Detection] = field(default_factory=dict)
    _embedding_sum: np.ndarray | None = field(default=None, repr=False)

    def add(self, det: Detection) -> None:
        """Record ``det`` (its frame's detection of this face)."""
        self.detections[det.frame] = det
        if det.embedding is not None:
            e = np.asarray(det.embedding, dtype=np.float64)
            self._embedding_sum = e.copy() if self._embedding_sum is None else self._embedding_sum + e

    @property
    def first(self) -> int:
        return min(self.detections)

    @property
    def last(self) -> int:
        return max(self.detections)

    @property
    def latest(self) -> Detection:
        return self.detections[self.last]

    def mean_embedding(self) -> np.ndarray | None:
        """The unit mean of the track's embeddings (None when none was embedded)."""
        if self._embedding_sum is None:
            return None
        return self._embedding_sum / max(float(np.linalg.norm(self._embedding_sum)), 1e-12)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes (0 for disjoint or empty boxes)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _centre_shift(a: Sequence[float], b: Sequence[float]) -> float:
    """Distance between the boxes' centres in units of the larger box side."""
    side = max(a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1], 1e-9)
    return math.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2) / side


class Tracker:
    """Associates per-frame detections into tracks (see the module docs for the rule).

    min_iou / max_shift: the overlap a pair needs (either is enough). min_similarity: the least
    cosine similarity between a detection's and a track's mean embedding (None: embeddings only
    rank, never refuse). max_gap: frames a track may go unseen (with detection every k frames, at
    least k). embedding_weight: the similarity's part of the score."""

    def __init__(self, min_iou: float = 0.2, max_shift: float = 0.5, min_similarity: float | None = None,
                 max_gap: int = 5, embedding_weight: float = 1.0):
        if max_gap < 1:
            raise ValueError(f"max_gap must be at least 1, got {max_gap}")
        self.min_iou, self.max_shift, self.min_similarity = min_iou, max_shift, min_similarity
        self.max_gap, self.embedding_weight = max_gap, embedding_weight
        self.open: list[Track] = []
        self.closed: list[Track] = []
        self._next_id = 0

    def _score(self, track: Track, det: Detection) -> float | None:
        last = track.latest
        iou = box_iou(last.box, det.box)
        if iou < self.min_iou and _centre_shift(last.box, det.box) > self.max_shift:
            return None
        mean = track.mean_embedding()
        if mean is None or det.embedding is None:
            return iou
        similarity = float(np.dot(mean, det.embedding) / max(float(np.linalg.norm(det.embedding)), 1e-12))
        if self.min_similarity is not None and similarity < self.min_similarity:
            return None
        return iou + self.embedding_weight * similarity

    def update(self, frame: int, detections: Sequence[Detection]) -> list[int]:
        """Add one frame's detections (frames in increasing order); returns the track id of each."""
        for track in [t for t in self.open if frame - t.last > self.max_gap]:
            self.open.remove(track)
            self.closed.append(track)
        pairs = sorted(((score, ti, di) for ti, track in enumerate(self.open) for di, det in enumerate(detections)
                        if (score := self._score(track, det)) is not None), key=lambda p: (-p[0], p[1], p[2]))
        assigned: dict[int, Track] = {}
        used_tracks: set[int] = set()
        for _, ti, di in pairs:
            if ti in used_tracks or di in assigned:
                continue
            used_tracks.add(ti)
            assigned[di] = self.open[ti]
        ids = []
        for di, det in enumerate(detections):
            track = assigned.get(di)
            if track is None:
                track = Track(self._next_id)
                self._next_id += 1
                self.open.append(track)
            track.add(det if det.frame == frame else Detection(frame, det.box, det.landmarks, det.embedding, det.score))
            ids.append(track.id)
        return ids

    def finish(self) -> list[Track]:
        """Close every track; all tracks, ordered by first frame then id."""
        self.closed.extend(self.open)
        self.open = []
        return sorted(self.closed, key=lambda t: (t.first, t.id))


def fill_landmarks(track: Track) -> tuple[np.ndarray, np.ndarray]:
    """(frames [T] = first..last, landmarks [T, 68, 2]): detected frames as found, the frames between
    detections (skipped by ``detect_every`` or missed) linearly interpolated."""
    known = sorted(track.detections)
    frames = np.arange(known[0], known[-1] + 1)
    points = np.stack([track.detections[f].landmarks for f in known]).astype(np.float64)
    flat = points.reshape(len(known), -1)
    filled = np.stack([np.interp(frames, known, flat[:, j]) for j in range(flat.shape[1])], axis=1)
    return frames, filled.reshape(len(frames), *points.shape[1:])


def _one_euro_pass(points: np.ndarray, times: np.ndarray, min_cutoff: float, beta: float, d_cutoff: float
                   ) -> np.ndarray:
    def alpha(cutoff, dt):  # the smoothing factor of a low-pass at ``cutoff`` Hz over a step of ``dt`` s
        return 1.0 / (1.0 + 1.0 / (2 * math.pi * cutoff * dt))

    out = np.empty_like(points)
    out[0] = points[0]
    speed = np.zeros_like(points[0])
    for t in range(1, len(points)):
        dt = max(float(times[t] - times[t - 1]), 1e-6)
        raw_speed = (points[t] - out[t - 1]) / dt
        speed = speed + alpha(d_cutoff, dt) * (raw_speed - speed)
        cutoff = min_cutoff + beta * np.abs(speed)
        out[t] = out[t - 1] + alpha(cutoff, dt) * (points[t] - out[t - 1])
    return out


def one_euro(points: np.ndarray, times: np.ndarray, min_cutoff: float = 1.5, beta: float = 0.02,
             d_cutoff: float = 1.0) -> np.ndarray:
    """One-Euro filter along axis 0 of ``points`` [T, ...] sampled at ``times`` [T] seconds (uneven
    steps allowed: variable frame rate), run forward and backward and averaged (no net lag).
    min_cutoff (Hz): the smoothing of a still point; beta: how fast the cutoff rises with the speed
    (pixels/s). Pure: returns a new float64 array of the same shape."""
    points = np.asarray(points, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if len(points) != len(times):
        raise ValueError(f"{len(points)} samples but {len(times)} times")
    if len(points) < 3:
        return points.copy()
    forward = _one_euro_pass(points, times, min_cutoff, beta, d_cutoff)
    backward = _one_euro_pass(points[::-1], -times[::-1], min_cutoff, beta, d_cutoff)[::-1]
    return (forward + backward) / 2


def smooth_landmarks(frames: np.ndarray, landmarks: np.ndarray, times: np.ndarray | None = None,
                     min_cutoff: float = 1.5, beta: float = 0.02) -> np.ndarray:
    """``one_euro`` over a track's filled landmarks [T, 68, 2]; ``times`` seconds per frame (default
    the frame numbers at 25 fps)."""
    times = np.asarray(frames, dtype=np.float64) / 25.0 if times is None else times
    return one_euro(landmarks, times, min_cutoff, beta)


def vote(people: Sequence[str | None], min_share: float = 0.5) -> tuple[str | None, float, dict[str, int]]:
    """One person for a track from its frames' matches (None: that frame matched no one).

    The most frequent person wins if they hold at least ``min_share`` of all the frames voted
    (frames matching no one count against); else no one. Ties go to no one. Returns (person,
    their share of the votes, votes per person)."""
    counts = Counter(p for p in people if p is not None)
    if not people or not counts:
        return None, 0.0, dict(counts)
    ranked = counts.most_common()
    best, votes = ranked[0]
    if len(ranked) > 1 and ranked[1][1] == votes:
        return None, votes / len(people), dict(counts)
    share = votes / len(people)
    return (best if share >= min_share else None), share, dict(counts)

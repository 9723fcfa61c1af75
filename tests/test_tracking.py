"""faces.tracking: tracks through entering, leaving and crossing faces; gap filling, smoothing, the vote."""
from __future__ import annotations

import numpy as np
import pytest

from instantrestore.faces.tracking import (Detection, Tracker, box_iou, fill_landmarks, one_euro, smooth_landmarks,
                                           vote)

A, B = np.eye(4)[0], np.eye(4)[1]  # two people's embeddings (orthogonal: cosine 0)


def _det(frame: int, x: float, y: float = 50.0, emb: np.ndarray | None = None, side: float = 40.0) -> Detection:
    lm = np.stack([np.linspace(x, x + side, 68), np.full(68, y + side / 2)], axis=1)
    return Detection(frame, (x, y, x + side, y + side), lm, emb)


def test_box_iou() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def test_two_people_crossing_keep_their_tracks() -> None:
    tracker = Tracker(min_similarity=0.5)
    ids = []
    for f in range(21):  # A walks right, B walks left; they overlap fully at frame 10
        ids.append(tracker.update(f, [_det(f, 10 + 8 * f, emb=A), _det(f, 170 - 8 * f, emb=B)]))
    tracks = tracker.finish()
    assert len(tracks) == 2
    for track, emb in zip(tracks, (A, B)):
        assert all(np.array_equal(d.embedding, emb) for d in track.detections.values())
        assert sorted(track.detections) == list(range(21))


def test_without_embeddings_overlap_alone_links_frames() -> None:
    tracker = Tracker()
    for f in range(5):
        tracker.update(f, [_det(f, 10 + 3 * f)])
    assert [len(t.detections) for t in tracker.finish()] == [5]


def test_faces_entering_and_leaving_open_and_close_tracks() -> None:
    tracker = Tracker(max_gap=2, min_similarity=0.5)
    for f in range(12):
        dets = [_det(f, 10, emb=A)] if f < 6 else []
        if f >= 3:
            dets.append(_det(f, 150, emb=B))
        tracker.update(f, dets)
    tracker.update(20, [_det(20, 10, emb=A)])  # A comes back after a long gap: a new track
    tracks = tracker.finish()
    assert [(t.first, t.last) for t in tracks] == [(0, 5), (3, 11), (20, 20)]


def test_someone_else_appearing_in_place_is_a_new_track() -> None:
    tracker = Tracker(min_similarity=0.5)
    for f in range(4):
        tracker.update(f, [_det(f, 10, emb=A if f < 2 else B)])
    assert [sorted(t.detections) for t in tracker.finish()] == [[0, 1], [2, 3]]


def test_fill_landmarks_interpolates_skipped_frames() -> None:
    tracker = Tracker(max_gap=4)
    for f in (0, 3, 6):
        tracker.update(f, [_det(f, 10 + 5 * f)])
    frames, points = fill_landmarks(tracker.finish()[0])
    assert list(frames) == list(range(7))
    assert points[1, 0, 0] == pytest.approx(15.0) and points[5, 0, 0] == pytest.approx(35.0)


def test_one_euro_removes_jitter_without_lagging_a_steady_motion() -> None:
    rng = np.random.default_rng(0)
    times = np.arange(60) / 30
    truth = np.stack([100 + 40 * times, 80 + 0 * times], axis=1)[:, None, :]  # 40 px/s to the right
    noisy = truth + rng.normal(0, 1.5, truth.shape)
    smooth = one_euro(noisy, times)
    jitter = lambda x: np.abs(np.diff(x - truth, axis=0)).mean()  # noqa: E731
    assert jitter(smooth) < 0.5 * jitter(noisy)
    assert abs(float((smooth - truth)[5:-5, 0, 0].mean())) < 0.5  # forward-backward: no net lag
    assert np.array_equal(one_euro(noisy[:2], times[:2]), noisy[:2])
    assert smooth_landmarks(np.arange(60), noisy).shape == noisy.shape


def test_vote_one_wrong_frame_does_not_swap_the_person() -> None:
    assert vote(["ann"] * 9 + ["bob"])[0] == "ann"
    assert vote(["ann", None, None, None])[0] is None  # a quarter of the frames is not enough
    assert vote(["ann", "bob"])[0] is None  # a tie decides no one
    person, share, counts = vote(["ann", "ann", None])
    assert (person, round(share, 3), counts) == ("ann", 0.667, {"ann": 2})
    assert vote([]) == (None, 0.0, {})

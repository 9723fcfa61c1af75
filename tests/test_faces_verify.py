"""faces/verify.py: which detections of a photo are faces to restore (``screen_detections``)."""
from __future__ import annotations

import numpy as np

from instantrestore.faces.detect import Face
from instantrestore.faces.verify import screen_detections


def face(box, score: float = 2.0, detector: str = "hog") -> Face:
    return Face(box=tuple(float(v) for v in box), landmarks68=np.zeros((68, 2)), landmarks5=np.zeros((5, 2)),
                score=score, detector=detector)


def test_separate_clear_faces_are_all_kept():
    faces = [face((0, 0, 100, 100), 2.0), face((150, 0, 230, 80), 1.2)]
    assert screen_detections(faces) == [None, None]
    assert screen_detections([]) == []


def test_a_box_mostly_inside_a_larger_face_is_a_duplicate():
    faces = [face((0, 0, 100, 100), 2.0), face((20, 20, 90, 90), 1.8), face((90, 0, 190, 100), 1.9)]
    reasons = screen_detections(faces)
    assert reasons[0] is None and reasons[2] is None  # 10 % of its box inside face 0: another face
    assert reasons[1].startswith("duplicate of face 0 (100% of its box")


def test_weak_detection_beside_a_clear_face_is_not_a_face():
    """As in an sr8-degraded 256 px photo: a 52 px HOG hit (score 0.19) in a dark corner beside the face (2.27)."""
    faces = [face((46, 64, 201, 219), 2.27), face((3, 20, 55, 72), 0.19)]
    reasons = screen_detections(faces)
    assert reasons[0] is None
    assert reasons[1] == "weak detection, likely not a face: score 0.19 < 0.25 x 2.27 of the photo's clearest face"
    assert screen_detections([face((3, 20, 55, 72), 0.19)]) == [None]  # alone, it is the photo's best


def test_second_hog_detection_without_a_face_in_its_crop_is_dropped_cnn_is_not_rechecked():
    blank = np.full((256, 256, 3), 128, np.uint8)
    two = [face((0, 0, 100, 100), 1.0), face((200, 0, 290, 90), 0.9)]
    hog = screen_detections(two, [blank, blank])
    assert hog[0] is None  # the photo's clearest detection is why it has a face at all
    assert hog[1].startswith("no face in its aligned crop (face score -inf")
    cnn = [face((0, 0, 100, 100), 1.0, "cnn"), face((200, 0, 290, 90), 0.9, "cnn")]
    assert screen_detections(cnn, [blank, blank]) == [None, None]

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from instantrestore.cli import main
from instantrestore.data.probes import iris_color, mark_contrast
from instantrestore.data.synthetic import MAX_MARKS, MIN_MARKS, NUM_IBUG, Identity, render, sample_identity
from instantrestore.data.degradations import random_degrade

MARK_T = 20.0  # mark_contrast threshold: a dark spot is there


@pytest.fixture(scope="module")
def people() -> list[Identity]:
    return [sample_identity(5, i) for i in range(12)]


def test_identity_and_photo_are_deterministic():
    a, b = sample_identity(3, 7), sample_identity(3, 7)
    assert a == b
    x, y = render(a, 2), render(b, 2)
    assert x.image.tobytes() == y.image.tobytes()
    np.testing.assert_array_equal(x.landmarks, y.landmarks)
    assert sample_identity(3, 8) != a and sample_identity(4, 7) != a
    assert render(a, 3).image.tobytes() != x.image.tobytes()


def test_same_picture_at_every_resolution():
    ident = sample_identity(0, 4)
    small, big = render(ident, 1, 128), render(ident, 1, 512)
    assert small.image.shape == (128, 128, 3) and big.image.shape == (512, 512, 3)
    assert big.image.dtype == np.uint8
    # landmarks scale with the size (pixel centres at integer coordinates)
    np.testing.assert_allclose((small.landmarks + 0.5) * 4 - 0.5, big.landmarks, atol=1e-3)
    down = cv2.resize(big.image, (128, 128), interpolation=cv2.INTER_AREA).astype(np.float32)
    assert np.abs(down - small.image).mean() < 6.0
    other = render(sample_identity(0, 5), 1, 128).image.astype(np.float32)
    assert np.abs(other - small.image).mean() > 3 * np.abs(down - small.image).mean()


def test_landmark_layout(people):
    for ident in people[:6]:
        shot = render(ident, 0)
        m = len(ident.marks)
        assert MIN_MARKS <= m <= MAX_MARKS
        assert shot.landmarks.shape == (NUM_IBUG + m, 2) and shot.landmarks.dtype == np.float32
        assert shot.mark_slice == slice(NUM_IBUG, NUM_IBUG + m)
        lm = shot.landmarks
        assert np.all((lm > 0) & (lm < 127))
        # iBUG-68 order, in a face rotated by at most ~8 degrees
        assert lm[0, 0] < lm[8, 0] < lm[16, 0] and lm[8, 1] > lm[57, 1] > lm[33, 1] > lm[27, 1]
        assert lm[36:42, 0].mean() < lm[27, 0] < lm[42:48, 0].mean()
        assert lm[17:22, 1].mean() < lm[36:42, 1].mean() and lm[22:27, 1].mean() < lm[42:48, 1].mean()
        assert lm[48, 0] < lm[51, 0] < lm[54, 0] and lm[62, 1] <= lm[66, 1]
        np.testing.assert_allclose(shot.eye_centers[0], lm[36:42].mean(0), atol=3.0)
        np.testing.assert_allclose(shot.eye_centers[1], lm[42:48].mean(0), atol=3.0)


def _colour_dist(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, float) - np.asarray(b, float)))


def test_iris_colour_is_found_at_the_eye_landmarks(people):
    sclera = (240, 238, 232)
    checked = hetero = 0
    for ident in people:
        for j in range(2):
            shot = render(ident, j)
            for k in range(2):
                eye = shot.landmarks[36 + 6 * k: 42 + 6 * k]
                got = iris_color(shot.image, shot.eye_centers[k], shot.iris_radius, eye)
                true = ident.iris_colors[k]
                assert _colour_dist(got, true) < _colour_dist(got, sclera)
                if _colour_dist(true, ident.skin_color) > 50:  # brown eyes on brown skin are alike
                    assert _colour_dist(got, true) < _colour_dist(got, ident.skin_color)
                assert _colour_dist(got, true) < 75  # lighting and colour cast move it a little
                other = ident.iris_colors[1 - k]
                if _colour_dist(true, other) > 80:  # heterochromia: each eye has its own colour
                    assert _colour_dist(got, true) < _colour_dist(got, other)
                    hetero += 1
                checked += 1
    # control: the same probe on the cheek does not see the iris colour
    shot = render(people[0], 0)
    cheek = shot.landmarks[[2, 31, 48]].mean(0)
    eye = shot.landmarks[36:42] - shot.landmarks[36:42].mean(0) + cheek
    got = iris_color(shot.image, cheek, shot.iris_radius, eye)
    assert _colour_dist(got, people[0].skin_color) < _colour_dist(got, people[0].iris_colors[0])
    assert checked == 48 and hetero >= 2  # seed 5 includes a heterochromatic person


def test_heterochromia_occurs_somewhere():
    assert any(sample_identity(0, i).iris_colors[0] != sample_identity(0, i).iris_colors[1] for i in range(40))


def test_a_dark_mark_at_every_mark_landmark_in_every_photo(people):
    for ident in people:
        for j in range(3):
            shot = render(ident, j)
            for xy in shot.landmarks[shot.mark_slice]:
                assert mark_contrast(shot.image, xy) > MARK_T, (ident.index, j, xy)
    # control: without its marks the same person shows no dark spot there
    ident = people[0]
    bare = render(dataclasses.replace(ident, marks=()), 0)
    shot = render(ident, 0)
    assert all(mark_contrast(bare.image, xy) < 10 for xy in shot.landmarks[shot.mark_slice])


def test_identities_differ_and_photos_of_one_identity_share_marks(people):
    for a, b in zip(people, people[1:]):
        pa = np.array([[m.x, m.y] for m in a.marks])
        pb = np.array([[m.x, m.y] for m in b.marks])
        # no constellation is a copy of another: some mark of a has no counterpart in b
        d = np.linalg.norm(pa[:, None] - pb[None], axis=-1).min(1)
        assert d.max() > 0.02
        assert (a.skin_color, a.iris_colors, a.face_width) != (b.skin_color, b.iris_colors, b.face_width)
    ident = people[1]
    shots = [render(ident, j) for j in range(4)]
    for shot in shots:  # same number of mark rows, and each is a dark spot
        assert shot.mark_slice == shots[0].mark_slice
    # the marks follow the face: mapping canonical marks through each photo's matrix gives its mark rows
    canon = np.array([[m.x, m.y, 1.0] for m in ident.marks])
    for shot in shots:
        np.testing.assert_allclose(canon @ shot.matrix.T, shot.landmarks[shot.mark_slice], atol=1e-3)
    assert len({s.image.tobytes() for s in shots}) == 4


def test_sr8_erases_the_marks_that_the_clean_image_shows(people):
    clean, degraded = [], []
    for ident in people:
        for j in range(2):
            shot = render(ident, j)
            low = random_degrade(shot.image, "sr8", np.random.default_rng([ident.index, j]))
            for xy in shot.landmarks[shot.mark_slice]:
                clean.append(mark_contrast(shot.image, xy))
                degraded.append(mark_contrast(low, xy))
    clean, degraded = np.array(clean), np.array(degraded)
    assert (clean > MARK_T).all()
    assert (degraded > MARK_T).mean() <= 0.05
    assert np.median(degraded) < 0.2 * np.median(clean)


def test_synth_cli_writes_identity_folders_with_landmarks_and_resumes(tmp_path, capsys):
    out = tmp_path / "world"
    args = ["synth", "--out", str(out), "--identities", "2", "--images-per-identity", "3", "--size", "64", "--seed", "9"]
    assert main(args) == 0
    folders = sorted(p.name for p in out.iterdir())
    assert folders == ["synth9_00000", "synth9_00001"]
    side = json.loads((out / "synth9_00001" / "002.json").read_text())
    ident = sample_identity(9, 1)
    np.testing.assert_allclose(side["landmarks"], render(ident, 2, 64).landmarks, atol=1e-3)
    assert (side["width"], side["height"], side["num_ibug"]) == (64, 64, 68)
    assert len(side["landmarks"]) == 68 + len(ident.marks)
    stamp = (out / "synth9_00000" / "000.png").stat().st_mtime_ns
    assert main(args) == 0
    assert "0 image(s)" in capsys.readouterr().out
    assert (out / "synth9_00000" / "000.png").stat().st_mtime_ns == stamp


def test_synth_cli_test_layout(tmp_path):
    out = tmp_path / "test"
    assert main(["synth", "--out", str(out), "--identities", "2", "--images-per-identity", "4", "--size", "64",
                 "--test-layout", "--preset", "sr8", "--refs", "2"]) == 0
    case = out / "synth0_00000"
    assert {p.name for p in case.iterdir()} == {"gt.png", "gt.json", "degraded.png", "conditioning", "degradation.json",
                                                ".instantrestore.json"}  # the record of what synth wrote
    assert sorted(p.name for p in (case / "conditioning").iterdir()) == ["ref_00.json", "ref_00.png", "ref_01.json", "ref_01.png"]
    meta = json.loads((case / "degradation.json").read_text())
    assert meta["preset"] == "sr8" and meta["params"]["scale"] == 8.0


def test_world_styles_change_only_the_marks():
    from instantrestore.data.synthetic import WORLD_STYLES, get_world_style

    for i in range(6):
        classic, detail = sample_identity(5, i), sample_identity(5, i, "detail")
        assert sample_identity(5, i, "classic") == classic and classic.style == "classic" and detail.style == "detail"
        assert dataclasses.replace(detail, marks=classic.marks, style="classic") == classic  # the same person
        lo, hi = WORLD_STYLES["detail"].mark_radius
        assert all(lo <= m.radius * 128 <= hi for m in detail.marks)  # >= 6 px wide: over one 4 px latent cell
        assert all(m.radius * 128 <= 1.5 for m in classic.marks)
    with pytest.raises(ValueError, match="unknown world style 'huge'.*classic, detail"):
        get_world_style("huge")


def test_jittered_rerender_is_a_nearby_copy_of_the_photo():
    person = sample_identity(5, 3, "detail")
    photo, again = render(person, 0), render(person, 0, jitter=7)
    assert again.image.tobytes() == render(person, 0, jitter=7).image.tobytes()  # deterministic
    assert again.image.tobytes() != photo.image.tobytes() != render(person, 0, jitter=8).image.tobytes()
    shift = np.abs(again.landmarks - photo.landmarks).max(1)
    assert 0.0 < np.median(shift) < 4.0  # a small pose change, landmarks exact for the new pose
    other = render(person, 1)  # another photo of the same person moves far more
    assert np.abs(other.landmarks - photo.landmarks).max(1).mean() > 2 * shift.mean()
    for xy in again.landmarks[again.mark_slice]:
        if 8 <= xy.min() and xy.max() <= 120:
            assert mark_contrast(again.image, xy, radius=3.0) > 40  # every mark drawn where its landmark says

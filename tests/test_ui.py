"""ui/: the web UI's callbacks as plain functions (no browser; tests/test_ui_browser.py drives the page).

Random micro weights (the restored pixels mean nothing; who is matched, what the table and the
notices say does) and the real photos of ../shared/realfaces (skipped where absent)."""
from __future__ import annotations

import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from instantrestore import InstantRestore
from instantrestore.pipeline.album import Album
from instantrestore.pipeline.face_restorer import PhotoReport
from instantrestore.ui import AUTO_MATCH, TABLE_COLUMNS, UiContext, attention_at, face_at, face_rows, restore_photo, \
    weights_notice
from instantrestore.ui.session import RestoreResult


@pytest.fixture(scope="module")
def model(micro_weights):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny backbone says it was trained on synthetic faces
        return InstantRestore.from_pretrained(micro_weights / "model")


@pytest.fixture(scope="module")
def album_dir(realfaces_dir, tmp_path_factory):
    """Two persons of celebref, three references each (not the photo restored below)."""
    root = tmp_path_factory.mktemp("album")
    for person, names in (("00022", ("1.png", "3.png", "4.png")), ("00075", ("1.png", "2.png", "4.png"))):
        (root / person).mkdir()
        for name in names:
            (root / person / name).symlink_to(realfaces_dir / "celebref" / person / "references" / name)
    return root


@pytest.fixture(scope="module")
def photo(realfaces_dir) -> np.ndarray:
    """A photo of person 00022: an aligned crop on a wider canvas (a whole photo to detect in)."""
    face = Image.open(realfaces_dir / "celebref" / "00022" / "references" / "0.png").convert("RGB")
    canvas = Image.new("RGB", (700, 600), (40, 60, 80))
    canvas.paste(face, (90, 44))
    return np.asarray(canvas)


def _fake_model(backbone: str, profile: str):
    return SimpleNamespace(config=SimpleNamespace(backbone=backbone, profile=profile, image_size=512),
                           weights_fingerprint=lambda: "0123456789abcdef")


# ------------------------------------------------------------------ no real photos needed
def test_weights_notice_says_plainly_whether_real_faces_are_restored(model):
    tiny = weights_notice(model, "the shipped tiny synthetic model")
    assert "the shipped tiny synthetic model" in tiny and "`tiny`" in tiny
    assert "NOT a restoration" in tiny and "convert-official" in tiny and "final_model_ckpt.pt" in tiny
    random = weights_notice(_fake_model("sd-turbo", "instantrestore"), "--backbone sd-turbo", random_weights=True)
    assert "RANDOM weights" in random and "convert-official" in random
    official = weights_notice(_fake_model("sd-turbo", "official"), "models/instantrestore")
    assert "NOT" not in official and "trained on real faces" in official
    own = weights_notice(_fake_model("sd-turbo", "instantrestore"), "runs/sd-turbo/final")
    assert "runs/sd-turbo/final" in own and "NOT" not in own and "published checkpoint" in own


def test_face_rows_one_per_face_with_person_and_why():
    report = PhotoReport(photo_size=(100, 80), faces=[
        {"index": 0, "person": "ann", "similarity": 0.91234, "closest": "ann", "references": ["a.jpg", "b.jpg"],
         "restored": "references", "fallback": None, "warnings": [], "strength": 0.5},
        {"index": 1, "person": None, "similarity": 0.2, "closest": "bob", "references": [], "restored": "blind",
         "fallback": {"step": "match", "reason": "matches no person; restored blind"}, "warnings": ["w"],
         "strength": None},
        {"index": 2, "person": None, "similarity": None, "closest": None, "references": [], "restored": None,
         "fallback": {"step": "paste", "reason": "failed; kept as it is"}, "warnings": []},
    ])
    rows = face_rows(report)
    assert all(len(row) == len(TABLE_COLUMNS) for row in rows)
    assert rows[0] == [0, "ann", "0.912", "a.jpg, b.jpg", "references", "0.50", ""]
    assert rows[1][1] == "no one (closest bob)" and rows[1][4] == "blind" and rows[1][6] == "matches no person; " \
        "restored blind; w"
    assert rows[2][1] == "no one" and rows[2][4] == "kept" and rows[2][5] == ""


def test_face_at_maps_a_photo_point_into_the_face_under_it():
    # face 0: a 100 px crop of photo x in [50, 150), y in [0, 100); face 1: a small face inside it (2x zoom)
    big = {"index": 0, "matrix": [[1, 0, -50], [0, 1, 0]], "crop_size": 100}
    small = {"index": 1, "matrix": [[2, 0, -200], [0, 2, -40]], "crop_size": 100}
    face, (u, v) = face_at([big, small], (60.0, 10.0))
    assert face is big and (u, v) == (10.0, 10.0)
    face, (u, v) = face_at([big, small], (110.0, 30.0))  # inside both: the smaller face wins
    assert face is small and (u, v) == (20.0, 20.0)
    assert face_at([big, small], (10.0, 10.0)) is None


def test_attention_at_says_why_there_is_no_map(model):
    assert attention_at(UiContext(model), None, (1, 1)) == (None, "restore a photo first, then click a point on a face")
    blind = {"index": 0, "matrix": [[1, 0, 0], [0, 1, 0]], "crop_size": 64, "person": None, "restored": "blind",
             "references": [], "names": []}
    result = RestoreResult(before=np.zeros((64, 64, 3), np.uint8), after=np.zeros((64, 64, 3), np.uint8), rows=[],
                           status="", faces=[blind])
    image, note = attention_at(UiContext(model), result, (200, 200))
    assert image is None and "no face at" in note
    image, note = attention_at(UiContext(model), result, (30, 30))
    assert image is None and "restored blind" in note and "no references" in note


def test_no_photo_or_a_bad_strength_is_refused(model):
    with pytest.raises(ValueError, match="drop a photo"):
        restore_photo(UiContext(model), None)
    with pytest.raises(ValueError, match=r"strength must be a number in \[0, 1\] or 'auto'"):
        restore_photo(UiContext(model), np.zeros((64, 64, 3), np.uint8), strength=1.5)
    with pytest.raises(ValueError, match="uint8"):
        restore_photo(UiContext(model), np.zeros((64, 64, 3), np.float32))


def test_missing_gradio_says_how_to_install(monkeypatch):
    from instantrestore.ui import INSTALL_HINT, build_app

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    with pytest.raises(ImportError, match=r"instantrestore\[ui\]") as info:
        build_app(None)
    assert str(info.value) == INSTALL_HINT


def test_cli_help_and_default_model(capsys):
    from instantrestore.cli import build_parser
    from instantrestore.cli.ui import load_ui_model

    with pytest.raises(SystemExit):
        build_parser().parse_args(["ui", "--help"])
    text = capsys.readouterr().out
    assert "--album" in text and "--port" in text and "--share" in text and "--checkpoint" in text
    assert "NOT" in text and "published" in text  # the help says which weights restore real faces
    args = build_parser().parse_args(["ui", "--device", "cpu"])
    loaded, source, random = load_ui_model(args)
    assert loaded.config.backbone == "tiny" and "shipped tiny synthetic model" in source and not random
    assert "trained only on synthetic faces" in capsys.readouterr().err


def test_build_app_is_a_page_not_launched(model):
    gr = pytest.importorskip("gradio", reason="the web UI needs the extra: pip install 'instantrestore[ui]'")
    from instantrestore.ui import ELEM, build_app

    app = build_app(model, source="micro weights")
    assert isinstance(app, gr.Blocks) and not getattr(app, "is_running", False)
    ids = {getattr(block, "elem_id", None) for block in app.blocks.values()}
    assert set(ELEM.values()) <= ids  # what the browser test and the screenshot find


# ------------------------------------------------------------------ real photos (dlib detection: slow on 2 cores)
@pytest.mark.slow
def test_dropped_references_restore_the_face_they_match(model, photo, realfaces_dir):
    refs = [str(realfaces_dir / "celebref" / "00022" / "references" / n) for n in ("1.png", "3.png", "3.png")]
    result = restore_photo(UiContext(model, k=2), photo, reference_files=refs, strength=1.0)
    assert result.before.shape == result.after.shape == photo.shape and result.after.dtype == np.uint8
    assert not np.array_equal(result.after, photo)
    assert "1 face(s) found, 1 restored" in result.status and "3 dropped reference photo(s)" in result.status
    [row] = result.rows
    assert row[1] == "dropped references" and row[4] == "references" and float(row[2]) > 0.6
    assert len(row[3].split(", ")) == 2  # k=2 chosen of the three (the repeated name kept apart)
    [face] = result.faces
    assert len(face["references"]) == 2 and face["references"][0].shape == (512, 512, 3)

    # a click on the face gives its attention map over the 2 references used
    box = face["box"]
    image, note = attention_at(UiContext(model), result, ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))
    assert isinstance(image, Image.Image) and image.width > image.height
    assert note.startswith("face 0 (dropped references)") and "attention mass" in note


@pytest.mark.slow
def test_references_of_someone_else_are_not_used(model, photo, realfaces_dir):
    refs = [str(realfaces_dir / "celebref" / "00075" / "references" / n) for n in ("1.png", "2.png")]
    result = restore_photo(UiContext(model), photo, reference_files=refs)
    [row] = result.rows
    assert row[1] == "no one (closest dropped references)" and row[4] == "blind" and "restored blind" in row[6]


@pytest.mark.slow
def test_album_person_picked_or_matched(model, photo, album_dir):
    ctx = UiContext(model, album=Album(album_dir), k=2)
    assert ctx.persons() == [AUTO_MATCH, "00022", "00075"]
    [row] = restore_photo(ctx, photo, AUTO_MATCH).rows
    assert row[1] == "00022" and row[4] == "references"
    [row] = restore_photo(ctx, photo, "00075").rows  # only 00075 is looked for: this face is not them
    assert row[1] == "no one (closest 00075)" and row[4] == "blind"
    [row] = restore_photo(ctx, photo, "00022", strength=0.5).rows
    assert row[1] == "00022" and row[5] == "0.50"
    [row] = restore_photo(ctx, photo, "00022", strength=0.5, auto_strength=True).rows  # auto wins over the slider
    assert row[1] == "00022" and 0.0 <= float(row[5]) <= 1.0
    with pytest.raises(ValueError, match="not a person of the album"):
        restore_photo(ctx, photo, "nobody")

"""Procedural synthetic identities: a face dataset stand-in that renders on a CPU (NumPy/OpenCV).

An ``Identity`` is a frozen parameter set drawn from ``(seed, identity)``: face shape, skin,
hair, eyes (one iris colour per eye, heterochromia possible), brows, nose, mouth, optional
glasses and a constellation of 1-3 px (at 128 px) dark marks. ``render(identity, j, size)``
draws photo ``j`` of that person with per-photo pose, lighting, colour cast, expression,
background and glasses, and returns exact landmarks: the 68-point iBUG layout, then the marks.

Coordinates: the *canonical face frame* is the identity's neutral face in units of the image
side (face centred near (0.5, 0.5)); a per-photo similarity maps it to pixels, with pixel
centres at integer coordinates (x = u * size - 0.5), so the same photo at 128/256/512 px is the
same picture and landmarks scale with the size. Strong degradation (``sr8``) erases the marks and
blurs the irises into the sclera: those details are recoverable only from references.

World styles (:data:`WORLD_STYLES`) change what a person's marks look like: ``classic`` (the
default, 1-3 px marks: below one 4 px latent cell of the tiny VAE, so no latent can hold them)
and ``detail`` (6-8 px dark marks, 1.5-2 latent cells: a VAE keeps them, ``sr8`` still erases
them), a recipe option for the tiny world only (docs/data.md). ``render(..., jitter=k)``
re-renders a photo with a small pose/light change: the "oracle" reference of a curriculum.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from . import _raster as R

NUM_IBUG = 68
MAX_MARKS = 7
MIN_MARKS = 3
_TAG_IDENTITY, _TAG_IMAGE, _TAG_JITTER = 0x1D, 0x1A, 0x17  # keep identity, photo and jitter streams disjoint


@dataclass(frozen=True)
class WorldStyle:
    """How a world draws its people's marks. Radii are pixels at 128 px; a mark's colour is the
    skin's times a darkness drawn from ``mark_darkness``; centres lie ``mark_spacing`` apart
    (canonical units) at least."""

    name: str
    mark_radius: tuple[float, float]
    mark_darkness: tuple[float, float]
    mark_count: tuple[int, int]
    mark_spacing: float


WORLD_STYLES: dict[str, WorldStyle] = {
    "classic": WorldStyle("classic", mark_radius=(0.6, 1.5), mark_darkness=(0.3, 0.5), mark_count=(3, 7),
                          mark_spacing=0.035),
    # Marks a latent cell can hold (the tiny VAE has 4 px cells) and sr8 (8 px) still erases.
    "detail": WorldStyle("detail", mark_radius=(3.0, 4.0), mark_darkness=(0.12, 0.25), mark_count=(3, 6),
                         mark_spacing=0.075),
}


def get_world_style(style: str | WorldStyle) -> WorldStyle:
    """A world style by name (or as given); ValueError naming the choices otherwise."""
    if isinstance(style, WorldStyle):
        return style
    if style not in WORLD_STYLES:
        raise ValueError(f"unknown world style {style!r}; choose one of {', '.join(WORLD_STYLES)}")
    return WORLD_STYLES[style]

IRIS_PALETTE = {  # RGB
    "brown": (105, 62, 30), "dark_brown": (70, 40, 22), "blue": (60, 115, 200), "light_blue": (120, 175, 225),
    "green": (60, 140, 70), "hazel": (150, 115, 45), "grey": (125, 140, 155), "amber": (200, 135, 35),
}
SKIN_TONES = [(246, 214, 190), (234, 192, 160), (222, 172, 135), (198, 145, 105), (160, 110, 75),
              (120, 80, 55), (95, 62, 42)]
HAIR_COLORS = [(25, 20, 18), (60, 40, 28), (100, 68, 40), (170, 130, 80), (215, 185, 120),
               (150, 60, 30), (160, 160, 160), (225, 225, 220)]


@dataclass(frozen=True)
class Mark:
    """A mole/freckle: centre (x, y) in the canonical face frame, radius in the same units
    (radius * 128 = pixels at 128 px), RGB colour."""

    x: float
    y: float
    radius: float
    color: tuple[int, int, int]


@dataclass(frozen=True)
class Identity:
    """Every parameter of one synthetic person. Lengths are in canonical units (image side = 1)."""

    seed: int
    index: int
    skin_color: tuple[int, int, int]
    face_width: float        # half width at eye level
    face_height: float       # eye level to chin
    forehead_height: float   # eye level to top of the skull
    jaw_taper: float         # 0 = wide jaw, 0.4 = narrow chin
    jaw_power: float         # superellipse exponent: 2 = round, 3+ = square
    hair_color: tuple[int, int, int]
    bald: bool
    hair_volume: float       # how far the hair stands off the skull
    hair_length: float       # below eye level where side hair ends (<0: short)
    hairline: float          # fringe depth below the skull top
    hairline_flat: float     # exponent of the hairline curve (high = straight fringe)
    parting: float           # parting position, -1..1 of the face width
    eye_y: float
    eye_spacing: float       # distance between the eye centres
    eye_width: float
    eye_height: float
    eye_tilt: float
    iris_ratio: float        # iris diameter / eye height (the lids clip the rest)
    iris_colors: tuple[tuple[int, int, int], tuple[int, int, int]]  # eye of landmarks 36-41, then 42-47
    brow_color: tuple[int, int, int]
    brow_height: float
    brow_thickness: float
    brow_arch: float
    brow_length: float
    brow_slant: float
    nose_length: float
    nose_width: float
    mouth_offset: float      # eye level to mouth centre
    mouth_width: float
    upper_lip: float
    lower_lip: float
    lip_color: tuple[int, int, int]
    glasses_prob: float      # chance that a given photo shows glasses
    glasses_color: tuple[int, int, int]
    glasses_round: bool
    glasses_radius: float
    marks: tuple[Mark, ...]
    style: str = "classic"


@dataclass(frozen=True)
class SyntheticImage:
    """One rendered photo.

    image: uint8 (size, size, 3) RGB. landmarks: float32 [68 + M, 2] pixel (x, y), iBUG-68 then
    the M marks in ``Identity.marks`` order. mark_slice: rows of the marks. eye_centers: float32
    [2, 2] iris centres (eye of landmarks 36-41 first); iris_radius: pixels; matrix: float32 [2, 3]
    canonical frame -> pixels; glasses: whether glasses are drawn.
    """

    image: np.ndarray
    landmarks: np.ndarray
    mark_slice: slice
    eye_centers: np.ndarray
    iris_radius: float
    matrix: np.ndarray
    glasses: bool


def _rgb(rng: np.random.Generator, base, jitter: float) -> tuple[int, int, int]:
    # mostly brightness jitter: independent per-channel jitter would tint grey hair green
    shift = rng.normal(0, jitter) + rng.normal(0, jitter * 0.3, size=3)
    return tuple(int(np.clip(c + d, 0, 255)) for c, d in zip(base, shift))


# ------------------------------------------------------------------ identity sampling

def sample_identity(seed: int, identity: int, style: str | WorldStyle = "classic") -> Identity:
    """Identity ``identity`` of world ``seed``; the same arguments always give the same person.
    ``style``: how the marks are drawn (:data:`WORLD_STYLES`); everything else is the same person."""
    style = get_world_style(style)
    rng = np.random.default_rng([_TAG_IDENTITY, int(seed), int(identity)])
    u = rng.uniform
    skin = _rgb(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 6)
    iris_names = list(IRIS_PALETTE)
    first = iris_names[rng.integers(len(iris_names))]
    second = first if rng.random() > 0.15 else iris_names[rng.integers(len(iris_names))]
    hair = _rgb(rng, HAIR_COLORS[rng.integers(len(HAIR_COLORS))], 8)
    has_glasses = rng.random() < 0.4
    params = dict(
        seed=int(seed), index=int(identity), skin_color=skin,
        face_width=u(0.25, 0.31), face_height=u(0.29, 0.35), forehead_height=u(0.25, 0.30),
        jaw_taper=u(0.0, 0.35), jaw_power=u(2.0, 3.4),
        hair_color=hair, bald=bool(rng.random() < 0.06), hair_volume=u(0.01, 0.07),
        hair_length=u(-0.06, 0.40), hairline=u(0.07, 0.16), hairline_flat=u(2.0, 7.0), parting=u(-0.6, 0.6),
        eye_y=u(0.43, 0.47), eye_spacing=u(0.19, 0.24), eye_width=u(0.075, 0.095), eye_height=u(0.036, 0.046),
        eye_tilt=u(-0.12, 0.22), iris_ratio=u(0.85, 1.0),
        iris_colors=(_rgb(rng, IRIS_PALETTE[first], 8), _rgb(rng, IRIS_PALETTE[second], 8)),
        brow_color=tuple(int(c * 0.8) for c in hair) if rng.random() < 0.8 else _rgb(rng, (60, 45, 35), 10),
        brow_height=u(0.045, 0.065), brow_thickness=u(0.008, 0.02), brow_arch=u(0.0, 0.02),
        brow_length=u(0.08, 0.11), brow_slant=u(-0.012, 0.012),
        nose_length=u(0.12, 0.16), nose_width=u(0.05, 0.075),
        mouth_offset=u(0.20, 0.235), mouth_width=u(0.10, 0.14), upper_lip=u(0.008, 0.015),
        lower_lip=u(0.011, 0.02), lip_color=_rgb(rng, (skin[0] * 0.85, skin[1] * 0.55, skin[2] * 0.55), 10),
        glasses_prob=float(u(0.3, 0.7)) if has_glasses else 0.0,
        glasses_color=_rgb(rng, [(20, 20, 20), (110, 70, 30), (160, 160, 170), (120, 20, 30)][rng.integers(4)], 6),
        glasses_round=bool(rng.random() < 0.5), glasses_radius=u(0.052, 0.064),
    )
    params["marks"] = _sample_marks(rng, params, style)
    params["style"] = style.name
    return Identity(**{k: (float(v) if isinstance(v, np.floating) else v) for k, v in params.items()})


def _sample_marks(rng: np.random.Generator, p: dict, style: WorldStyle) -> tuple[Mark, ...]:
    """Rejection-sample marks on the cheeks, jaw and chin, clear of glasses, nose and mouth."""
    count = int(rng.integers(style.mark_count[0], style.mark_count[1] + 1))
    outline = _face_outline(p["face_width"], p["face_height"], p["forehead_height"], p["jaw_taper"],
                            p["jaw_power"], p["eye_y"])
    cx, ye = 0.5, p["eye_y"]
    tip = ye + p["nose_length"]
    my, mw = ye + p["mouth_offset"], p["mouth_width"]
    marks: list[Mark] = []
    for _ in range(2000):
        if len(marks) == count:
            break
        x, y = rng.uniform(cx - p["face_width"], cx + p["face_width"]), rng.uniform(ye + 0.09, ye + p["face_height"])
        if _inside_margin(outline, x, y) < 0.03:
            continue
        if abs(x - cx) < p["nose_width"] / 2 + 0.02 and y < tip + 0.035:
            continue
        if ((x - cx) / (mw / 2 + 0.025)) ** 2 + ((y - my) / 0.055) ** 2 < 1:
            continue
        if any((x - m.x) ** 2 + (y - m.y) ** 2 < style.mark_spacing ** 2 for m in marks):
            continue
        darkness = rng.uniform(*style.mark_darkness)
        color = tuple(int(c * darkness) for c in p["skin_color"])
        marks.append(Mark(float(x), float(y), float(rng.uniform(*style.mark_radius) / 128), color))
    return tuple(marks)


def _inside_margin(outline: np.ndarray, x: float, y: float) -> float:
    """Signed distance from (x, y) to the polygon edge, positive inside."""
    return cv2.pointPolygonTest(outline.astype(np.float32).reshape(-1, 1, 2), (float(x), float(y)), True)


# ------------------------------------------------------------------ canonical geometry

def _face_outline(w, h, fh, taper, power, ye, n_jaw: int = 49, n_top: int = 24) -> np.ndarray:
    """Dense face outline: jaw from the image-left temple over the chin, then the skull top back."""
    a = math.pi + math.pi * np.linspace(0, 1, n_jaw)
    c, s = np.cos(a), -np.sin(a)
    e = 2.0 / power
    xs, ys = np.sign(c) * np.abs(c) ** e, np.abs(s) ** e
    jaw = np.stack([0.5 + w * xs * (1 - taper * ys ** 2), ye + h * ys], 1)
    b = np.linspace(0, math.pi, n_top + 2)[1:-1]
    top = np.stack([0.5 + w * np.cos(b), ye - fh * np.sin(b) ** 0.8], 1)
    return np.concatenate([jaw, top])


def _eye_curve(ident: Identity, openness: float, side: int, n: int = 13):
    """Upper and lower lid curves (n points each, left to right) of one eye; side -1 = image left."""
    f = np.linspace(-1, 1, n)
    cx = 0.5 + side * ident.eye_spacing / 2
    hw, hh = ident.eye_width / 2, ident.eye_height / 2
    tilt = -ident.eye_tilt * hw * (side * f)  # outer corner up for positive tilt
    upper = np.stack([cx + hw * f, ident.eye_y + tilt - hh * openness * (1 - f ** 2) ** 0.6 * (1 + 0.15 * side * f)], 1)
    lower = np.stack([cx + hw * f, ident.eye_y + tilt + 0.8 * hh * openness * (1 - f ** 2) ** 0.8], 1)
    return upper, lower


def _mouth_curves(ident: Identity, smile: float, open_: float, n: int = 25):
    """Outer-upper, inner-upper, inner-lower, outer-lower lip curves (n points, left to right)."""
    f = np.linspace(-1, 1, n)
    cx, my, hw = 0.5, ident.eye_y + ident.mouth_offset, ident.mouth_width / 2
    s = -smile * 0.02 * f ** 2
    prof = np.sqrt(np.clip(1 - f ** 2, 0, 1))
    o = open_ * 0.035
    bow = 1 - 0.3 * np.exp(-(f / 0.2) ** 2)
    x = cx + hw * f
    xi = cx + 0.88 * hw * f
    return (np.stack([x, my + s - o / 2 * prof - ident.upper_lip * prof * bow], 1),
            np.stack([xi, my + 0.88 * s - o / 2 * prof], 1),
            np.stack([xi, my + 0.88 * s + o / 2 * prof], 1),
            np.stack([x, my + s + o / 2 * prof + ident.lower_lip * prof], 1))


def _brow(ident: Identity, n: int = 5) -> np.ndarray:
    """Image-left brow from outer to inner end (n points)."""
    t = np.linspace(-1, 1, n)
    cx = 0.5 - ident.eye_spacing / 2 + 0.008
    y = ident.eye_y - ident.brow_height - ident.brow_arch * (1 - ((t + 0.3) / 1.3) ** 2) + ident.brow_slant * t
    return np.stack([cx + t * ident.brow_length / 2, y], 1)


def _mirror(pts: np.ndarray) -> np.ndarray:
    return np.stack([1.0 - pts[:, 0], pts[:, 1]], 1)


def canonical_landmarks(ident: Identity, smile: float = 0.0, open_: float = 0.0, openness: float = 1.0) -> np.ndarray:
    """The 68 iBUG landmarks (float64 [68, 2]) of ``ident`` in the canonical face frame."""
    outline = _face_outline(ident.face_width, ident.face_height, ident.forehead_height, ident.jaw_taper,
                            ident.jaw_power, ident.eye_y)
    jaw = outline[0:49:3]
    brow_l = _brow(ident)
    brow_r = _mirror(brow_l)[::-1]
    ye, tip = ident.eye_y, ident.eye_y + ident.nose_length
    bridge = np.stack([np.full(4, 0.5), np.linspace(ye - 0.005, tip, 4)], 1)
    nw = ident.nose_width / 2
    nostrils = np.stack([0.5 + nw * np.array([-1, -0.5, 0, 0.5, 1]), tip + np.array([0.006, 0.018, 0.022, 0.018, 0.006])], 1)
    eyes = []
    for side in (-1, 1):
        up, lo = _eye_curve(ident, openness, side)
        eyes.append(np.stack([up[0], up[4], up[8], up[12], lo[8], lo[4]]))
    ou, iu, il, ol = _mouth_curves(ident, smile, open_)
    k = [0, 4, 8, 12, 16, 20, 24]
    outer = np.concatenate([ou[k], ol[[20, 16, 12, 8, 4]]])
    inner = np.concatenate([iu[[0, 8, 12, 16, 24]], il[[16, 12, 8]]])
    return np.concatenate([jaw, brow_l, brow_r, bridge, nostrils, eyes[0], eyes[1], outer, inner])


# ------------------------------------------------------------------ rendering

def _photo_params(ident: Identity, image_index: int) -> dict:
    rng = np.random.default_rng([_TAG_IMAGE, ident.seed, ident.index, int(image_index)])
    u = rng.uniform
    return dict(
        angle=math.radians(u(-8, 8)), scale=u(0.93, 1.07), shift=u(-0.03, 0.03, size=2),
        smile=u(-0.2, 1.0), open=float(u(0.2, 1.0)) if rng.random() < 0.3 else 0.0, openness=u(0.85, 1.1),
        gaze=u(-1, 1, size=2), glasses=bool(rng.random() < ident.glasses_prob),
        bg=(rng.uniform(40, 230, size=3), rng.uniform(40, 230, size=3)), bg_grid=int(rng.integers(3, 7)),
        bg_rng=int(rng.integers(2**62)), stripes=(rng.random() < 0.3, u(6, 20), u(0, math.pi), u(0.05, 0.15)),
        light_dir=u(0, 2 * math.pi), light=u(0.0, 0.15), cast=u(0.93, 1.07, size=3), gain=u(0.92, 1.08),
        clothes=rng.uniform(20, 235, size=3),
    )


def _jittered(ident: Identity, image_index: int, jitter: int) -> dict:
    """Photo ``image_index``'s parameters nudged by draw ``jitter``: about 1.5 degrees, 1.5 % scale,
    1 % shift, a little light and colour; the same expression, glasses and background."""
    ph = dict(_photo_params(ident, image_index))
    rng = np.random.default_rng([_TAG_JITTER, ident.seed, ident.index, int(image_index), int(jitter)])
    n = rng.normal
    ph.update(angle=ph["angle"] + math.radians(n(0, 1.5)), scale=ph["scale"] * (1 + n(0, 0.015)),
              shift=ph["shift"] + n(0, 0.01, size=2), gaze=np.clip(ph["gaze"] + n(0, 0.15, size=2), -1, 1),
              light=float(np.clip(ph["light"] + n(0, 0.02), 0, 0.2)), cast=ph["cast"] * (1 + n(0, 0.01, size=3)),
              gain=ph["gain"] * (1 + n(0, 0.02)))
    return ph


def _matrix(ph: dict, size: int) -> np.ndarray:
    """Canonical -> pixel affine [2, 3]: similarity about (0.5, 0.5), then x * size - 0.5."""
    c, s = math.cos(ph["angle"]) * ph["scale"], math.sin(ph["angle"]) * ph["scale"]
    a = np.array([[c, -s], [s, c]]) * size
    t = (np.array([0.5, 0.5]) + ph["shift"] - np.array([[c, -s], [s, c]]) @ np.array([0.5, 0.5])) * size - 0.5
    return np.concatenate([a, t[:, None]], 1)


def _background(ph: dict, size: int) -> np.ndarray:
    rng = np.random.default_rng(ph["bg_rng"])
    tex = R.smooth_noise(rng, ph["bg_grid"], size)[..., None]
    c1, c2 = ph["bg"]
    img = c1 * (0.5 + 0.5 * tex) + c2 * (0.5 - 0.5 * tex)
    on, freq, ang, amp = ph["stripes"]
    if on:
        g = (np.arange(size, dtype=np.float32) + 0.5) / size
        proj = np.cos(ang) * g[None, :] + np.sin(ang) * g[:, None]
        img = img * (1 + amp * np.sin(2 * math.pi * freq * proj))[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _hair_polys(ident: Identity):
    """Back hair (behind the head) and fringe (over the forehead) polygons, canonical frame."""
    w, fh, ye, v = ident.face_width, ident.forehead_height, ident.eye_y, ident.hair_volume
    b = np.linspace(0, math.pi, 25)
    top = np.stack([0.5 + (w + v) * np.cos(b), ye - 0.02 - (fh + v) * np.sin(b) ** 0.8], 1)
    y_end = ye + ident.hair_length
    back = np.concatenate([[[0.5 + (w + v) * 1.05, y_end]], top, [[0.5 - (w + v) * 1.05, y_end]]])
    xn = np.linspace(-1, 1, 25)
    y_top = ye - fh
    hl = y_top + ident.hairline + (ye - 0.045 - y_top - ident.hairline) * np.abs(xn) ** ident.hairline_flat
    hl = hl - 0.03 * np.exp(-((xn - ident.parting) / 0.1) ** 2)
    line = np.stack([0.5 + (w + 0.004) * xn, hl], 1)
    over = np.stack([0.5 + (w + v * 0.6) * np.cos(b), ye - 0.03 - (fh + v * 0.6) * np.sin(b) ** 0.8], 1)
    return back, np.concatenate([line, over])


def render(identity: Identity, image_index: int, size: int = 128, jitter: int | None = None) -> SyntheticImage:
    """Draw photo ``image_index`` of ``identity`` at ``size`` x ``size`` px (see module docs).
    ``jitter``: re-render that photo with small pose/light changes drawn from this number (the
    same number always gives the same picture); None = the photo itself."""
    ident = identity
    ph = _photo_params(identity, image_index) if jitter is None else _jittered(identity, image_index, jitter)
    m = _matrix(ph, size)
    px = lambda pts: np.asarray(pts, np.float64) @ m[:, :2].T + m[:, 2]  # noqa: E731
    unit = size * ph["scale"]  # pixels per canonical unit
    img = _background(ph, size)
    skin = np.array(ident.skin_color, np.float64)
    lm = canonical_landmarks(ident, ph["smile"], ph["open"], ph["openness"])

    # body and hair behind the head
    R.fill_poly(img, px(_ellipse(0.5, 1.18, 0.42, 0.26)), ph["clothes"])
    neck_w = ident.face_width * 0.5
    R.fill_poly(img, px([[0.5 - neck_w, ident.eye_y + 0.15], [0.5 + neck_w, ident.eye_y + 0.15],
                         [0.5 + neck_w * 1.1, 1.0], [0.5 - neck_w * 1.1, 1.0]]), skin * 0.82)
    back, fringe = _hair_polys(ident)
    if not ident.bald:
        R.fill_poly(img, px(back), ident.hair_color)
    if ident.bald or ident.hair_length < 0.06:
        for side in (-1, 1):
            R.fill_poly(img, px(_ellipse(0.5 + side * ident.face_width * 0.97, ident.eye_y + 0.04, 0.024, 0.045)), skin * 0.92)

    # face, hair fringe, brows
    R.fill_poly(img, px(_face_outline(ident.face_width, ident.face_height, ident.forehead_height,
                                      ident.jaw_taper, ident.jaw_power, ident.eye_y)), skin)
    if not ident.bald:
        R.fill_poly(img, px(fringe), ident.hair_color)
    for brow in (lm[17:22], lm[22:27][::-1]):
        _draw_brow(img, px(brow), ident.brow_thickness * unit, ident.brow_color)

    # eyes: sclera, iris clipped to the opening, pupil, catch-light, upper lid
    eye_centers = []
    iris_r = ident.iris_ratio * ident.eye_height / 2 * unit
    for k, side in enumerate((-1, 1)):
        up, lo = _eye_curve(ident, ph["openness"], side)
        opening = px(np.concatenate([up, lo[::-1][1:-1]]))
        R.fill_poly(img, opening, (240, 238, 232))
        centre = np.array([0.5 + side * ident.eye_spacing / 2 + ph["gaze"][0] * ident.eye_width * 0.12,
                           ident.eye_y + ph["gaze"][1] * ident.eye_height * 0.08])
        c = px(centre[None])[0]
        eye_centers.append(c)
        R.soft_disk(img, c, iris_r, ident.iris_colors[k], mask_poly=opening, edge_dark=0.3)
        R.soft_disk(img, c, iris_r * 0.38, (18, 14, 14), mask_poly=opening)
        R.soft_disk(img, c + (-0.22 * iris_r, -0.22 * iris_r), iris_r * 0.14, (250, 250, 250), mask_poly=opening)
        R.polyline(img, px(up), skin * 0.35, 0.006 * unit)

    # nose and mouth
    R.polyline(img, px(lm[[27, 28, 29, 31]] + [ident.nose_width * 0.12, 0]), skin * 0.88, 0.004 * unit)
    R.polyline(img, px(lm[31:36]), skin * 0.78, 0.004 * unit)
    for j in (32, 34):
        R.soft_disk(img, px(lm[j][None])[0], 0.0045 * unit, skin * 0.5)
    ou, iu, il, ol = _mouth_curves(ident, ph["smile"], ph["open"])
    lip = np.array(ident.lip_color, np.float64)
    R.fill_poly(img, px(np.concatenate([ou, ol[::-1]])), lip)
    if ph["open"] > 0:
        R.fill_poly(img, px(np.concatenate([iu, il[::-1]])), (55, 22, 28))
        R.fill_poly(img, px(np.concatenate([iu, iu[::-1] + [0, 0.008 * ph["open"]]])), (235, 232, 220))
    else:
        R.polyline(img, px(iu), lip * 0.55, 0.004 * unit)

    # marks: dark soft disks, exact centres
    marks = np.array([[mk.x, mk.y] for mk in ident.marks], np.float64).reshape(-1, 2)
    for mk, c in zip(ident.marks, px(marks)):
        R.soft_disk(img, c, mk.radius * unit, mk.color)

    if ph["glasses"]:
        _draw_glasses(img, ident, px, unit)

    img = _light(img, ph, size)
    landmarks = np.concatenate([px(lm), px(marks)]).astype(np.float32)
    return SyntheticImage(image=img, landmarks=landmarks, mark_slice=slice(NUM_IBUG, NUM_IBUG + len(ident.marks)),
                          eye_centers=np.array(eye_centers, np.float32), iris_radius=float(iris_r),
                          matrix=m.astype(np.float32), glasses=ph["glasses"])


def _ellipse(cx, cy, ax, ay, n: int = 40) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], 1)


def _draw_brow(img, pts: np.ndarray, thick: float, color) -> None:
    """Brow band around the outer->inner centre line, thicker at the inner end."""
    t = np.linspace(0, 1, len(pts))
    half = thick / 2 * (0.45 + 0.55 * t)[:, None]
    d = np.concatenate([pts[1:2] - pts[:1], pts[2:] - pts[:-2], pts[-1:] - pts[-2:-1]])
    n = np.stack([-d[:, 1], d[:, 0]], 1) / (np.linalg.norm(d, axis=1, keepdims=True) + 1e-9)
    R.fill_poly(img, np.concatenate([pts + n * half, (pts - n * half)[::-1]]), color)


def _draw_glasses(img, ident: Identity, px, unit: float) -> None:
    r, thick = ident.glasses_radius, max(1.0, 0.007 * unit)
    ye = ident.eye_y
    for side in (-1, 1):
        cx = 0.5 + side * ident.eye_spacing / 2
        shape = _ellipse(cx, ye, r, r * 0.8) if ident.glasses_round else \
            np.array([[cx - r, ye - 0.8 * r], [cx + r, ye - 0.8 * r], [cx + r, ye + 0.75 * r], [cx - r, ye + 0.75 * r]])
        R.polyline(img, px(shape), ident.glasses_color, thick, closed=True)
        R.polyline(img, px([[cx + side * r, ye - 0.3 * r], [0.5 + side * (ident.face_width + 0.01), ye - 0.3 * r]]),
                   ident.glasses_color, thick)
    gap = ident.eye_spacing / 2 - r
    R.polyline(img, px([[0.5 - gap, ye - 0.4 * r], [0.5, ye - 0.55 * r], [0.5 + gap, ye - 0.4 * r]]),
               ident.glasses_color, thick)


def _light(img: np.ndarray, ph: dict, size: int) -> np.ndarray:
    """Linear lighting gradient, global gain and per-channel colour cast (multiplicative)."""
    g = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    ramp = 1 + 2 * ph["light"] * (math.cos(ph["light_dir"]) * g[None, :] + math.sin(ph["light_dir"]) * g[:, None])
    gains = (ph["gain"] * ph["cast"]).astype(np.float32)
    out = img.astype(np.float32) * ramp[..., None] * gains[None, None, :]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)

"""What ``prepare-data`` measures of each image and the checks it makes from that.

``ImageFacts`` is stored in each side file and in the manifest, so a re-run decides from the
file's SHA-256 alone whether an image must be read again. Checks, in order of cost:
unreadable, too small, not square (an aligned crop is square), no face, several faces, and,
over the whole dataset, duplicates (a 256-bit difference hash; on the 98 CelebRef-HQ photos
here distinct photos are >= 53 bits apart and a re-encoded, resized copy <= 8).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

DHASH_SIDE = 16          # difference hash of a 17 x 16 grey thumbnail: 256 bits
DUPLICATE_BITS = 20      # default: photos at most this many hash bits apart are one photo
FACE_SHARE = 0.5         # a second face counts when its box is at least this share of the largest's
# The share of an FFHQ-aligned crop's side that dlib's face box spans (faces.detect.FFHQ_CROP_BOX):
# a face box of F pixels makes an aligned crop of about F / 0.61 source pixels.
ALIGNED_BOX_SHARE = 0.61

# reason kinds, in the order the summary lists them
UNREADABLE, TOO_SMALL, NOT_SQUARE, NO_FACE, SEVERAL_FACES = "unreadable", "too small", "not square", "no face", "several faces"
DUPLICATE_PEOPLE, DUPLICATE, NAME_CLASH = "same photo as another person's", "duplicate", "name clash"
REASON_KINDS = (UNREADABLE, TOO_SMALL, NOT_SQUARE, NO_FACE, SEVERAL_FACES, DUPLICATE_PEOPLE, DUPLICATE, NAME_CLASH)


@dataclass
class ImageFacts:
    """What prepare-data measured of one image file.

    sha256: of the file's bytes; width, height: as loaded (EXIF orientation applied); dhash: hex
    difference hash (None when unreadable); unreadable: the reason it could not be read; faces:
    faces found at least ``FACE_SHARE`` the size of the largest (None = not looked for yet);
    face_size: the largest face box's side in pixels; detector: "hog" or "cnn".
    """

    sha256: str
    width: int = 0
    height: int = 0
    dhash: str | None = None
    unreadable: str | None = None
    faces: int | None = None
    face_size: float | None = None
    detector: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-able dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> "ImageFacts | None":
        """Facts from ``to_json`` output (a side file or manifest entry); None when it holds none."""
        if not isinstance(data, dict) or not isinstance(data.get("sha256"), str):
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError:
            return None


def difference_hash(image: Image.Image | np.ndarray) -> str:
    """256-bit difference hash (hex): signs of horizontal steps of a 17 x 16 grey thumbnail."""
    im = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    grey = np.asarray(im.convert("L").resize((DHASH_SIDE + 1, DHASH_SIDE), Image.Resampling.LANCZOS), np.float32)
    return np.packbits(grey[:, 1:] > grey[:, :-1]).tobytes().hex()


def hash_distance(a: str, b: str) -> int:
    """Number of differing bits of two hex hashes of equal length."""
    return int(np.unpackbits(np.frombuffer(bytes.fromhex(a), np.uint8) ^ np.frombuffer(bytes.fromhex(b), np.uint8)).sum())


def image_problem(facts: ImageFacts, min_size: int, aligning: bool) -> str | None:
    """Why an image cannot be used, from what reading it gave (no face detection needed), or None.

    Not aligning, the image must be an aligned crop: square and at least ``min_size`` a side.
    Aligning, any shape is fine and the size check is on the face (``face_problem``).
    """
    if facts.unreadable:
        return f"{UNREADABLE}: {facts.unreadable}"
    if not aligning and min(facts.width, facts.height) < min_size:
        return f"{TOO_SMALL}: {facts.width}x{facts.height} is under --min-size {min_size} px"
    if not aligning and facts.width != facts.height:
        return (f"{NOT_SQUARE}: {facts.width}x{facts.height} is not an aligned face crop "
                "(prepare-data --align OUT writes aligned crops of any photo)")
    return None


def face_problem(facts: ImageFacts, min_size: int, aligning: bool) -> str | None:
    """Why the faces found make an image unusable, or None. Needs ``facts.faces``."""
    if facts.faces == 0:
        return f"{NO_FACE}: dlib finds no face"
    if facts.faces is not None and facts.faces > 1:
        return f"{SEVERAL_FACES}: {facts.faces} faces of similar size (which person is it?)"
    if aligning and facts.face_size is not None and facts.face_size / ALIGNED_BOX_SHARE < min_size:
        side = round(facts.face_size / ALIGNED_BOX_SHARE)
        return f"{TOO_SMALL}: the face spans about {side} px aligned, under --min-size {min_size} px"
    return None


def find_duplicates(items: list[tuple[str, str, str]], max_bits: int = DUPLICATE_BITS) -> dict[str, str]:
    """Images to leave out as duplicates: {key: reason}.

    items: (person, key, dhash hex) in dataset order. A photo at most ``max_bits`` hash bits from
    another person's is left out on both sides (which one is labelled right is unknown); within one
    person the later copies are left out (a copy as its own reference teaches copying). Exact pair
    search in packed 64-bit words, in row blocks (n = 100,000 images take about two minutes).
    """
    if len(items) < 2 or max_bits < 0:
        return {}
    words = np.stack([np.frombuffer(bytes.fromhex(h), dtype=">u8").astype(np.uint64) for _, _, h in items])
    found: dict[str, str] = {}
    n = len(items)
    block = max(1, 4_000_000 // (n * words.shape[1]))
    for start in range(0, n, block):
        rows = words[start:start + block]
        dist = np.bitwise_count(rows[:, None, :] ^ words[None, :, :]).sum(-1)
        for i, j in zip(*np.nonzero(dist <= max_bits)):
            i, j = int(i) + start, int(j)
            if j <= i:
                continue
            (person_i, key_i, _), (person_j, key_j, _) = items[i], items[j]
            if person_i != person_j:
                found[key_i] = f"{DUPLICATE_PEOPLE}: {key_j}"
                found[key_j] = f"{DUPLICATE_PEOPLE}: {key_i}"
            else:
                found.setdefault(key_j, f"{DUPLICATE}: of {key_i}")
    return found


def reason_kind(reason: str) -> str:
    """The kind of a reason string (the text before its first colon)."""
    return reason.split(":", 1)[0]

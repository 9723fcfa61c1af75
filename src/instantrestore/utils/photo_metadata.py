"""What a photo file carries besides its pixels, carried over to the files made from it.

``load_image`` applies the EXIF orientation, so the pixels a job writes are already upright: the
EXIF block is carried over with its orientation tag reset to 1 (else a viewer would turn the photo
a second time), every other tag (camera, date, GPS, ...) as it was. The ICC colour profile is
carried over only when it describes RGB data: ``load_image`` keeps the pixels' values (no colour
conversion), so the profile still says what they mean; a CMYK or grey profile would not.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from PIL import Image

ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class PhotoMetadata:
    """The EXIF block (orientation reset to 1) and RGB ICC profile of a photo file; None where absent."""

    exif: bytes | None = None
    icc_profile: bytes | None = None

    def save_options(self, exif: bool = True) -> dict:
        """Pillow save options writing them (``exif=False``: the colour profile alone, for side images)."""
        return {"exif": self.exif if exif else None, "icc_profile": self.icc_profile}


def read_photo_metadata(path: str | os.PathLike) -> PhotoMetadata:
    """The metadata of the image file ``path`` to carry over (nothing when it cannot be read: the
    pixels are what matters, and ``load_image`` says why a file is unreadable)."""
    try:
        with Image.open(path) as im:
            exif = im.getexif()
            icc = im.info.get("icc_profile")
            if exif and exif.get(ORIENTATION_TAG, 1) != 1:
                exif[ORIENTATION_TAG] = 1
            data = exif.tobytes() if len(exif) else None
    except (OSError, ValueError, SyntaxError):  # Pillow raises SyntaxError on a broken EXIF block
        return PhotoMetadata()
    rgb = isinstance(icc, bytes) and len(icc) >= 20 and icc[16:20] == b"RGB "  # the header's colour space
    return PhotoMetadata(exif=data, icc_profile=icc if rgb else None)

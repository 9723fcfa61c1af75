"""Identity datasets and the training sampler.

Folder layouts read by ``scan_identity_folders`` (one sub-folder per identity):
  root/<identity>/*.{png,jpg,...}                       plain identity folders
  root/<identity>/cropped_images/*                      official InstantRestore training layout
  root/<identity>/{degraded.png, gt.png, conditioning/*} test layout (gt + conditioning are used)
  root/<identity>/references/*                          DMDNet/CelebRef-HQ examples (a degraded_* photo
                                                        beside it has no clean version and is ignored)
Optional landmarks live in a side file next to each image: ``<stem>.json`` holding
``{"landmarks": [[x, y], ...], "width": W, "height": H, "num_ibug": 68}`` (pixel coordinates).

Every dataset returns the training item of ``make_item``: a degraded target, its ground truth and
1..refs_max other photos of the same identity, each item drawn from an rng seeded by
(seed, epoch, index) so data is reproducible in any worker order.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .degradations import DegradationPreset, get_preset, random_degrade
from ..utils.files import atomic_write_text, list_images
from ..utils.images import ImageError, load_image, save_image, uint8_to_tensor
from . import synthetic

log = logging.getLogger(__name__)
_TAG_ITEM = 0x17


# ------------------------------------------------------------------ landmarks side files

def landmarks_path(image_path: str | os.PathLike) -> Path:
    """The side file holding ``image_path``'s landmarks: same folder and stem, ``.json``."""
    return Path(image_path).with_suffix(".json")


def write_landmarks(path: str | os.PathLike, landmarks: np.ndarray, width: int, height: int,
                    num_ibug: int = synthetic.NUM_IBUG) -> None:
    """Write landmarks [P, 2] (pixel x, y of an image ``width`` x ``height``) as a side file, atomically."""
    rows = [[round(float(x), 3), round(float(y), 3)] for x, y in np.asarray(landmarks).reshape(-1, 2)]
    atomic_write_text(path, json.dumps({"landmarks": rows, "width": int(width), "height": int(height),
                                        "num_ibug": int(num_ibug)}))


def read_landmarks(path: str | os.PathLike) -> tuple[np.ndarray, int, int] | None:
    """(landmarks float32 [P, 2], width, height) from a side file, or None when there is none.

    Raises ValueError naming the file when it exists but is malformed.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        pts = np.asarray(data["landmarks"], dtype=np.float32).reshape(-1, 2)
        return pts, int(data["width"]), int(data["height"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: malformed landmarks file ({exc})") from exc


# ------------------------------------------------------------------ folder scanning

@dataclass(frozen=True)
class IdentityRecord:
    """One identity: its name and its usable image paths (sorted)."""

    name: str
    images: tuple[Path, ...]


def identity_images(folder: Path) -> list[Path]:
    """The images of one identity folder in whichever layout it uses (see module docs)."""
    for sub in ("cropped_images", "references"):
        if (folder / sub).is_dir():
            return list_images(folder / sub)
    if (folder / "gt.png").is_file():
        cond = folder / "conditioning"
        return [folder / "gt.png"] + (list_images(cond) if cond.is_dir() else [])
    return list_images(folder)


def _readable(path: Path) -> str | None:
    """None if PIL can identify the file, else the reason."""
    try:
        with Image.open(path) as im:
            im.verify()
        return None
    except Exception as exc:  # PIL raises many types for broken files
        return f"{type(exc).__name__}: {exc}"


def scan_identity_folders(root: str | os.PathLike, min_images: int = 2, verify: bool = True) -> list[IdentityRecord]:
    """Identities under ``root`` with at least ``min_images`` readable images, sorted by name.

    Unreadable files are logged by path and left out; identities that end up with fewer than
    ``min_images`` images are skipped with a count in the log. Raises FileNotFoundError when
    ``root`` is missing and ValueError when no identity is usable.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a folder")
    records, skipped, unreadable = [], [], 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = []
        for path in identity_images(folder):
            reason = _readable(path) if verify else None
            if reason:
                unreadable += 1
                log.warning("unreadable image left out: %s (%s)", path, reason)
            else:
                images.append(path)
        if len(images) < min_images:
            skipped.append(folder.name)
        else:
            records.append(IdentityRecord(folder.name, tuple(images)))
    if skipped:
        log.warning("skipped %d identit%s with fewer than %d images: %s", len(skipped),
                    "y" if len(skipped) == 1 else "ies", min_images, ", ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else ""))
    if unreadable:
        log.warning("%d unreadable image(s) left out under %s", unreadable, root)
    if not records:
        raise ValueError(f"{root}: no identity folder has {min_images} or more readable images "
                         f"({len(skipped)} skipped, {unreadable} unreadable files)")
    return records


def load_square(path: Path, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Load an image, centre-crop it square and resize to ``size``.

    Returns (uint8 (size, size, 3) RGB, (width, height) of the file as loaded).
    """
    im = load_image(path)
    orig = im.size
    side = min(orig)
    x0, y0 = (im.width - side) // 2, (im.height - side) // 2
    if orig != (side, side):
        im = im.crop((x0, y0, x0 + side, y0 + side))
    if side != size:
        im = im.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(im, dtype=np.uint8), orig


def square_landmarks(points: np.ndarray, recorded: tuple[int, int], actual: tuple[int, int], size: int) -> np.ndarray:
    """Map landmarks of an image recorded at ``recorded`` (w, h) onto ``load_square``'s output.

    Pixel centres are at integer coordinates; the file may have been resized since the
    landmarks were written (then ``actual`` differs from ``recorded``).
    """
    (rw, rh), (aw, ah) = recorded, actual
    pts = (np.asarray(points, np.float64) + 0.5) * (aw / rw, ah / rh)
    side = min(aw, ah)
    pts = (pts - ((aw - side) // 2, (ah - side) // 2)) * (size / side) - 0.5
    return pts.astype(np.float32)


# ------------------------------------------------------------------ item assembly

def pad_landmarks(points: np.ndarray | None, num_points: int) -> np.ndarray:
    """float32 [num_points, 2]: ``points`` truncated or NaN-padded; all NaN when None."""
    out = np.full((num_points, 2), np.nan, np.float32)
    if points is not None and num_points:
        n = min(num_points, len(points))
        out[:n] = points[:n]
    return out


def make_item(hq: np.ndarray, lq: np.ndarray, refs: list[np.ndarray], landmarks_hq: np.ndarray | None,
              landmarks_refs: list[np.ndarray | None], refs_max: int, num_points: int,
              identity: str, index: int) -> dict:
    """The training item every dataset returns (the trainer and the evaluation consume this dict).

    lq/hq: float32 [3, H, W] in [-1, 1]; refs: [refs_max, 3, H, W] zero-padded; ref_mask: bool
    [refs_max], True = real reference; landmarks_hq: float32 [P, 2] pixels, NaN where unknown;
    landmarks_refs: [refs_max, P, 2], NaN for padding; identity: str; index: int.
    """
    if not 1 <= len(refs) <= refs_max:
        raise ValueError(f"item {index}: {len(refs)} references, expected 1..{refs_max}")
    h, w = hq.shape[:2]
    ref_arr = np.zeros((refs_max, h, w, 3), np.uint8)
    lm_refs = np.full((refs_max, num_points, 2), np.nan, np.float32)
    for k, (ref, lm) in enumerate(zip(refs, landmarks_refs)):
        ref_arr[k] = ref
        lm_refs[k] = pad_landmarks(lm, num_points)
    ref_t = uint8_to_tensor(ref_arr)
    ref_t[len(refs):] = 0.0
    mask = torch.zeros(refs_max, dtype=torch.bool)
    mask[: len(refs)] = True
    return {"lq": uint8_to_tensor(lq)[0], "hq": uint8_to_tensor(hq)[0], "refs": ref_t, "ref_mask": mask,
            "landmarks_hq": torch.from_numpy(pad_landmarks(landmarks_hq, num_points)),
            "landmarks_refs": torch.from_numpy(lm_refs), "identity": identity, "index": int(index)}


def sample_references(rng: np.random.Generator, num_images: int, target: int, refs_min: int, refs_max: int) -> list[int]:
    """k in refs_min..refs_max (capped by what exists) distinct image indices, never ``target``."""
    others = [j for j in range(num_images) if j != target]
    if not others:
        raise ValueError(f"an identity needs at least 2 images to give a reference, got {num_images}")
    hi = min(refs_max, len(others))
    k = int(rng.integers(min(refs_min, hi), hi + 1))
    return [others[j] for j in rng.choice(len(others), size=k, replace=False)]


def _item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([_TAG_ITEM, int(seed), int(epoch), int(index)])


def _check_refs(refs_min: int, refs_max: int) -> None:
    if not 1 <= refs_min <= refs_max:
        raise ValueError(f"need 1 <= refs_min <= refs_max, got refs_min={refs_min}, refs_max={refs_max}")


# ------------------------------------------------------------------ datasets

class IdentityFolderDataset(Dataset):
    """Photos organised by identity on disk; item i = image i as the degraded target plus references.

    root: any layout of ``scan_identity_folders``; size: output side (centre-crop + resize);
    preset: degradation preset name or ``DegradationPreset``; landmarks: "auto" (side files where
    present, NaN elsewhere; P = 0 when no side file exists), "none" (P = 0) or "require".
    ``num_points`` fixes P (rows are NaN-padded or cut), e.g. 68 + MAX_MARKS to match
    ``SyntheticIdentityDataset``; by default P is the longest side file found.
    ``epoch`` changes every draw; item i depends only on (seed, epoch, i).
    """

    def __init__(self, root: str | os.PathLike, size: int = 512, refs_max: int = 4, preset: str | DegradationPreset = "paper",
                 seed: int = 0, landmarks: str = "auto", refs_min: int = 1, epoch: int = 0, verify: bool = True,
                 num_points: int | None = None):
        _check_refs(refs_min, refs_max)
        if landmarks not in ("auto", "none", "require"):
            raise ValueError(f"landmarks must be 'auto', 'none' or 'require', got {landmarks!r}")
        self.root, self.size, self.refs_max, self.refs_min = Path(root), int(size), int(refs_max), int(refs_min)
        self.preset, self.seed, self.epoch = get_preset(preset), int(seed), int(epoch)
        self.identities = scan_identity_folders(self.root, verify=verify)
        self._index = [(i, j) for i, rec in enumerate(self.identities) for j in range(len(rec.images))]
        self._landmarks: dict[Path, tuple[np.ndarray, int, int]] = {}
        if landmarks != "none":
            for rec in self.identities:
                for path in rec.images:
                    found = read_landmarks(landmarks_path(path))
                    if found is None and landmarks == "require":
                        raise FileNotFoundError(f"{path}: no landmarks side file {landmarks_path(path).name}")
                    if found is not None:
                        self._landmarks[path] = found
        found = max((len(v[0]) for v in self._landmarks.values()), default=0)
        self.num_points = found if num_points is None else int(num_points)

    def set_epoch(self, epoch: int) -> None:
        """Draw different references and degradations (re-create workers for it to take effect)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._index)

    def _load(self, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
        img, actual = load_square(path, self.size)
        found = self._landmarks.get(path)
        if found is None:
            return img, None
        pts, w, h = found
        return img, square_landmarks(pts, (w, h), actual, self.size)

    def __getitem__(self, index: int) -> dict:
        rng = _item_rng(self.seed, self.epoch, index)
        ident, target = self._index[index]
        rec = self.identities[ident]
        ref_ids = sample_references(rng, len(rec.images), target, self.refs_min, self.refs_max)
        hq, lm_hq = self._load(rec.images[target])
        refs = [self._load(rec.images[j]) for j in ref_ids]
        lq = random_degrade(hq, self.preset, rng)
        return make_item(hq, lq, [r[0] for r in refs], lm_hq, [r[1] for r in refs],
                         self.refs_max, self.num_points, rec.name, index)


def synthetic_identity_name(seed: int, identity: int) -> str:
    """Folder/identity name of synthetic identity ``identity`` of world ``seed``."""
    return f"synth{seed}_{identity:05d}"


class SyntheticIdentityDataset(Dataset):
    """Synthetic identities rendered on the fly (no disk): item i = photo i % M of identity i // M.

    Landmarks: P = 68 + max_marks rows (marks NaN-padded). Item i depends only on (seed, epoch, i).
    style: the world style (``synthetic.WORLD_STYLES``). oracle_reference: the chance that the
    first reference is the target photo itself, re-rendered with a small pose/light jitter (exact
    landmarks from the renderer): a reference whose details can simply be copied, so attention
    learns to find them (a tiny-world curriculum option; 0 = the paper's other photos only).
    """

    def __init__(self, seed: int, num_identities: int, images_per_identity: int, size: int = 128,
                 refs_max: int = 4, refs_min: int = 1, preset: str | DegradationPreset = "sr8",
                 max_marks: int = synthetic.MAX_MARKS, epoch: int = 0, style: str = "classic",
                 oracle_reference: float = 0.0):
        _check_refs(refs_min, refs_max)
        if images_per_identity < 2 or num_identities < 1:
            raise ValueError(f"need >= 1 identity with >= 2 images each, got {num_identities} x {images_per_identity}")
        if not 0.0 <= oracle_reference <= 1.0:
            raise ValueError(f"oracle_reference is a probability in [0, 1], got {oracle_reference}")
        self.style, self.oracle_reference = synthetic.get_world_style(style).name, float(oracle_reference)
        self.seed, self.num_identities, self.images_per_identity = int(seed), int(num_identities), int(images_per_identity)
        self.size, self.refs_max, self.refs_min = int(size), int(refs_max), int(refs_min)
        self.preset, self.max_marks, self.epoch = get_preset(preset), int(max_marks), int(epoch)
        self.num_points = synthetic.NUM_IBUG + self.max_marks

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_identities * self.images_per_identity

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        rng = _item_rng(self.seed, self.epoch, index)
        ident_idx, target = divmod(index, self.images_per_identity)
        ident = synthetic.sample_identity(self.seed, ident_idx, self.style)
        ref_ids = sample_references(rng, self.images_per_identity, target, self.refs_min, self.refs_max)
        hq = synthetic.render(ident, target, self.size)
        refs = [synthetic.render(ident, j, self.size) for j in ref_ids]
        lq = random_degrade(hq.image, self.preset, rng)
        if self.oracle_reference > 0 and rng.random() < self.oracle_reference:  # drawn last: p = 0 keeps the stream
            refs[0] = synthetic.render(ident, target, self.size, jitter=int(rng.integers(2**31)))
        return make_item(hq.image, lq, [r.image for r in refs], hq.landmarks, [r.landmarks for r in refs],
                         self.refs_max, self.num_points, synthetic_identity_name(self.seed, ident_idx), index)


def write_synthetic_identity_folders(out: str | os.PathLike, seed: int, identities: int, images_per_identity: int,
                                    size: int = 128, overwrite: bool = False, progress: bool = True) -> tuple[int, int]:
    """Render synthetic identities to ``out/<synth{seed}_{i:05d}>/{j:03d}.png`` + ``{j:03d}.json`` landmarks.

    Existing images are kept unless ``overwrite`` (so an interrupted run resumes). Returns
    (written, skipped) image counts.
    """
    from tqdm import tqdm

    out = Path(out)
    written = skipped = 0
    for i in tqdm(range(identities), desc="synth", unit="identity", disable=not progress):
        ident = synthetic.sample_identity(seed, i)
        folder = out / synthetic_identity_name(seed, i)
        for j in range(images_per_identity):
            path = folder / f"{j:03d}.png"
            if path.exists() and landmarks_path(path).exists() and not overwrite:
                skipped += 1
                continue
            shot = synthetic.render(ident, j, size)
            write_landmarks(landmarks_path(path), shot.landmarks, size, size)
            save_image(Image.fromarray(shot.image), path)
            written += 1
    return written, skipped


__all__ = [
    "IdentityRecord", "IdentityFolderDataset", "SyntheticIdentityDataset", "ImageError", "identity_images",
    "landmarks_path", "load_square", "make_item", "pad_landmarks", "read_landmarks", "sample_references",
    "scan_identity_folders", "square_landmarks", "synthetic_identity_name", "write_landmarks",
    "write_synthetic_identity_folders",
]

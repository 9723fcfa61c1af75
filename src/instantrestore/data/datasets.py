"""Identity datasets for training: photos on disk (``IdentityFolderDataset``) or synthetic people
rendered on the fly (``SyntheticIdentityDataset``), and writing synthetic people to identity folders.

Every dataset returns the training item of ``items.make_item``: a degraded target, its ground truth
and 1..refs_max other photos of the same identity, each item drawn from an rng seeded by
(seed, epoch, index) so data is reproducible in any worker order.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..utils.outputs import DONE, FOREIGN, OTHER, TODO, FolderRecord, png_bytes
from . import synthetic
from .degradations import DegradationPreset, get_preset, random_degrade
from .folders import checked_records, load_square, square_landmarks, survey_identity_folders
from .items import check_refs, item_rng, make_item, sample_references
from .landmark_files import landmarks_path, landmarks_text, read_landmarks
from .manifest import excluded_images


class IdentityFolderDataset(Dataset):
    """Photos organised by identity on disk; item i = image i as the degraded target plus references.

    root: any layout of ``scan_identity_folders``; size: output side (centre-crop + resize);
    preset: degradation preset name or ``DegradationPreset``; landmarks: "auto" (side files where
    present, NaN elsewhere; P = 0 when no side file exists), "none" (P = 0) or "require".
    ``num_points`` fixes P (rows are NaN-padded or cut), e.g. 68 + MAX_MARKS to match
    ``SyntheticIdentityDataset``; by default P is the longest side file found.
    ``epoch`` changes every draw; item i depends only on (seed, epoch, i). ``prepared``: leave out
    the images ``instantrestore prepare-data`` excluded (its ``ROOT/prepared.json``, if any).
    """

    def __init__(self, root: str | os.PathLike, size: int = 512, refs_max: int = 4, preset: str | DegradationPreset = "paper",
                 seed: int = 0, landmarks: str = "auto", refs_min: int = 1, epoch: int = 0, verify: bool = True,
                 num_points: int | None = None, prepared: bool = True):
        check_refs(refs_min, refs_max)
        if landmarks not in ("auto", "none", "require"):
            raise ValueError(f"landmarks must be 'auto', 'none' or 'require', got {landmarks!r}")
        self.root, self.size, self.refs_max, self.refs_min = Path(root), int(size), int(refs_max), int(refs_min)
        self.preset, self.seed, self.epoch = get_preset(preset), int(seed), int(epoch)
        exclude = excluded_images(self.root) if prepared else {}
        self.survey = survey_identity_folders(self.root, verify=verify, exclude=exclude)
        self.identities = checked_records(self.root, self.survey)
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

    def has_landmarks(self, path: Path) -> bool:
        """Whether image ``path`` has a side file with at least one finite landmark."""
        found = self._landmarks.get(path)
        return found is not None and bool(np.isfinite(found[0]).all(axis=1).any())

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
        rng = item_rng(self.seed, self.epoch, index)
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
        check_refs(refs_min, refs_max)
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
        """Draw different references and degradations (re-create workers for it to take effect)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_identities * self.images_per_identity

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        rng = item_rng(self.seed, self.epoch, index)
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


@dataclass(frozen=True)
class WriteReport:
    """What a data writer (``synth``, ``make-testset``) did: ``written`` and ``skipped`` (complete,
    made alike: resumed) items, and the files it kept as they were (``folder/name``): ``other``
    (made by it with other settings) and ``foreign`` (no record of it writing them)."""

    written: int
    skipped: int
    other: tuple[str, ...] = ()
    foreign: tuple[str, ...] = ()


class ReportCounter:
    """Counts a writer's items by their ``FolderRecord.status``; ``report()`` the ``WriteReport``."""

    def __init__(self) -> None:
        self.written = self.skipped = 0
        self.kept: dict[str, list[str]] = {OTHER: [], FOREIGN: []}

    def take(self, folder: Path, status: tuple[str, list[str]]) -> bool:
        """Whether the item of ``status`` is to be written (else counted as skipped or kept)."""
        verdict, names = status
        if verdict == DONE:
            self.skipped += 1
        elif verdict != TODO:
            self.kept[verdict].extend(f"{folder.name}/{name}" for name in names)
        return verdict == TODO

    def report(self) -> WriteReport:
        return WriteReport(self.written, self.skipped, tuple(self.kept[OTHER]), tuple(self.kept[FOREIGN]))


def write_synthetic_identity_folders(out: str | os.PathLike, seed: int, identities: int, images_per_identity: int,
                                    size: int = 128, overwrite: bool = False, progress: bool = True) -> WriteReport:
    """Render synthetic identities to ``out/<synth{seed}_{i:05d}>/{j:03d}.png`` + ``{j:03d}.json`` landmarks.

    Each folder's ``FolderRecord`` (``.instantrestore.json``) names what synth wrote there; an image
    and its landmarks written alike are skipped (an interrupted run resumes), files it did not
    write or wrote with other settings are kept (``WriteReport.foreign``/``other``) unless ``overwrite``.
    """
    from tqdm import tqdm

    out = Path(out)
    counter = ReportCounter()
    for i in tqdm(range(identities), desc="synth", unit="identity", disable=not progress):
        ident = synthetic.sample_identity(seed, i)
        folder = out / synthetic_identity_name(seed, i)
        record = FolderRecord(folder, "synth")
        for j in range(images_per_identity):
            names = [f"{j:03d}.png", f"{j:03d}.json"]
            made = {"command": "synth", "seed": int(seed), "identity": i, "image": j, "size": int(size)}
            if not counter.take(folder, record.status(names, made, overwrite)):
                continue
            shot = synthetic.render(ident, j, size)
            record.write({names[1]: landmarks_text(shot.landmarks, size, size), names[0]: png_bytes(shot.image)}, made)
            counter.written += 1
    return counter.report()

"""The reports of a whole-photo restore read back: one photo's (``read_report``) and the whole job's
``Summary``, counted from the reports on disk so that resumed and sharded runs count every photo.
A photo counts as restored only when one of its faces was; a face kept by choice (matched no one,
not the largest) is not a problem, one kept because a step failed is."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .photo_files import PhotoOutputs

CHOSEN_STEPS = ("match", "largest-face")  # a face kept for these was kept by choice, not by a failure


def restored_faces(report: dict) -> int:
    """How many faces of a photo's report were restored (with references or blind)."""
    return sum(face.get("restored") in ("references", "blind") for face in report.get("faces", []))


@dataclass
class Summary:
    """Counts over the reports of a job: photos (with faces restored, without, unreadable), faces found,
    restored with references / blind / kept, and every problem (photo-level, and faces kept because a
    step failed)."""

    photos: int = 0
    restored_photos: int = 0
    unreadable: int = 0
    faces: int = 0
    references: int = 0
    blind: int = 0
    kept: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, report: dict) -> None:
        name = Path(report["photo"]).name
        self.photos += 1
        self.unreadable += "output" in report and report["output"] is None
        self.restored_photos += restored_faces(report) > 0
        self.problems += [f"{name}: {line}" for line in report.get("problems", [])]
        for face in report.get("faces", []):
            self.faces += 1
            how = face.get("restored")
            self.references += how == "references"
            self.blind += how == "blind"
            self.kept += how not in ("references", "blind")
            fallback = face.get("fallback")
            if fallback and fallback.get("step") not in CHOSEN_STEPS:
                self.problems.append(f"{name}#{face['index']}: {fallback['step']}: {fallback['reason']}")

    def line(self) -> str:
        problems = f"; {len(self.problems)} problem(s)" if self.problems else ""
        unreadable = f", {self.unreadable} unreadable (not written)" if self.unreadable else ""
        none = self.photos - self.restored_photos - self.unreadable
        return (f"{self.photos} photo(s): {self.restored_photos} with faces restored, {none} with none{unreadable}; "
                f"{self.faces} face(s) found: {self.references} restored with references, {self.blind} blind, "
                f"{self.kept} kept{problems}")


def read_report(path: Path) -> dict | None:
    """A report this job wrote, or None (missing or not readable)."""
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and "photo" in report else None


def summarize(outputs: list[PhotoOutputs]) -> Summary:
    """The summary of a whole job from the reports on disk (so resumed and sharded runs count every photo)."""
    summary = Summary()
    for o in outputs:
        report = read_report(o.report)
        if report is not None and os.path.basename(str(report["photo"])) == o.photo.name:
            summary.add(report)
    return summary

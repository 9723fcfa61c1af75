"""The synthetic benchmark's rows: the settings it runs (``RowSpec``, ``DEFAULT_ROWS``), the sanity
rows, and what each row gives (``RowResult``; ``SynthResults`` for a whole run). docs/benchmark.md
defines every column."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class RowSpec:
    """One benchmark setting: how many references, whose, and which inference toggles/model."""

    name: str
    refs: int
    wrong: bool = False
    adain: bool | None = None  # None: the model's config
    attention_mode: str | None = None
    model: str = "main"  # "main" or "no_las" (the second model, trained without the LAS loss)
    oracle: bool = False  # the only reference is the ground truth re-rendered with jitter


DEFAULT_ROWS: tuple[RowSpec, ...] = (
    RowSpec("oracle reference", 1, oracle=True), RowSpec("blind", 0), RowSpec("1 ref", 1), RowSpec("2 refs", 2), RowSpec("3 refs", 3), RowSpec("4 refs", 4),
    RowSpec("4 refs, AdaIN off", 4, adain=False), RowSpec("4 refs, concat attention", 4, attention_mode="concat"),
    RowSpec("4 refs, LAS off (2nd model)", 4, model="no_las"), RowSpec("4 wrong refs", 4, wrong=True),
)
SANITY_ROWS = ("degraded input", "clean reference photo", "ground truth")
COLUMNS = ("psnr", "ssim", "id_sim", "id_sim_other", "mark_recovery", "eye_color_error", "attention_mass",
           "attention_chance", "ms_per_image")


@dataclass
class RowResult:
    """Means over identities (``mark_recovery`` pools every mark); None where a column does not apply."""

    name: str
    kind: str  # "setting" or "sanity"
    psnr: float | None = None
    ssim: float | None = None
    id_sim: float | None = None
    id_sim_std: float | None = None
    id_sim_other: float | None = None
    mark_recovery: float | None = None
    eye_color_error: float | None = None
    attention_mass: float | None = None
    attention_chance: float | None = None
    ms_per_image: float | None = None
    n: int = 0
    per_identity_id_sim: list[float] = field(default_factory=list)



@dataclass
class SynthResults:
    """Everything the report needs: rows, targets, settings, and grid images for a few identities."""

    rows: list[RowResult]
    targets: list[dict]
    settings: dict
    grid: list[dict] = field(default_factory=list)  # per identity: column name -> uint8 image(s)

    def row(self, name: str) -> RowResult | None:
        """The row called ``name``, or None when it was not run."""
        return next((r for r in self.rows if r.name == name), None)

    def to_json(self) -> dict:
        """What ``results.json`` holds: settings, rows and targets (the grid images stay out)."""
        return {"settings": self.settings, "rows": [asdict(r) for r in self.rows], "targets": self.targets}

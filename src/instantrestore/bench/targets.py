"""The synthetic benchmark's targets: what references must bring over blind restoration, checked
against a run's rows with the real numbers in each verdict (docs/benchmark.md, "Targets")."""
from __future__ import annotations

from .rows import RowResult, SynthResults

ORACLE_MARKS_TARGET = 0.8  # the ground truth as the only reference: the model can copy at all
MARK_MARGIN_TARGET = 0.5   # 4 references vs blind, share of marks present
EYE_RATIO_TARGET = 0.5     # eye-colour error with 4 references at most this share of blind's
ID_MARGIN_TARGET = 0.2     # identity similarity, 4 references vs blind (the paper's gain over blind ~0.15)
RISE_ID_TARGET, RISE_MARKS_TARGET = 0.03, 0.05  # 1 -> 4 references
PULL_MIN_TARGET = 0.1      # 4 wrong references pull toward their owner
MASS_TARGET = 0.3          # correct-region attention mass with the landmark loss (uniform ~0.017)


def _target(name: str, passed: bool | None, detail: str) -> dict:
    return {"target": name, "passed": passed, "detail": detail}


def _have(*rows: RowResult | None, column: str) -> bool:
    return all(r is not None and getattr(r, column) is not None for r in rows)


def check_targets(results: SynthResults) -> list[dict]:
    """The benchmark's targets as {"target", "passed" (None = not run), "detail" with the real numbers}."""
    r = results.row
    oracle, blind, one, four, wrong = r("oracle reference"), r("blind"), r("1 ref"), r("4 refs"), r("4 wrong refs")
    out = []
    if _have(oracle, column="mark_recovery"):
        out.append(_target(f"oracle reference: marks present >= {ORACLE_MARKS_TARGET:.0%}",
                           oracle.mark_recovery >= ORACLE_MARKS_TARGET, f"{oracle.mark_recovery:.1%}"))
    if _have(blind, four, column="mark_recovery"):
        gain = four.mark_recovery - blind.mark_recovery
        out.append(_target(f"marks present 4 refs >= blind + {MARK_MARGIN_TARGET:.0%} points", gain >= MARK_MARGIN_TARGET,
                           f"4 refs {four.mark_recovery:.1%} vs blind {blind.mark_recovery:.1%} ({100 * gain:+.1f} points)"))
    if _have(blind, four, column="eye_color_error"):
        ratio = four.eye_color_error / max(blind.eye_color_error, 1e-9)
        out.append(_target(f"eye-colour error 4 refs <= {EYE_RATIO_TARGET} x blind", ratio <= EYE_RATIO_TARGET,
                           f"4 refs {four.eye_color_error:.1f} vs blind {blind.eye_color_error:.1f} (x{ratio:.2f})"))
    if _have(blind, four, column="id_sim"):
        gain = four.id_sim - blind.id_sim
        out.append(_target(f"id sim 4 refs >= blind + {ID_MARGIN_TARGET}", gain >= ID_MARGIN_TARGET,
                           f"4 refs {four.id_sim:.3f} vs blind {blind.id_sim:.3f} ({gain:+.3f})"))
    if _have(one, four, column="id_sim") and _have(one, four, column="mark_recovery"):
        d_id, d_marks = four.id_sim - one.id_sim, four.mark_recovery - one.mark_recovery
        out.append(_target(f"1 -> 4 refs: id sim +{RISE_ID_TARGET} and marks +{RISE_MARKS_TARGET:.0%} points",
                           d_id >= RISE_ID_TARGET and d_marks >= RISE_MARKS_TARGET,
                           f"id {one.id_sim:.3f} -> {four.id_sim:.3f} ({d_id:+.3f}); marks {one.mark_recovery:.1%} -> "
                           f"{four.mark_recovery:.1%} ({100 * d_marks:+.1f} points)"))
    if _have(blind, wrong, column="id_sim_other"):
        pull = wrong.id_sim_other - blind.id_sim_other
        out.append(_target(f"4 wrong refs pull toward their owner by >= {PULL_MIN_TARGET}", pull >= PULL_MIN_TARGET,
                           f"sim to the wrong person {wrong.id_sim_other:.3f} vs blind {blind.id_sim_other:.3f} "
                           f"({pull:+.3f}); to the true person {wrong.id_sim:.3f} vs blind {blind.id_sim:.3f}"))
    no_adain = r("4 refs, AdaIN off")
    if _have(four, no_adain, column="psnr"):
        out.append(_target("AdaIN not worse in PSNR", four.psnr >= no_adain.psnr,
                           f"AdaIN on {four.psnr:.3f} dB vs off {no_adain.psnr:.3f} dB ({four.psnr - no_adain.psnr:+.3f})"))
    no_las = r("4 refs, LAS off (2nd model)")
    if _have(four, column="attention_mass"):
        detail = f"with LAS {four.attention_mass:.3f} (uniform attention: {four.attention_chance:.3f})"
        passed = four.attention_mass >= MASS_TARGET
        if _have(no_las, column="attention_mass"):
            detail += f" vs without {no_las.attention_mass:.3f}"
            passed = passed and four.attention_mass > no_las.attention_mass
        else:
            detail += "; no LAS-off model given"
        out.append(_target(f"landmark loss: correct-region attention mass >= {MASS_TARGET} (and above LAS off)",
                           passed, detail))
    return out

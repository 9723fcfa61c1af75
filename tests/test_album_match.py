"""album_match.py: the open-set decision (threshold, margin over the second-best person, both rising
with degradation; reduced strength for a small lead) pinned on fixed embeddings and scores."""
from __future__ import annotations

import math

import pytest
import torch

from instantrestore.pipeline.album_match import (DLIB_RULE, MatchRule, decide_match, match_face, person_scores,
                                                 rule_for)

RULE = MatchRule(threshold=0.92, degraded_threshold=0.94, margin=0.01, degraded_margin=0.03, ramp=(0.5, 1.0),
                 soft_margin=0.02, min_strength_scale=0.5)


def unit(*values: float) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.tensor(values, dtype=torch.float32), dim=0)


def test_requirements_ramp_with_degradation_and_unknown_is_strictest():
    assert RULE.threshold_at(0.0) == RULE.threshold_at(0.5) == pytest.approx(0.92)
    assert RULE.threshold_at(0.75) == pytest.approx(0.93)
    assert RULE.threshold_at(1.0) == RULE.threshold_at(None) == pytest.approx(0.94)
    assert RULE.margin_at(0.2) == pytest.approx(0.01) and RULE.margin_at(0.75) == pytest.approx(0.02)
    assert RULE.margin_at(None) == pytest.approx(0.03)
    with pytest.raises(ValueError, match="ramp"):
        MatchRule(ramp=(0.8, 0.8))


def test_clear_match_is_taken_at_full_strength():
    m = decide_match({"ann": 0.96, "bob": 0.90}, RULE, degradation=0.2)
    assert (m.person, m.closest, m.second) == ("ann", "ann", "bob")
    assert m.margin == pytest.approx(0.06) and m.strength_scale == 1.0 and m.reason is None


def test_below_the_threshold_no_one():
    m = decide_match({"ann": 0.915, "bob": 0.80}, RULE, degradation=0.2)
    assert m.person is None and m.closest == "ann" and m.strength_scale is None
    assert m.reason == "matches no person of the album (closest ann: similarity 0.915 < 0.920 for a face of " \
                       "degradation 0.20)"


def test_small_margin_over_the_second_best_is_too_close_to_call():
    m = decide_match({"ann": 0.95, "bob": 0.945, "cy": 0.7}, RULE, degradation=0.2)
    assert m.person is None and m.closest == "ann" and m.second == "bob"
    assert "too close to call" in m.reason and "margin 0.005 < 0.010" in m.reason and "bob" in m.reason


def test_the_same_scores_pass_when_sharp_and_fail_when_degraded():
    scores = {"ann": 0.935, "bob": 0.91}  # lead 0.025
    assert decide_match(scores, RULE, degradation=0.1).person == "ann"
    degraded = decide_match(scores, RULE, degradation=1.0)  # needs 0.94 and a lead of 0.03
    assert degraded.person is None and "0.935 < 0.940" in degraded.reason
    close = decide_match({"ann": 0.93574, "bob": 0.8}, RULE, degradation=1.0)
    assert close.person is None and "0.9357 < 0.9400" not in close.reason and "0.936 < 0.940" in close.reason
    tight = decide_match({"ann": 0.92031, "bob": 0.8}, MatchRule(threshold=0.9204), degradation=0.0)
    assert "similarity 0.9203 < 0.9204" in tight.reason  # 4 decimals where 3 would read "0.920 < 0.920"
    unknown = decide_match(scores, RULE, degradation=None)
    assert unknown.person is None and "for a face of degradation" not in unknown.reason


def test_small_lead_restores_at_reduced_strength():
    at_requirement = decide_match({"ann": 0.95, "bob": 0.94}, RULE, degradation=0.0)  # lead 0.01 = required
    assert at_requirement.person == "ann" and at_requirement.strength_scale == pytest.approx(0.5)
    halfway = decide_match({"ann": 0.95, "bob": 0.93}, RULE, degradation=0.0)  # 0.01 above the requirement
    assert halfway.strength_scale == pytest.approx(0.75)
    off = decide_match({"ann": 0.95, "bob": 0.94}, MatchRule(margin=0.01, soft_margin=0.0), degradation=0.0)
    assert off.strength_scale == 1.0


def test_one_person_album_needs_only_the_threshold_and_empty_album_matches_no_one():
    m = decide_match({"ann": 0.93}, RULE, degradation=0.0)
    assert m.person == "ann" and m.second is None and m.margin is None and m.strength_scale == 1.0
    empty = decide_match({}, RULE, degradation=0.0)
    assert empty.person is None and empty.closest is None and empty.reason == "the album has no usable reference photo"


def test_ties_go_to_the_later_name_and_are_never_a_match():
    m = decide_match({"ann": 0.95, "bob": 0.95}, RULE, degradation=0.0)
    assert m.closest == "bob" and m.person is None and m.margin == 0.0


def test_person_scores_are_mean_similarities_to_each_reference():
    face = unit(1.0, 0.0, 0.0)
    refs = {"ann": torch.stack([unit(1.0, 0.0, 0.0), unit(0.0, 1.0, 0.0)]),  # cos 1 and 0
            "bob": 3.0 * unit(1.0, 1.0, 0.0),                               # one reference, any norm
            "nobody": torch.zeros(0, 3)}
    scores = person_scores(face, refs)
    assert set(scores) == {"ann", "bob"}
    assert scores["ann"] == pytest.approx(0.5) and scores["bob"] == pytest.approx(1 / math.sqrt(2))


def test_many_references_do_not_make_a_person_closer_to_everyone():
    """A mean over references, not the nearest one: one look-alike photo among many does not win."""
    face = unit(1.0, 0.0, 0.0)
    crowd = torch.stack([unit(1.0, 0.0, 0.0)] + [unit(0.0, 1.0, 0.0)] * 9)  # one photo like the face, nine not
    own = torch.stack([unit(0.97, 0.243, 0.0)] * 2)
    m = match_face(face, {"crowd": crowd, "own": own}, DLIB_RULE, degradation=0.0)
    assert m.person == "own" and m.similarities["crowd"] == pytest.approx(0.1)


def test_rule_for_dlib_is_the_calibrated_rule_and_others_scale_with_their_threshold():
    assert rule_for("dlib", 0.92) is DLIB_RULE
    arc = rule_for("onnx:arcface.onnx", 0.3)
    scale = 0.7 / 0.08
    assert arc.threshold == 0.3
    assert arc.degraded_threshold == pytest.approx(0.3 + (DLIB_RULE.degraded_threshold - 0.92) * scale)
    assert arc.degraded_margin == pytest.approx(DLIB_RULE.degraded_margin * scale)
    assert arc.ramp == DLIB_RULE.ramp


def test_scaled_strength_and_the_report_fields():
    m = decide_match({"ann": 0.95, "bob": 0.93}, RULE, degradation=0.0)  # lead 0.02: scale 0.75
    value, note = m.scaled(0.8)
    assert value == pytest.approx(0.6) and note == ("matched ann by a small margin (0.020 over bob, 0.010 "
                                                    "required): restored at strength 0.60 instead of 0.80")
    assert decide_match({"ann": 0.99, "bob": 0.8}, RULE, degradation=0.0).scaled(0.8) == (0.8, None)
    assert m.report() == {"person": "ann", "closest": "ann", "similarity": 0.95, "second": "bob",
                          "margin": pytest.approx(0.02), "degradation": 0.0}

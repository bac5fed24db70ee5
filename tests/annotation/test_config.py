"""The labeling config generated from the ontology classes."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from annotation.config import (
    DECISION,
    LABELS,
    REASON,
    REJECT_REASONS,
    TARGET,
    config_labels,
    label_colour,
    labeling_config,
)
from annotation.tasks import record_classes
from parallelner.reasons import Reason
from schemas.label_maps import label_map_for
from schemas.ontology import ontology_classes


def test_one_label_per_class_with_distinct_colours() -> None:
    classes = set(label_map_for("cluener").values()) | set(label_map_for("wikineural").values())
    xml = labeling_config(classes)
    root = ET.fromstring(xml)
    labels = [lbl for lbls in root.iter("Labels") for lbl in lbls.iter("Label")]
    assert sorted(lbl.get("value") for lbl in labels) == sorted(classes)
    colours = [lbl.get("background") for lbl in labels]
    assert len(set(colours)) == len(colours)
    assert config_labels(xml) == classes


def test_every_label_is_an_ontology_class(pud_records) -> None:
    classes = record_classes(pud_records)
    assert classes and classes <= set(ontology_classes())


def test_decision_reasons_and_comment_point_at_the_target() -> None:
    root = ET.fromstring(labeling_config({"Person"}))
    controls = {el.get("name"): el for el in root.iter() if el.get("toName")}
    assert {LABELS, DECISION, REASON, "comment"} <= set(controls)
    assert all(el.get("toName") == TARGET for el in controls.values())
    assert controls[REASON].get("whenChoiceValue") == "Reject"
    assert [c.get("value") for c in controls[DECISION].iter("Choice")] == ["Accept", "Reject"]
    # every reason choice maps to a review reason code
    assert {Reason(code) for code in REJECT_REASONS.values()} == {
        r
        for r in Reason
        if r.value.startswith("review_")
        and r not in (Reason.REVIEW_CORRECTED, Reason.REVIEW_ACCEPTED)
    }


def test_source_side_is_read_only_html() -> None:
    root = ET.fromstring(labeling_config({"Person"}))
    src = [el for el in root.iter("HyperText") if el.get("name") == "src"]
    assert src and src[0].get("value") == "$src_html"
    assert not [el for el in root.iter() if el.get("toName") == "src"]


def test_class_names_are_escaped() -> None:
    xml = labeling_config({'A "quoted" <class> & co'})
    assert config_labels(xml) == {'A "quoted" <class> & co'}


def test_empty_class_set_is_refused() -> None:
    with pytest.raises(ValueError):
        labeling_config(set())


def test_colour_is_stable() -> None:
    assert label_colour("Person") == label_colour("Person")
    assert label_colour("Person").startswith("#") and len(label_colour("Person")) == 7

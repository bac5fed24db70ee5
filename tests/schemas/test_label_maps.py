"""Label maps: every dataset label resolves to an ontology class; adding maps is validated."""

from __future__ import annotations

import json

import pytest

from schemas import label_maps
from schemas.label_maps import class_for_label, known_datasets, label_map_for, register_label_map
from schemas.ontology import ontology_classes

from .conftest import DATA

ONTONOTES_18 = {
    "PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART",
    "LAW", "LANGUAGE", "DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL", "CARDINAL",
}  # fmt: skip


@pytest.fixture
def registry(monkeypatch):
    """Let a test register maps without leaking them into other tests."""
    monkeypatch.setattr(label_maps, "_MAPS", dict(label_maps._MAPS))


def test_the_four_datasets_are_known():
    assert set(known_datasets()) >= {"conll", "wikineural", "cluener", "ontonotes"}


@pytest.mark.parametrize("name", ["europarl-en-de", "pud-en-zh"])
def test_the_human_translated_pairs_have_a_label_map_for_every_label(name):
    dataset = name.split("-")[0]
    labels = set()
    with (DATA / "projection-dev" / f"{name}.jsonl").open(encoding="utf-8") as f:
        for line in f:
            labels.update(e["label"] for e in json.loads(line)["source"]["entities"])
    assert labels <= set(label_map_for(dataset)), dataset


@pytest.mark.parametrize("dataset", ["conll", "wikineural", "cluener", "ontonotes"])
def test_every_label_of_every_map_resolves_to_an_ontology_class(dataset):
    classes = ontology_classes()
    mapping = label_map_for(dataset)
    assert mapping
    for label, target in mapping.items():
        assert target in classes, (dataset, label, target)
        assert target != "Entity", "a label must say more than the base class"


def test_conll_and_wikineural_share_one_map_of_four_labels():
    assert label_map_for("conll") == label_map_for("wikineural")
    assert set(label_map_for("conll")) == {"PER", "ORG", "LOC", "MISC"}


def test_wikineural_map_covers_every_tag_in_the_real_file():
    types = set()
    with (DATA / "sources" / "wikineural-en-val.conllu").open(encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3 and parts[2] != "O":
                types.add(parts[2][2:])
    assert types == set(label_map_for("wikineural"))


def test_cluener_map_covers_the_ten_types_in_the_real_training_file():
    types = set()
    with (DATA / "sources" / "cluener-train.json").open(encoding="utf-8") as f:
        for line in f:
            types.update(json.loads(line)["label"])
    assert len(types) == 10
    assert types == set(label_map_for("cluener"))


def test_ontonotes_map_has_the_eighteen_types():
    assert set(label_map_for("ontonotes")) == ONTONOTES_18


@pytest.mark.parametrize(
    ("dataset", "label", "target"),
    [
        ("cluener", "name", "Person"),
        ("cluener", "government", "GovernmentAgency"),
        ("cluener", "scene", "Scene"),
        ("cluener", "company", "Company"),
        ("ontonotes", "GPE", "GeopoliticalEntity"),
        ("ontonotes", "WORK_OF_ART", "CreativeWork"),
        ("conll", "MISC", "Miscellaneous"),
        ("CoNLL", "PER", "Person"),
    ],
)
def test_class_for_label(dataset, label, target):
    assert class_for_label(dataset, label) == target


def test_unknown_dataset_error_names_the_known_datasets():
    with pytest.raises(
        KeyError, match="'wikiann'.*cluener, conll, europarl, ontonotes, pud, wikineural"
    ):
        label_map_for("wikiann")


def test_unknown_label_error_names_the_dataset_labels():
    with pytest.raises(KeyError, match="'PERSON' is not in the conll label map; known: PER"):
        class_for_label("conll", "PERSON")


def test_returned_map_is_a_copy(registry):
    label_map_for("conll")["PER"] = "Location"
    assert label_map_for("conll")["PER"] == "Person"


def test_register_adds_a_dataset(registry):
    register_label_map("WikiANN", {"PER": "Person", "ORG": "Organization", "LOC": "Location"})
    assert "wikiann" in known_datasets()
    assert class_for_label("wikiann", "LOC") == "Location"


def test_register_rejects_unknown_target_classes_and_keeps_nothing(registry):
    with pytest.raises(ValueError, match="unknown ontology classes: Persn, Place"):
        register_label_map("broken", {"PER": "Persn", "LOC": "Place", "ORG": "Organization"})
    assert "broken" not in known_datasets()

"""The ontology classes: registry, hierarchy, docstrings and the source shown to the model."""

from __future__ import annotations

import ast
import inspect
import re

import pytest

from schemas.ontology import (
    Entity,
    class_source,
    get_class,
    ontology_classes,
    parent_chain,
    type_info,
)

CJK = re.compile(r"[\u4e00-\u9fff]")
ALL = list(ontology_classes())


def test_registry_starts_with_the_base_entity_and_holds_only_its_subclasses():
    classes = ontology_classes()
    assert ALL[0] == "Entity"
    assert len(classes) >= 25
    for name, cls in classes.items():
        assert cls.__name__ == name
        assert issubclass(cls, Entity)


@pytest.mark.parametrize(
    ("name", "chain"),
    [
        ("Person", ["Person", "Entity"]),
        ("Company", ["Company", "Organization", "Entity"]),
        ("GovernmentAgency", ["GovernmentAgency", "Organization", "Entity"]),
        ("SportsTeam", ["SportsTeam", "Organization", "Entity"]),
        ("Address", ["Address", "Location", "Entity"]),
        ("Scene", ["Scene", "Location", "Entity"]),
        ("Facility", ["Facility", "Location", "Entity"]),
        ("GeopoliticalEntity", ["GeopoliticalEntity", "Location", "Entity"]),
        ("Book", ["Book", "CreativeWork", "Entity"]),
        ("Movie", ["Movie", "CreativeWork", "Entity"]),
        ("Game", ["Game", "CreativeWork", "Entity"]),
        ("Entity", ["Entity"]),
    ],
)
def test_parent_chain_runs_from_the_class_up_to_entity(name, chain):
    assert parent_chain(name) == chain


def test_get_class_names_the_known_classes_when_the_name_is_unknown():
    assert get_class("Person").__name__ == "Person"
    with pytest.raises(KeyError, match="unknown ontology class 'Persn'.*Person"):
        get_class("Persn")


@pytest.mark.parametrize("name", ALL)
def test_docstring_has_description_english_and_chinese_names_and_examples(name):
    info = type_info(name)
    assert len(info.description) > 10
    assert set(info.names) >= {"en", "zh"}
    assert re.fullmatch(r"[a-z ,]+", info.names["en"]), info.names["en"]
    assert CJK.search(info.names["zh"]), info.names["zh"]
    assert len(info.examples) >= 3
    assert any(CJK.search(e) for e in info.examples)


@pytest.mark.parametrize("name", ALL)
def test_class_source_is_the_definition_with_its_docstring(name):
    source = class_source(name)
    module = ast.parse(source)
    (node,) = module.body
    assert isinstance(node, ast.ClassDef) and node.name == name
    bases = [b.id for b in node.bases]
    assert bases == ([] if name == "Entity" else [parent_chain(name)[1]])
    assert ast.get_docstring(node) == inspect.getdoc(get_class(name))


def test_base_entity_source_shows_its_constructor():
    assert "def __init__(self, name: str):" in class_source("Entity")
    assert get_class("Person")("Barack Obama").name == "Barack Obama"

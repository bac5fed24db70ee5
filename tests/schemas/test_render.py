"""Rendering: string literals, schema code, extraction and alignment prompts."""

from __future__ import annotations

import ast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.label_maps import class_for_label
from schemas.ontology import class_source
from schemas.parse import parse_results
from schemas.render import (
    ALIGNMENT_INSTRUCTION,
    EXTRACTION_INSTRUCTION,
    py_string,
    render_alignment_prompt,
    render_prompt,
    render_results,
    render_schema,
)

from .conftest import cluener_pairs, wikineural_pairs

TRICKY = [
    '"',
    "'",
    "\\",
    "\n",
    "\r",
    "\t",
    "\x00",
    "\x85",
    "\u2028",
    "\u2029",
    "😀",
    "𠀀",
    "\u200d",
    "\ud800",
]
# Any code point, lone surrogates included, with the tricky ones drawn often.
ANY_TEXT = st.text(
    st.one_of(st.characters(exclude_categories=()), st.sampled_from(TRICKY)), max_size=40
)


def assigned(code: str) -> dict[str, str]:
    """Return the string constants assigned at module level in ``code``, read with ast."""
    values = {}
    for node in ast.parse(code).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            values[node.targets[0].id] = node.value.value
    return values


@pytest.mark.parametrize(
    "text",
    [
        'He said "hi"',
        "C:\\Users\\new\\table",
        "line one\nline two\r\n",
        "tab\there",
        "emoji 😀 and ZWJ 👩‍💻",
        "CJK Extension B 𠀀𪜀 and 北京",
        "trailing backslash \\",
        '"""',
        "\u2028\u2029\x85\x0b\x0c",
        "",
    ],
)
def test_py_string_reads_back_identically(text):
    literal = py_string(text)
    assert ast.literal_eval(literal) == text
    assert "\n" not in literal and "\r" not in literal and "\u2028" not in literal


def test_py_string_keeps_printable_unicode_as_is():
    assert py_string("奥巴马 😀 𠀀") == '"奥巴马 😀 𠀀"'


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_py_string_round_trips_any_unicode(text):
    literal = py_string(text)
    assert ast.literal_eval(literal) == text
    assert len(literal.splitlines()) == 1


def test_render_schema_adds_ancestors_parents_first_and_is_valid_python():
    code = render_schema(["Company", "Book"])
    names = [n.name for n in ast.parse(code).body]
    assert names == ["Entity", "Organization", "Company", "CreativeWork", "Book"]
    assert class_source("Company") in code


def test_render_schema_rejects_classes_outside_the_ontology():
    with pytest.raises(KeyError, match="Persn"):
        render_schema(["Persn"])


def test_render_results_layout():
    assert render_results([]) == "results = []"
    assert (
        render_results([("Person", "Barack Obama"), ("Location", "Paris")])
        == 'results = [Person("Barack Obama"), Location("Paris")]'
    )


def test_render_results_rejects_class_names_that_would_not_parse():
    with pytest.raises(ValueError, match="not a Python identifier"):
        render_results([("Person(1)", "x")])


@pytest.mark.parametrize(
    ("dataset", "rows"),
    [("cluener", cluener_pairs(40)), ("wikineural", wikineural_pairs(40))],
)
def test_prompt_and_results_of_real_sentences_read_back_exactly(dataset, rows):
    for sentence, labelled in rows:
        entities = [(class_for_label(dataset, label), mention) for label, mention in labelled]
        prompt = render_prompt(sentence, {name for name, _ in entities} or {"Person"})
        assert assigned(prompt)["sentence"] == sentence
        assert EXTRACTION_INSTRUCTION in prompt
        assert parse_results(prompt).entities == ()
        parsed = parse_results(prompt + render_results(entities))
        assert parsed.ok
        assert list(parsed.entities) == entities


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT)
def test_prompt_is_valid_python_for_any_sentence(sentence):
    prompt = render_prompt(sentence, ["Person", "Location"])
    assert assigned(prompt)["sentence"] == sentence


def test_alignment_prompt_of_real_en_zh_pairs_reads_back_and_parses_the_gold_answer(pud_en_zh):
    assert len(pud_en_zh) > 100
    for example in pud_en_zh:
        src = [
            (class_for_label("conll", e["label"]), e["text"]) for e in example["source"]["entities"]
        ]
        gold = [(class_for_label("conll", e["label"]), e["text"]) for e in example["gold"]]
        prompt = render_alignment_prompt(example["source"]["text"], src, example["target"]["text"])
        values = assigned(prompt)
        assert values["source_sentence"] == example["source"]["text"]
        assert values["target_sentence"] == example["target"]["text"]
        assert ALIGNMENT_INSTRUCTION in prompt
        # The prompt's own source_results line is not mistaken for the answer ...
        assert parse_results(prompt).entities == ()
        # ... and it reads back exactly when taken on its own.
        source_line = next(
            line for line in prompt.splitlines() if line.startswith("source_results")
        )
        assert list(parse_results(source_line.removeprefix("source_")).entities) == src
        reply = parse_results(prompt + render_results(gold))
        assert reply.ok and list(reply.entities) == gold


def test_alignment_prompt_shows_the_source_classes_and_the_chosen_extra_ones():
    prompt = render_alignment_prompt(
        "Barack Obama visited Paris.",
        [("Person", "Barack Obama"), ("GeopoliticalEntity", "Paris")],
        "奥巴马访问了巴黎。",
        classes=["Company"],
    )
    shown = [n.name for n in ast.parse(prompt).body if isinstance(n, ast.ClassDef)]
    assert shown == [
        "Entity",
        "Person",
        "Organization",
        "Company",
        "Location",
        "GeopoliticalEntity",
    ]
    assert 'source_results = [Person("Barack Obama"), GeopoliticalEntity("Paris")]' in prompt

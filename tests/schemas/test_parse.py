"""Parsing replies: surrounding text, malformed code, unknown classes, truncation, safety."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.parse import ParsedEntity, ProblemKind, parse_results
from schemas.render import py_string, render_results

from .test_render import ANY_TEXT

CLASSES = st.sampled_from(["Person", "Organization", "Company", "Location", "Book", "Scene"])
ENTITY_LISTS = st.lists(st.tuples(CLASSES, ANY_TEXT.filter(bool)), max_size=6)


def kinds(result) -> list[str]:
    return [p.kind for p in result.problems]


@pytest.mark.parametrize(
    "reply",
    [
        'results = [Person("Barack Obama"), Location("Paris")]',
        'Sure! Here you go:\n```python\nresults = [Person("Barack Obama"), Location("Paris")]\n```\nDone.',
        'results = [\n    Person("Barack Obama"),  # the president\n    Location("Paris"),\n]',
        "results = [Person('Barack Obama'), Location(name=\"Paris\")]",
        '[Person("Barack Obama"), Location("Paris")]',
        'results=[Person("Barack" " Obama"), Location(r"Paris")]\nresults = [Person("ignored")]',
    ],
)
def test_accepts_the_results_list_in_its_usual_wrappings(reply):
    result = parse_results(reply)
    assert result.ok, result.problems
    assert result.entities == (
        ParsedEntity("Person", "Barack Obama"),
        ParsedEntity("Location", "Paris"),
    )


@pytest.mark.parametrize(
    ("reply", "kind", "kept"),
    [
        ('results = [Person(1), Location("Paris")]', ProblemKind.NOT_A_STRING, 1),
        ('results = [Person(f"{x}"), Location("Paris")]', ProblemKind.NOT_A_STRING, 1),
        ('results = [Person(b"Obama"), Location("Paris")]', ProblemKind.NOT_A_STRING, 1),
        ('results = [Person(obama), Location("Paris")]', ProblemKind.NOT_A_STRING, 1),
        ('results = [Person("a", "b"), Location("Paris")]', ProblemKind.NOT_AN_ENTITY, 1),
        ('results = [Person(text="a"), Location("Paris")]', ProblemKind.NOT_AN_ENTITY, 1),
        ('results = ["Obama", Location("Paris")]', ProblemKind.NOT_AN_ENTITY, 1),
        ('results = [x.Person("a"), Location("Paris")]', ProblemKind.NOT_AN_ENTITY, 1),
        ('results = [Person("Obama"), , Location("Paris")]', ProblemKind.NOT_AN_ENTITY, 2),
        ('results = [Person("Obama" Location("Paris")]', ProblemKind.MALFORMED, 0),
        ('results = [Person("Obama")), Location("Paris")]', ProblemKind.MALFORMED, 1),
        ('results = [Person(""), Location("Paris")]', ProblemKind.EMPTY_MENTION, 1),
        ('results = [Persn("Obama"), Location("Paris")]', ProblemKind.UNKNOWN_CLASS, 1),
        ('results = [Entity("Obama"), Location("Paris")]', ProblemKind.UNKNOWN_CLASS, 1),
        ("The sentence has no entities.", ProblemKind.NO_RESULTS, 0),
    ],
)
def test_bad_items_are_reported_and_the_good_ones_kept(reply, kind, kept):
    result = parse_results(reply)
    assert kind in kinds(result)
    assert len(result.entities) == kept
    assert not result.ok


def test_unknown_class_problem_carries_the_class_and_mention():
    result = parse_results('results = [Persn("Barack Obama")]')
    (problem,) = result.problems
    assert (problem.kind, problem.class_name, problem.mention) == (
        ProblemKind.UNKNOWN_CLASS,
        "Persn",
        "Barack Obama",
    )
    assert problem.item == 0 and problem.source == 'Persn("Barack Obama")'


def test_known_restricts_to_the_classes_shown_in_the_prompt():
    reply = 'results = [Person("Obama"), Company("Apple"), Location("Paris")]'
    result = parse_results(reply, known={"Person", "Location"})
    assert [e.mention for e in result.entities] == ["Obama", "Paris"]
    assert [(p.kind, p.class_name) for p in result.problems] == [
        (ProblemKind.UNKNOWN_CLASS, "Company")
    ]


def test_empty_list_is_fine():
    result = parse_results("results = []")
    assert result.ok and result.entities == ()


@pytest.mark.parametrize(
    ("reply", "mentions"),
    [
        ('results = [Person("Barack Obama"), Location("Par', ["Barack Obama"]),
        ('results = [Person("Barack Obama"), Location("Paris")', ["Barack Obama", "Paris"]),
        ('results = [Person("Barack Obama"), ', ["Barack Obama"]),
        ('results = [Person("Barack \\"Obama', []),
        ('results = [Person("""Barack', []),
        ("results = [", []),
    ],
)
def test_truncated_lists_keep_the_complete_items(reply, mentions):
    result = parse_results(reply)
    assert [e.mention for e in result.entities] == mentions
    assert kinds(result) == [ProblemKind.TRUNCATED]


@settings(max_examples=150, deadline=None)
@given(ENTITY_LISTS)
def test_render_then_parse_is_exact_for_any_unicode(entities):
    result = parse_results(render_results(entities))
    assert result.ok, result.problems
    assert list(result.entities) == entities


@settings(max_examples=150, deadline=None)
@given(ENTITY_LISTS.filter(bool), st.data())
def test_a_cut_anywhere_keeps_exactly_the_items_completed_before_it(entities, data):
    head = "results = ["
    items = [f"{cls}({py_string(mention)})" for cls, mention in entities]
    code = head + ", ".join(items) + "]"
    ends, position = [], len(head)
    for item in items:
        position += len(item)
        ends.append(position)
        position += 2
    cut = data.draw(st.integers(len(head), len(code) - 1))
    result = parse_results(code[:cut])
    complete = sum(end <= cut for end in ends)
    assert list(result.entities) == entities[:complete]
    assert kinds(result) == [ProblemKind.TRUNCATED]


@settings(max_examples=300, deadline=None)
@given(st.one_of(ANY_TEXT, ANY_TEXT.map(lambda s: "results = [" + s)))
def test_never_raises_on_arbitrary_text(reply):
    result = parse_results(reply)
    assert all(isinstance(e, ParsedEntity) for e in result.entities)
    assert result.ok == (not result.problems)


@pytest.mark.parametrize(
    "reply",
    [
        "results = [" + "(" * 5000,
        "results = [Person(" + "[" * 5000 + "]" * 5000 + ")]",
        "results = [Person(" + "-" * 100_000 + "1)]",
        "results = [Person('\x00')]",
    ],
)
def test_hostile_replies_are_reported_not_raised(reply):
    result = parse_results(reply)
    assert result.entities == () and not result.ok


def test_code_in_a_reply_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    reply = (
        f'results = [Person(__import__("pathlib").Path({str(marker)!r}).touch() or "x"),'
        f' Person(open({str(marker)!r}, "w").name)]'
    )
    result = parse_results(reply)
    assert not marker.exists()
    assert result.entities == ()
    assert kinds(result) == [ProblemKind.NOT_A_STRING, ProblemKind.NOT_A_STRING]

"""Span projection cascade on real sentences from data/projection-dev."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parallelner.align import Projection, normalize, project_spans
from parallelner.reasons import Reason
from parallelner.records import Instance

DEV = Path(__file__).resolve().parents[2] / "data" / "projection-dev"
FILES = ("europarl-en-de", "europarl-en-es", "europarl-en-it", "pud-en-zh")


@cache
def task(name: str, line: int) -> dict:
    """One projection task (1-based line number) of a dev file."""
    with open(DEV / f"{name}.jsonl", encoding="utf-8") as fh:
        for i, raw in enumerate(fh, 1):
            if i == line:
                return json.loads(raw)
    raise LookupError(f"{name}:{line}")


def run(name: str, line: int, mentions: dict[int, str] | None, **kw) -> Projection:
    d = task(name, line)
    return project_spans(
        Instance(**d["source"]), d["target"]["text"], d["target"]["lang"], mentions, **kw
    )


def placed(p: Projection) -> dict[int, tuple[int, int, str, str]]:
    return {e.source_index: (e.start, e.end, e.text, e.method) for e in p.entities}


# (file, line, translated mentions by source index, expected {index: (start, end, text, method)})
CASES = [
    pytest.param(
        "europarl-en-es",
        28,
        {0: "Parlamento", 1: "Indonesia", 2: "Parlamento", 3: "Indonesia"},
        {
            0: (44, 54, "Parlamento", "exact"),
            1: (175, 184, "Indonesia", "exact"),
            2: (231, 241, "Parlamento", "exact"),
            3: (283, 292, "Indonesia", "exact"),
        },
        id="exact-repeated-mentions-keep-source-order",
    ),
    pytest.param(
        "europarl-en-it",
        143,
        {0: "Commissione", 1: "commissione per l'agricoltura e lo sviluppo rurale"},
        {
            0: (91, 102, "Commissione", "exact"),
            1: (184, 236, "commissione per l ' agricoltura e lo sviluppo rurale", "normalized"),
        },
        id="normalized-spacing-around-apostrophe",
    ),
    pytest.param(
        "europarl-en-de",
        65,
        {0: "95/35/EG"},
        {0: (43, 55, "95 / 35 / EG", "normalized")},
        id="normalized-spacing-around-slashes",
    ),
    pytest.param(
        "europarl-en-de",
        2,
        {0: "Millennium-Bug"},
        {0: (52, 65, "Millenium-Bug", "fuzzy")},
        id="fuzzy-misspelling",
    ),
    pytest.param(
        "europarl-en-de",
        96,
        {0: "Europa", 1: "Europa"},
        {0: (35, 42, "Europas", "fuzzy"), 1: (99, 106, "Europas", "fuzzy")},
        id="fuzzy-inflection-snapped-to-whole-words-in-order",
    ),
    pytest.param(
        "europarl-en-de",
        1,
        {0: "Europäisches Parlament"},
        {0: (80, 103, "Europäischen Parlaments", "fuzzy")},
        id="fuzzy-two-inflected-words",
    ),
    pytest.param(
        "pud-en-zh",
        66,
        {0: "達菲", 1: "參議院", 2: "達菲"},
        {0: (3, 5, "達菲", "exact"), 1: (34, 37, "參議院", "exact"), 2: (19, 21, "達菲", "exact")},
        id="zh-repeated-names",
    ),
    pytest.param(
        "europarl-en-it",
        23,
        {0: "lei"},  # a weak model's "translation" of the name: a pronoun of the sentence
        {0: (10, 15, "Lynne", "source_copy")},
        id="verbatim-name-beats-a-wrong-translated-mention",
    ),
    pytest.param(
        "pud-en-zh",
        1,
        {0: "美国", 1: "奥巴马"},
        {0: (3, 5, "美國", "normalized"), 1: (36, 39, "奧巴馬", "normalized")},
        id="zh-simplified-mention-in-traditional-text",
    ),
    pytest.param(
        "pud-en-zh",
        1,
        {2: "科瑞舒爾曼"},
        {2: (44, 50, "科瑞·舒爾曼", "fuzzy")},
        id="zh-fuzzy-snapped-to-characters",
    ),
    pytest.param(
        "pud-en-zh",
        67,
        {0: "薩斯喀徹溫電信", 1: "林賽·蓋伊"},
        {0: (0, 7, "SaskTel", "source_copy"), 1: (14, 24, "LindsayGay", "source_copy")},
        id="zh-source-copy-latin-names-without-spaces",
    ),
]


@pytest.mark.parametrize(("name", "line", "mentions", "expected"), CASES)
def test_cascade_places_real_mentions(name, line, mentions, expected):
    p = run(name, line, mentions)
    got = placed(p)
    for idx, span in expected.items():
        assert got[idx] == span
    text = task(name, line)["target"]["text"]
    for e in p.entities:
        assert text[e.start : e.end] == e.text
        assert 0.0 <= e.score <= 1.0


def test_exact_match_never_cuts_a_word():
    # "Indo" occurs only inside "Indonesia": no exact match, too short for fuzzy.
    p = run("europarl-en-es", 28, {1: "Indo"})
    assert 1 not in {e.source_index for e in p.entities if e.method != "source_copy"}
    assert placed(p)[1][3] == "source_copy"  # the source "Indonesia" is found instead


def test_overlapping_candidate_is_not_given_twice():
    # Two entities translated to the same mention, which the target has once: the
    # first in source order gets it; the second is refused, with no overlapping span
    # (not even the fuzzy "奧巴馬的", which overlaps it).
    mentions = {0: "美國", 1: "奧巴馬", 2: "奧巴馬"}
    p = run("pud-en-zh", 1, mentions)
    spans = sorted((e.start, e.end) for e in p.entities)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert placed(p)[1][:3] == (36, 39, "奧巴馬")
    assert [(u.source_index, u.reason) for u in p.unprojected] == [(2, Reason.SPAN_TAKEN)]


def test_more_target_occurrences_than_source_is_reported_ambiguous():
    # One "Indonesia" in the source entity list, two in the target.
    d = task("europarl-en-es", 28)
    src = Instance(**{**d["source"], "entities": d["source"]["entities"][3:]})
    p = project_spans(src, d["target"]["text"], "es", {0: "Indonesia"})
    assert p.ambiguous == (0,)
    assert (p.entities[0].start, p.entities[0].end) == (283, 292)  # the later one, by position


def test_no_mentions_projects_the_source_mention():
    p = run("europarl-en-es", 28, None)
    assert placed(p) == {
        0: (44, 54, "Parlamento", "fuzzy"),  # "parliament" ~ "parlamento": ratio 0.9
        1: (175, 184, "Indonesia", "exact"),
        2: (231, 241, "Parlamento", "fuzzy"),
        3: (283, 292, "Indonesia", "exact"),
    }
    p = run("pud-en-zh", 66, None)  # English names do not occur in Chinese text
    assert [u.reason for u in p.unprojected] == [Reason.NOT_FOUND] * 3


@pytest.mark.parametrize(
    ("tgt_text", "lang", "reason"),
    [
        ("", "es", Reason.EMPTY_TARGET),
        ("   ", "es", Reason.EMPTY_TARGET),
        # the English source handed over as the "Chinese" target
        (task("pud-en-zh", 66)["source"]["text"], "zh", Reason.UNEXPECTED_SCRIPT),
        ("法官在達菲的欺詐和違反信託庭審中洗清了達菲的所有指控。", "es", Reason.UNEXPECTED_SCRIPT),
    ],
)
def test_unusable_target_leaves_every_entity_with_a_reason(tgt_text, lang, reason):
    src = Instance(**task("europarl-en-es", 28)["source"])
    p = project_spans(src, tgt_text, lang, None)
    assert p.entities == ()
    assert [u.reason for u in p.unprojected] == [reason] * 4


def test_mention_longer_than_the_target():
    src = Instance(**task("europarl-en-it", 143)["source"])
    p = project_spans(src, "Commissione .", "it", {1: "commissione per l'agricoltura"})
    assert placed(p)[0][:3] == (0, 11, "Commissione")
    assert [(u.source_index, u.reason) for u in p.unprojected] == [(1, Reason.MENTION_TOO_LONG)]


def test_higher_threshold_refuses_weaker_fuzzy_matches():
    assert placed(run("europarl-en-de", 2, {0: "Millennium-Bug"}, threshold=0.8))
    p = run("europarl-en-de", 2, {0: "Millennium-Bug"}, threshold=0.99)
    assert [u.reason for u in p.unprojected] == [Reason.NOT_FOUND]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("with_mentions", [False, True])
def test_every_entity_ends_exactly_once_with_valid_disjoint_spans(name, with_mentions):
    with open(DEV / f"{name}.jsonl", encoding="utf-8") as fh:
        for raw in fh:
            d = json.loads(raw)
            src = Instance(**d["source"])
            mentions = {i: g["text"] for i, g in enumerate(d["gold"])} if with_mentions else None
            text = d["target"]["text"]
            p = project_spans(src, text, d["target"]["lang"], mentions)
            ids = [e.source_index for e in p.entities] + [u.source_index for u in p.unprojected]
            assert sorted(ids) == list(range(len(src.entities)))
            spans = sorted((e.start, e.end) for e in p.entities)
            assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
            for e in p.entities:
                assert text[e.start : e.end] == e.text
                assert e.label == src.entities[e.source_index].label


@pytest.mark.parametrize(
    ("text", "query", "expected"),
    [
        (
            "Ｅｕｒｏｐäｉｓｃｈｅｓ Parlament",
            "europäisches parlament",
            "Ｅｕｒｏｐäｉｓｃｈｅｓ Parlament",
        ),
        ("der „Millenium – Bug“ kam", 'millenium-bug"', "Millenium – Bug“"),
        ("STRASSE  Nummer", "strasse nummer", "STRASSE  Nummer"),
        ("Die Straße", "die strasse", "Die Straße"),
    ],
)
def test_normalize_maps_back_to_exact_original_offsets(text, query, expected):
    n = normalize(text)
    i = n.text.find(query)
    assert i >= 0, n.text
    s, e = n.span(i, i + len(query))
    assert text[s:e] == expected


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(max_size=60), st.text(min_size=1, max_size=12), st.sampled_from(["de", "zh"]))
def test_random_text_never_breaks_the_cascade(tgt, mention, lang):
    src = Instance(id="h", lang="en", text="x " + mention, entities=[
        {"start": 2, "end": 2 + len(mention), "label": "PER", "text": mention}
    ])  # fmt: skip
    n = normalize(tgt)
    assert list(n.index) == sorted(n.index) and all(0 <= i < len(tgt) for i in n.index)
    for mentions in (None, {0: mention}):
        p = project_spans(src, tgt, lang, mentions)
        assert len(p.entities) + len(p.unprojected) == 1
        for e in p.entities:
            assert tgt[e.start : e.end] == e.text and e.end > e.start

"""CoNLL column files: schemes, columns, comments, -DOCSTART-, and token-to-text offsets."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parallelner.detok import tokens_to_text
from parallelner.errors import ConfigError, InputError
from parallelner.readers import ReadReport, read_instances
from parallelner.readers.conll import decode_tags
from parallelner.reasons import Reason

REPO = Path(__file__).resolve().parents[2]
CLUENER_HEAD = REPO / "tests" / "data" / "cluener-train-head.json"

# A real WikiNEuRal sentence (val, "and the costumes were designed by April Ferry ...").
TOKENS = [
    "and",
    "the",
    "costumes",
    "were",
    "designed",
    "by",
    "April",
    "Ferry",
    "and",
    "Neeta",
    "Lulla",
    ".",
]


def _write(tmp_path: Path, name: str, rows: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("scheme", "tags", "chunks", "repairs"),
    [
        ("iob2", ["B-PER", "I-PER", "O", "B-PER", "I-PER"], [(0, 1, "PER"), (3, 4, "PER")], []),
        (
            "iob2",
            ["I-PER", "I-PER", "O", "B-PER", "I-PER"],
            [(0, 1, "PER"), (3, 4, "PER")],
            [Reason.ORPHAN_INSIDE_TAG],
        ),
        (
            "iob2",
            ["B-PER", "I-ORG", "O", "O", "O"],
            [(0, 0, "PER"), (1, 1, "ORG")],
            [Reason.ORPHAN_INSIDE_TAG],
        ),
        # IOB1: I- opens an entity; B- only splits two adjacent entities of one type
        (
            "iob1",
            ["I-PER", "I-PER", "O", "I-PER", "B-PER"],
            [(0, 1, "PER"), (3, 3, "PER"), (4, 4, "PER")],
            [],
        ),
        (
            "bioes",
            ["B-PER", "E-PER", "O", "S-PER", "S-LOC"],
            [(0, 1, "PER"), (3, 3, "PER"), (4, 4, "LOC")],
            [],
        ),
        ("bioes", ["B-PER", "I-PER", "E-PER", "O", "O"], [(0, 2, "PER")], []),
        ("bioes", ["B-PER", "I-PER", "O", "O", "O"], [(0, 1, "PER")], [Reason.UNCLOSED_ENTITY]),
        (
            "bioes",
            ["O", "I-PER", "E-PER", "O", "B-LOC"],
            [(1, 2, "PER"), (4, 4, "LOC")],
            [Reason.ORPHAN_INSIDE_TAG, Reason.UNCLOSED_ENTITY],
        ),
    ],
)
def test_decode_tags_reads_each_scheme_like_conlleval(scheme, tags, chunks, repairs):
    got_chunks, got_repairs = decode_tags(tags, scheme)
    assert got_chunks == chunks
    assert [r[1] for r in got_repairs] == repairs


def test_conll2003_style_file_with_docstart_pos_columns_and_iob1(tmp_path):
    tags = ["O", "O", "O", "O", "O", "O", "I-PER", "I-PER", "O", "I-PER", "I-PER", "O"]
    rows = ["-DOCSTART- -X- -X- O", ""]
    rows += [f"{tok} NN I-NP {tag}" for tok, tag in zip(TOKENS, tags, strict=True)]
    path = _write(tmp_path, "eng.iob1", rows)
    report = ReadReport()
    (inst,) = read_instances(path, "conll", report=report, scheme="iob1")
    assert inst.text == "and the costumes were designed by April Ferry and Neeta Lulla."
    assert [(e.text, e.label) for e in inst.entities] == [
        ("April Ferry", "PER"),
        ("Neeta Lulla", "PER"),
    ]
    assert inst.id == "conll-eng-1" and inst.source_dataset == "conll" and inst.lang == "en"
    assert report.repaired_total == 0


def test_token_and_tag_columns_are_configurable(tmp_path):
    tags = ["O"] * 6 + ["B-PER", "I-PER", "O", "B-PER", "I-PER", "O"]
    rows = [f"{tag}\tx\t{tok}" for tok, tag in zip(TOKENS, tags, strict=True)]
    path = _write(tmp_path, "swapped.tsv", rows)
    (inst,) = read_instances(path, "conll", token_col=2, tag_col=0)
    assert [e.text for e in inst.entities] == ["April Ferry", "Neeta Lulla"]


def test_comment_lines_are_skipped_but_a_hash_token_is_read(tmp_path):
    rows = [
        "# sent_id = 7",
        "# text = We # won",
        "We O",
        "# O",
        "won O",
        "",
        "# trailing comment block",
    ]
    path = _write(tmp_path, "comments.conll", rows)
    report = ReadReport()
    (inst,) = read_instances(path, "conll", report=report)
    assert inst.text == "We # won"
    assert report.sentences == 1 and report.quarantined_total == 0


def test_chinese_column_file_joins_without_spaces_and_matches_the_cluener_reader(tmp_path):
    """A CLUENER sentence written as a character-per-line BIOES file reads back the same."""
    originals = list(read_instances(CLUENER_HEAD, "cluener"))[:10]
    rows: list[str] = []
    for inst in originals:
        tags = ["O"] * len(inst.text)
        for e in inst.entities:
            if any(t != "O" for t in tags[e.start : e.end]):
                continue  # nested mentions cannot be written as tags
            if e.end - e.start == 1:
                tags[e.start] = f"S-{e.label}"
            else:
                tags[e.start] = f"B-{e.label}"
                tags[e.start + 1 : e.end - 1] = [f"I-{e.label}"] * (e.end - e.start - 2)
                tags[e.end - 1] = f"E-{e.label}"
        rows += [f"{ch}\t{tag}" for ch, tag in zip(inst.text, tags, strict=True) if ch.strip()] + [
            ""
        ]
    path = _write(tmp_path, "cluener.bioes", rows)
    read = list(read_instances(path, "conll", lang="zh", dataset="cluener", scheme="bioes"))
    assert len(read) == len(originals)
    for a, b in zip(originals, read, strict=True):
        assert b.text == a.text.replace(" ", "").replace("\u3000", "") or b.text == a.text
        assert [e.text for e in b.entities] == [e.text for e in a.entities]


def test_unknown_scheme_or_dataset_is_a_config_error(tmp_path):
    path = _write(tmp_path, "x.conll", ["Paris B-LOC"])
    with pytest.raises(ConfigError, match="unknown tagging scheme 'bilou'"):
        list(read_instances(path, "conll", scheme="bilou"))
    with pytest.raises(ConfigError, match="no label map for dataset 'nosuch'"):
        list(read_instances(path, "conll", dataset="nosuch"))


def test_ontonotes_labels_validate_with_the_ontonotes_map(tmp_path):
    path = _write(tmp_path, "onto.conll", ["Obama B-PERSON", "visited O", "Paris B-GPE", ". O"])
    (inst,) = read_instances(path, "conll", dataset="ontonotes")
    assert [(e.text, e.label) for e in inst.entities] == [("Obama", "PERSON"), ("Paris", "GPE")]
    with pytest.raises(InputError, match=r"onto\.conll:1: unknown label 'PERSON'"):
        list(read_instances(path, "conll", strict=True))


def test_detok_puts_spaces_where_english_wants_them():
    toks = [
        "He",
        "said",
        ",",
        '"',
        "I",
        "know",
        '"',
        "(",
        "maybe",
        ")",
        "and",
        "it",
        "'s",
        "$",
        "5",
        ".",
    ]
    d = tokens_to_text(toks, "en")
    assert d.text == 'He said, "I know" (maybe) and it\'s $5.'
    assert all(d.text[s:e] == t for (s, e), t in zip(d.spans, toks, strict=True))
    assert d.char_span(8, 8) == (d.text.index("maybe"), d.text.index("maybe") + 5)
    assert d.token_index(d.text.index("maybe")) == 8 and d.token_index(2) is None


def test_detok_joins_chinese_and_keeps_a_space_between_latin_words():
    d = tokens_to_text(["生生不息", "CSOL", "生化", "狂潮", "Windows", "XP"], "zh")
    assert d.text == "生生不息CSOL生化狂潮Windows XP"
    assert d.spans[1] == (4, 8)


@settings(max_examples=200, deadline=None)
@given(
    tokens=st.lists(
        st.text(
            st.characters(blacklist_categories=("Zs", "Cc", "Zl", "Zp")), min_size=1, max_size=6
        ),
        min_size=1,
        max_size=12,
    ),
    lang=st.sampled_from(["en", "de", "fr", "zh", "ja", "th"]),
)
def test_detok_offsets_are_exact_for_any_tokens(tokens, lang):
    d = tokens_to_text(tokens, lang)
    assert len(d.spans) == len(tokens)
    assert all(d.text[s:e] == t for (s, e), t in zip(d.spans, tokens, strict=True))
    assert len(d.text) - sum(map(len, tokens)) <= len(tokens) - 1  # only single spaces added

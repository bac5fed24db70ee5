"""Record model: validation, entity order, Arrow schema and lossless Parquet round trip."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from parallelner.reasons import Reason, Status
from parallelner.records import (
    Entity,
    Instance,
    MentionTranslation,
    ParallelRecord,
    ProjectedEntity,
    UnprojectedEntity,
    arrow_schema,
    records_to_table,
    table_to_records,
)


def test_entity_span_must_match_text_in_instance():
    with pytest.raises(ValidationError, match="reads 'Paris'"):
        Instance(
            id="x",
            lang="en",
            text="Paris is big",
            entities=[Entity(start=0, end=5, label="LOC", text="Pàris")],
        )


def test_entity_outside_text_is_rejected():
    with pytest.raises(ValidationError, match="outside the text"):
        Instance(
            id="x",
            lang="en",
            text="Paris",
            entities=[Entity(start=3, end=8, label="LOC", text="is bi")],
        )


def test_empty_or_inverted_span_is_rejected():
    with pytest.raises(ValidationError, match="greater than start"):
        Entity(start=3, end=3, label="LOC", text="")


def test_entities_are_sorted_by_start_so_ids_are_positions():
    inst = Instance(
        id="x",
        lang="en",
        text="Obama met Merkel",
        entities=[
            Entity(start=10, end=16, label="PER", text="Merkel"),
            Entity(start=0, end=5, label="PER", text="Obama"),
        ],
    )
    assert [e.text for e in inst.entities] == ["Obama", "Merkel"]


def test_records_are_frozen_and_forbid_extra_fields():
    e = Entity(start=0, end=1, label="PER", text="a")
    with pytest.raises(ValidationError):
        e.start = 2  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Entity(start=0, end=1, label="PER", text="a", score=1.0)  # type: ignore[call-arg]


def test_arrow_schema_is_explicit_and_typed():
    schema = arrow_schema()
    assert schema.field("status").type == pa.string()
    assert schema.field("tgt_text").nullable
    assert not schema.field("src_text").nullable
    assert pa.types.is_list(schema.field("tgt_entities").type)
    assert pa.types.is_map(schema.field("scores").type)
    assert schema.field("created_at").type == pa.timestamp("us", tz="UTC")


# Unicode text including emoji, CJK Extension B and combining marks.
_text = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_categories=("Cs",)),
        st.sampled_from(["😀", "\u200d", "𠀀", "𪜀", "é", "\u0301", "中", "\n", '"', "\\"]),
    ),
    min_size=1,
    max_size=40,
)


@st.composite
def parallel_records(draw):
    src = draw(_text)
    i = draw(st.integers(0, len(src) - 1))
    j = draw(st.integers(i + 1, len(src)))
    tgt = draw(st.one_of(st.none(), _text))
    tgt_entities = ()
    if tgt:
        a = draw(st.integers(0, len(tgt) - 1))
        b = draw(st.integers(a + 1, len(tgt)))
        tgt_entities = (
            ProjectedEntity(
                start=a,
                end=b,
                label="PER",
                text=tgt[a:b],
                source_index=0,
                method="fuzzy",
                score=draw(st.floats(0, 1)),
            ),
        )
    return ParallelRecord(
        record_id=draw(_text),
        instance_id="i",
        run_id="r",
        src_lang="en",
        tgt_lang="zh",
        src_text=src,
        src_entities=(Entity(start=i, end=j, label=draw(_text), text=src[i:j]),),
        tgt_text=tgt,
        tgt_entities=tgt_entities,
        mention_translations=(MentionTranslation(id=0, source=src[i:j], target=draw(_text)),),
        unprojected=draw(
            st.sampled_from(
                [
                    (),
                    (
                        UnprojectedEntity(
                            source_index=0, label="PER", text=src[i:j], reason=Reason.NOT_FOUND
                        ),
                    ),
                ]
            )
        ),
        back_translation=draw(st.one_of(st.none(), _text)),
        scores=draw(
            st.dictionaries(
                st.sampled_from(["chrf", "lang_prob"]), st.floats(allow_nan=False), max_size=2
            )
        ),
        status=draw(st.sampled_from(list(Status))),
        reasons=tuple(draw(st.lists(st.sampled_from(list(Reason)), max_size=3))),
        reviewed_at=draw(st.one_of(st.none(), st.just(datetime(2026, 1, 2, 3, 4, 5, 6000, UTC)))),
        pipeline_version="0.1.0",
        prompt_version="translate.v1",
        model="m",
        config_hash="abc",
        created_at=datetime(2026, 11, 25, 7, 0, 0, 123000, UTC),
        raw_reply=draw(st.one_of(st.none(), _text)),
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(parallel_records(), min_size=1, max_size=5))
def test_parquet_round_trip_is_lossless(tmp_path, records):
    path = tmp_path / "r.parquet"
    pq.write_table(records_to_table(records), path)
    table = pq.read_table(path)
    assert table.schema.equals(arrow_schema())
    assert table_to_records(table) == records

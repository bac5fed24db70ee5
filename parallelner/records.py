"""The project's records: Entity, Instance, ParallelRecord, and their Arrow schema.

Offsets, stated once for the whole project: ``start`` and ``end`` are Python ``str``
indices (Unicode code points), half-open (``end`` exclusive), so that
``text[start:end] == entity.text`` always holds. Label Studio's UTF-16 offsets are
converted at the boundary in ``annotation/``.

The Arrow schema of the dataset is derived from ``ParallelRecord`` by
``arrow_schema()``; no other module spells out Arrow types for records.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Self, Union, get_args, get_origin

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from parallelner.reasons import Reason, Status

__all__ = [
    "Entity",
    "Instance",
    "ProjectedEntity",
    "UnprojectedEntity",
    "MentionTranslation",
    "ParallelRecord",
    "arrow_schema",
    "records_to_table",
    "table_to_records",
    "sort_entities",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Entity(_Frozen):
    """One entity mention: half-open code-point span, its label and its surface text."""

    start: Annotated[int, Field(ge=0)]
    end: Annotated[int, Field(ge=0)]
    label: str
    text: str

    @model_validator(mode="after")
    def _check_span(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"entity end {self.end} must be greater than start {self.start}")
        if len(self.text) != self.end - self.start:
            raise ValueError(
                f"entity text {self.text!r} has length {len(self.text)}, "
                f"but the span [{self.start}, {self.end}) has length {self.end - self.start}"
            )
        return self


def sort_entities(entities: Iterable[Entity]) -> tuple[Entity, ...]:
    """Order entities by (start, end): the order that defines entity ids in LLM requests."""
    return tuple(sorted(entities, key=lambda e: (e.start, e.end, e.label)))


class Instance(_Frozen):
    """One annotated sentence. Valid only if every entity's span matches the text.

    ``label`` values are the dataset's own labels (``PER``, ``company``...);
    ``schemas.label_maps`` maps them into the ontology. Entities are kept sorted by
    start offset; an entity's id in LLM requests is its position in this tuple.
    """

    id: str
    lang: str
    text: str
    entities: tuple[Entity, ...] = ()
    source_dataset: str = ""

    @model_validator(mode="after")
    def _check_entities(self) -> Self:
        n = len(self.text)
        for e in self.entities:
            if e.end > n:
                raise ValueError(
                    f"entity {e.text!r} [{e.start}, {e.end}) is outside the text (length {n})"
                )
            if self.text[e.start : e.end] != e.text:
                raise ValueError(
                    f"entity [{e.start}, {e.end}) reads {self.text[e.start : e.end]!r} "
                    f"in the text, not {e.text!r}"
                )
        ordered = sort_entities(self.entities)
        if ordered != self.entities:
            object.__setattr__(self, "entities", ordered)
        return self


class MentionTranslation(_Frozen):
    """The LLM's translation of one source mention (``id`` = source entity index).

    ``context``: when ``target`` occurs more than once in the translation, the words
    around the one that is the entity's, copied from the translation (the repair loop's
    evidence question asks for them); ``pinned`` is where they put it.
    """

    id: int
    source: str
    target: str
    context: str | None = None

    def pinned(self, text: str) -> tuple[int, int] | None:
        """The span of ``target`` inside ``context``, when the context occurs exactly
        once in ``text`` and holds the target exactly once; else None."""
        ctx, target = self.context, self.target
        if not ctx or not target or ctx.count(target) != 1 or text.count(ctx) != 1:
            return None
        start = text.index(ctx) + ctx.index(target)
        return start, start + len(target)


class ProjectedEntity(_Frozen):
    """An entity placed in the target sentence, with how it was found and how sure."""

    start: int
    end: int
    label: str
    text: str
    source_index: int  # index into the source entities
    method: str  # exact | normalized | fuzzy | source_copy | repair_mention | ...
    score: float  # 0..1
    # stage 3's entity verification (``parallelner.quality.entities``): what the span
    # reads as in the source language (from the back-translation), how well that matches
    # the source mention (0..1), and the reason codes of the entity checks it failed
    back_translation: str | None = None
    roundtrip_score: float | None = None
    checks: tuple[Reason, ...] | None = None  # None: not verified (nullable, so that
    # tables written before these fields existed can gain them)


class UnprojectedEntity(_Frozen):
    """A source entity with no span in the target, and why."""

    source_index: int
    label: str
    text: str
    reason: Reason


def _now() -> datetime:
    return datetime.now(UTC)


class ParallelRecord(_Frozen):
    """One row of the ParallelNER dataset. No row is ever dropped: see ``status``."""

    # identity
    record_id: str
    instance_id: str
    run_id: str
    source_dataset: str = ""
    # direction
    src_lang: str
    tgt_lang: str
    # source side
    src_text: str
    src_entities: tuple[Entity, ...] = ()
    # translation and target side
    tgt_text: str | None = None
    mention_translations: tuple[MentionTranslation, ...] = ()
    tgt_entities: tuple[ProjectedEntity, ...] = ()
    unprojected: tuple[UnprojectedEntity, ...] = ()
    back_translation: str | None = None
    repair_steps: tuple[str, ...] = ()
    # quality
    scores: dict[str, float] = Field(default_factory=dict)
    status: Status
    reasons: tuple[Reason, ...] = ()  # what decided the status (after a review: the review's)
    # which stage added each automatic reason (reason code -> stage name: translate,
    # project, backtranslate, assess; ``parallelner.stages``); None on rows written
    # before stages said so (nullable, so that older tables can gain it)
    reason_stages: dict[str, str] | None = None

    # the automatic stages' reasons, kept as history once a human review decided the
    # status; None: never reviewed (then ``reasons`` are the automatic ones). Nullable, so
    # that tables written before this field existed can gain it.
    auto_reasons: tuple[Reason, ...] | None = None
    # human review
    annotator: str | None = None
    reviewed_at: datetime | None = None
    review_comment: str | None = None
    # lineage
    pipeline_version: str
    prompt_version: str
    model: str
    config_hash: str  # 16 hex: the hash of ``signature`` (or of older rows' settings)
    # readable provenance, sacrebleu style (``version.run_signature``); None on rows made
    # before signatures existed
    signature: str | None = None
    created_at: datetime = Field(default_factory=_now)
    raw_reply: str | None = None

    def automatic_reasons(self) -> tuple[Reason, ...]:
        """The reasons the automatic stages gave, before any review replaced ``reasons``."""
        return self.auto_reasons if self.auto_reasons is not None else self.reasons

    def source_instance(self) -> Instance:
        """The source side as an Instance."""
        return Instance(
            id=self.instance_id,
            lang=self.src_lang,
            text=self.src_text,
            entities=self.src_entities,
            source_dataset=self.source_dataset,
        )

    def target_instance(self) -> Instance | None:
        """The target side as an Instance (None when there is no translation)."""
        if self.tgt_text is None:
            return None
        return Instance(
            id=f"{self.instance_id}@{self.tgt_lang}",
            lang=self.tgt_lang,
            text=self.tgt_text,
            entities=tuple(
                Entity(start=e.start, end=e.end, label=e.label, text=e.text)
                for e in self.tgt_entities
            ),
            source_dataset=self.source_dataset,
        )


# --------------------------------------------------------------------------------------
# Arrow schema, derived from the models (the only place Arrow types are spelled out).

_SCALARS: dict[Any, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    datetime: pa.timestamp("us", tz="UTC"),
}


def _arrow_type(annotation: Any) -> tuple[pa.DataType, bool]:
    """Arrow type for a pydantic field annotation, and whether it is nullable."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _arrow_type(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {annotation!r}")
        return _arrow_type(args[0])[0], True
    if origin in (tuple, list, Sequence):
        item = get_args(annotation)[0]
        return pa.list_(pa.field("item", _arrow_type(item)[0], nullable=False)), False
    if origin is dict:
        k, v = get_args(annotation)
        return pa.map_(_arrow_type(k)[0], _arrow_type(v)[0]), False
    if isinstance(annotation, type) and issubclass(annotation, str):  # StrEnum included
        return pa.string(), False
    if annotation in _SCALARS:
        return _SCALARS[annotation], False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return pa.struct(_fields(annotation)), False
    raise TypeError(f"no Arrow type for {annotation!r}")


def _fields(model: type[BaseModel]) -> list[pa.Field]:
    hints = typing.get_type_hints(model, include_extras=True)
    out = []
    for name in model.model_fields:
        typ, nullable = _arrow_type(hints[name])
        out.append(pa.field(name, typ, nullable=nullable))
    return out


def arrow_schema(model: type[BaseModel] = None) -> pa.Schema:  # type: ignore[assignment]
    """The explicit Arrow schema of a record model (ParallelRecord by default)."""
    return pa.schema(_fields(model or ParallelRecord))


def records_to_table(records: Iterable[BaseModel], model: type[BaseModel] = None) -> pa.Table:  # type: ignore[assignment]
    """Records -> pyarrow Table with the explicit schema (never inferred)."""
    model = model or ParallelRecord
    schema = arrow_schema(model)
    rows = [r.model_dump(mode="python") for r in records]
    for row in rows:
        for f in schema:
            if pa.types.is_map(f.type) and isinstance(row.get(f.name), dict):
                row[f.name] = list(row[f.name].items())
    return pa.Table.from_pylist(rows, schema=schema)


def table_to_records(table: pa.Table, model: type[BaseModel] = None) -> list[BaseModel]:  # type: ignore[assignment]
    """pyarrow Table -> validated records (the inverse of ``records_to_table``)."""
    model = model or ParallelRecord
    schema = arrow_schema(model)
    map_cols = {f.name for f in schema if pa.types.is_map(f.type)}
    out = []
    for row in table.to_pylist():
        for name in map_cols:
            if isinstance(row.get(name), list):
                row[name] = dict(row[name])
        out.append(model.model_validate(row))
    return out

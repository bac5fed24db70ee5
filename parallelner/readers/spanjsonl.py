"""Span JSONL (the project's interchange format) -> Instances.

One instance a line::

    {"id": "...", "lang": "en", "text": "...", "source_dataset": "wikineural",
     "entities": [{"start": 0, "end": 5, "label": "PER", "text": "Alice"}]}

Offsets are code points, end exclusive. ``entities[].text`` is optional; when present it
must equal ``text[start:end]``. ``lang`` and ``source_dataset`` fall back to the
reader's ``lang`` / ``dataset``; ``lang`` must be a language the pipeline supports; labels are checked against that dataset's label map,
or, when no dataset is named, against the ontology's class names or the CoNLL tags
(``PER``, ``ORG``, ``LOC``, ``MISC``: the record is then read as dataset ``conll``). A missing ``id``
becomes ``<dataset or "jsonl">-<file stem>-<line>``; an id seen twice is quarantined.
Other top-level keys are ignored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from parallelner.errors import ConfigError
from parallelner.readers.base import (
    BadRecord,
    Quarantined,
    ReadEvent,
    Source,
    check_instance_parts,
    is_int,
    iter_json_lines,
    record_text,
)
from parallelner.reasons import Reason
from parallelner.records import Entity, Instance

__all__ = ["read_span_jsonl", "instance_from_dict", "BadRecord"]

_CONLL = "conll"


def _labels_of(entities: Any) -> set[str]:
    """The string labels of a record's entity list (anything malformed is checked later)."""
    if not isinstance(entities, list):
        return set()
    return {e["label"] for e in entities if isinstance(e, dict) and isinstance(e.get("label"), str)}


def instance_from_dict(obj: Any, source: Source, line: int) -> Instance:
    """Validate one span record (a decoded JSON object or Parquet row); raises BadRecord.

    ``line`` (1-based line or row) names the instance when the record has no id.
    """
    obj, text = record_text(obj)
    lang = obj.get("lang") or source.lang
    if not lang:
        raise BadRecord(Reason.MALFORMED_LINE, 'no "lang" in the record and no --lang given')
    if not isinstance(lang, str):
        raise BadRecord(Reason.MALFORMED_LINE, f'"lang" must be a string, found {lang!r}')
    dataset = obj.get("source_dataset") or source.dataset or ""
    if not isinstance(dataset, str):
        raise BadRecord(Reason.MALFORMED_LINE, '"source_dataset" must be a string')
    try:
        labels = source.labels(dataset)
    except ConfigError as exc:
        raise BadRecord(Reason.UNKNOWN_LABEL, str(exc)) from None
    if not dataset:
        # no dataset named: ontology class names, or the CoNLL tag set (PER, ORG, LOC,
        # MISC) that most span files carry; those are read as dataset "conll"
        used = _labels_of(obj.get("entities"))
        if used and not used <= labels and used <= source.labels(_CONLL):
            dataset, labels = _CONLL, source.labels(_CONLL)
    rid = obj.get("id")
    if rid is None or rid == "":
        rid = f"{dataset or 'jsonl'}-{source.stem}-{line}"
    if not isinstance(rid, str):
        raise BadRecord(Reason.MALFORMED_LINE, '"id" must be a string')
    raw_entities = obj.get("entities")
    if raw_entities is None:
        raw_entities = []
    if not isinstance(raw_entities, list):
        raise BadRecord(Reason.MALFORMED_LINE, '"entities" must be a list')
    entities = []
    for k, ent in enumerate(raw_entities):
        if (
            not isinstance(ent, dict)
            or not is_int(ent.get("start"))
            or not is_int(ent.get("end"))
            or not isinstance(ent.get("label"), str)
        ):
            raise BadRecord(
                Reason.MALFORMED_LINE,
                f"entity {k} must be an object with integer start, end and string label",
            )
        start, end, label = ent["start"], ent["end"], ent["label"]
        if start < 0 or end <= start or end > len(text):
            raise BadRecord(
                Reason.OFFSET_OUT_OF_RANGE,
                f"entity {k} ({label}) span [{start}, {end}) is empty or outside the text (length {len(text)})",
            )
        mention = ent.get("text")
        if mention is not None and text[start:end] != mention:
            raise BadRecord(
                Reason.MENTION_MISMATCH,
                f"entity {k} ({label}) {mention!r} does not match the text at [{start}, {end}), which reads {text[start:end]!r}",
            )
        if label not in labels:
            where = f"dataset {dataset!r}" if dataset else "the ontology (no source_dataset given)"
            raise BadRecord(
                Reason.UNKNOWN_LABEL, f"entity {k} has unknown label {label!r} for {where}"
            )
        entities.append(Entity(start=start, end=end, label=label, text=text[start:end]))
    check_instance_parts(source, lang, text, entities)
    return Instance(id=rid, lang=lang, text=text, entities=tuple(entities), source_dataset=dataset)


def read_span_jsonl(source: Source) -> Iterator[ReadEvent]:
    """Stream the events of a span JSONL file."""
    seen: set[str] = set()  # instance ids only: small next to the instances themselves
    for item in iter_json_lines(source):
        if isinstance(item, Quarantined):
            yield item
            continue
        lineno, line, obj = item
        try:
            inst = instance_from_dict(obj, source, lineno)
        except BadRecord as bad:
            yield source.quarantine(lineno, bad.reason, bad.detail, line)
            continue
        if inst.id in seen:
            yield source.quarantine(
                lineno,
                Reason.DUPLICATE_ID,
                f"instance id {inst.id!r} appears earlier in the file",
                line,
            )
            continue
        seen.add(inst.id)
        yield inst
